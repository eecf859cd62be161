// Exchanges between the processes of a world over TCP at MASTER_ADDR:MASTER_PORT, the address
// of the NCCL id exchange (whose listener is closed by then): every rank sends one byte buffer
// to rank 0, which answers every rank once it has them all. Used to bring ZeRO-3 shards to the
// rank that writes a file, and between steps to agree whether to stop (./stop-agreement.ts).
//
// Each exchange is a barrier: rank 0 stops listening and only then answers, so no rank leaves
// an exchange before every rank has reached it, and no rank's next exchange can land in the
// listener of the one before. A rank sends its exchange's tag (uint32), its rank (uint32) and
// its length (float64, little-endian), then the bytes; rank 0 answers with a non-empty buffer
// and closes. Ranks that reach different exchanges fail at once, naming both.
import { createConnection, createServer, type Socket } from "node:net";

import type { DistEnv } from "./dist-env.js";
import { runtimeErrors } from "./errors.js";

const RETRY_MS = 200;
const HEADER = 16;

/** What an exchange is for: its tag on the wire and how messages name it. */
export interface ExchangeKind {
  readonly tag: number;
  /** "the shards", "whether to stop": what rank 0 waits for */
  readonly what: string;
  /** what a rank that cannot reach rank 0 was doing: "send its shards" */
  readonly verb: string;
}

export const SHARDS: ExchangeKind = { tag: 0x53484152, what: "the shards", verb: "send its shards" };
const KINDS_BY_TAG = new Map<number, string>([[SHARDS.tag, SHARDS.what]]);

/** Registers another exchange kind, so that a rank at the wrong one is named by what it was doing. */
export function exchangeKind(tag: number, what: string, verb: string): ExchangeKind {
  KINDS_BY_TAG.set(tag, what);
  return { tag, what, verb };
}

export interface ExchangeOptions {
  kind: ExchangeKind;
  /** rank 0's answer to every rank, from every rank's bytes (rank order) */
  answer: (all: Buffer[]) => Buffer;
  timeoutMs: number;
  /** says what to check when the exchange times out */
  fix?: string;
}

/** Rank 0 resolves to every rank's bytes in rank order and its answer; the others to the answer. */
export async function exchangeAtRank0(dist: DistEnv, payload: Buffer, o: ExchangeOptions): Promise<{ all?: Buffer[]; answer: Buffer }> {
  if (dist.world === 1) return { all: [payload], answer: o.answer([payload]) };
  if (dist.rank === 0) return receiveAll(dist, payload, o);
  return { answer: await sendOne(dist, payload, o) };
}

/** Rank 0 resolves to every rank's buffer in rank order; the others to undefined once every rank has sent its own. */
export async function gatherToRank0(dist: DistEnv, payload: Buffer, timeoutMs = 600_000): Promise<Buffer[] | undefined> {
  const r = await exchangeAtRank0(dist, payload, { kind: SHARDS, answer: () => Buffer.from([1]), timeoutMs, fix: "check that every rank is still running" });
  return r.all;
}

const kindName = (tag: number) => KINDS_BY_TAG.get(tag) ?? `an unknown exchange (tag ${tag.toString(16)})`;

function receiveAll(dist: DistEnv, mine: Buffer, o: ExchangeOptions): Promise<{ all: Buffer[]; answer: Buffer }> {
  const where = `${dist.masterAddr}:${dist.masterPort}`;
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [mine];
    let count = 1;
    let settled = false;
    // the open connection of each rank that has sent, answered when the last one arrives
    const waiting = new Map<number, Socket>();
    const all = new Set<Socket>();
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const s of all) s.destroy();
      server.close();
      reject(e);
    };
    const server = createServer((socket) => {
      all.add(socket);
      socket.on("close", () => all.delete(socket));
      const chunks: Buffer[] = [];
      let have = 0;
      socket.on("error", () => {});
      socket.on("data", (c) => {
        chunks.push(c);
        have += c.length;
        if (have < HEADER) return;
        const bytes = Buffer.concat(chunks);
        const tag = bytes.readUInt32LE(0), rank = bytes.readUInt32LE(4), len = bytes.readDoubleLE(8);
        if (tag !== o.kind.tag) return fail(runtimeErrors.distEnv(`rank 0 was exchanging ${o.kind.what} when rank ${rank} sent ${kindName(tag)}`, "the ranks took different paths (different flags or files?); start them alike"));
        if (bytes.length < HEADER + len) return;
        chunks.length = 0;
        if (rank === 0 || rank >= dist.world) return fail(runtimeErrors.distEnv(`rank 0 at ${where} heard from a rank ${rank} of a world of ${dist.world}`, "check that every rank uses the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE"));
        // a rank that sends again (its first connection dropped) replaces its connection
        if (got[rank] === undefined) count += 1;
        got[rank] = bytes.subarray(HEADER, HEADER + len);
        waiting.get(rank)?.destroy();
        waiting.set(rank, socket);
        if (count < dist.world || settled) return;
        settled = true;
        clearTimeout(timer);
        // stop listening first: a rank that has its answer may start the next exchange at once
        server.close();
        const answer = o.answer(got);
        for (const s of waiting.values()) s.end(answer);
        resolve({ all: got, answer });
      });
    });
    const timer = setTimeout(() => {
      const missing = Array.from({ length: dist.world }, (_, r) => r).filter((r) => got[r] === undefined);
      fail(runtimeErrors.distEnv(`rank 0 at ${where} got ${o.kind.what} of ${count} of ${dist.world} ranks within ${o.timeoutMs / 1000} s (none from rank ${missing.join(", ")})`, o.fix ?? "check that every rank is still running"));
    }, o.timeoutMs);
    server.on("error", (err: NodeJS.ErrnoException) => {
      fail(runtimeErrors.distEnv(`rank 0 cannot listen on port ${dist.masterPort} to exchange ${o.kind.what} (${err.code ?? err.message})`, "pick a free MASTER_PORT"));
    });
    server.listen(dist.masterPort);
  });
}

function sendOne(dist: DistEnv, payload: Buffer, o: ExchangeOptions): Promise<Buffer> {
  const where = `${dist.masterAddr}:${dist.masterPort}`;
  const deadline = Date.now() + o.timeoutMs;
  const header = Buffer.alloc(HEADER);
  header.writeUInt32LE(o.kind.tag, 0);
  header.writeUInt32LE(dist.rank, 4);
  header.writeDoubleLE(payload.length, 8);
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const answer: Buffer[] = [];
      const socket = createConnection({ host: dist.masterAddr, port: dist.masterPort }, () => {
        socket.write(header);
        socket.write(payload);
      });
      // rank 0 answers only when every rank has sent: the wait is bounded by the deadline too
      socket.setTimeout(Math.max(1, deadline - Date.now()), () => socket.destroy(new Error("no answer in time")));
      socket.on("data", (c) => answer.push(c));
      let why = "closed before rank 0 answered";
      // 'close' follows 'error': the attempt ends there, once
      socket.on("error", (err: NodeJS.ErrnoException) => {
        why = err.code ?? err.message;
      });
      socket.on("close", () => {
        const got = Buffer.concat(answer);
        if (got.length > 0) resolve(got);
        else retry(why);
      });
    };
    const retry = (why: string) => {
      if (Date.now() + RETRY_MS > deadline) {
        reject(runtimeErrors.distEnv(`rank ${dist.rank} could not ${o.kind.verb} to rank 0 at ${where} within ${o.timeoutMs / 1000} s (${why})`, o.fix ?? "check that rank 0 is still running"));
        return;
      }
      setTimeout(attempt, RETRY_MS);
    };
    attempt();
  });
}
