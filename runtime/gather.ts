// Gathers one byte buffer from every rank to rank 0 over TCP at MASTER_ADDR:MASTER_PORT, the
// address of the NCCL id exchange (whose listener is closed by then). Used once per run to
// bring ZeRO-3 shards to the rank that writes the file. Each rank sends its rank (uint32) and
// its length (float64, little-endian) then the bytes; rank 0 acknowledges with one byte.
import { createConnection, createServer, type Socket } from "node:net";

import type { DistEnv } from "./dist-env.js";
import { runtimeErrors } from "./errors.js";

const RETRY_MS = 200;
const HEADER = 12;

/** Rank 0 resolves to every rank's buffer in rank order; the others to undefined once rank 0 has theirs. */
export function gatherToRank0(dist: DistEnv, payload: Buffer, timeoutMs = 600_000): Promise<Buffer[] | undefined> {
  if (dist.world === 1) return Promise.resolve([payload]);
  return dist.rank === 0 ? receiveAll(dist, payload, timeoutMs) : sendOne(dist, payload, timeoutMs);
}

function receiveAll(dist: DistEnv, mine: Buffer, timeoutMs: number): Promise<Buffer[]> {
  const where = `${dist.masterAddr}:${dist.masterPort}`;
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [mine];
    let count = 1;
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      const chunks: Buffer[] = [];
      let have = 0;
      socket.on("error", () => {});
      socket.on("data", (c) => {
        chunks.push(c);
        have += c.length;
        if (have < HEADER) return;
        const all = Buffer.concat(chunks);
        const rank = all.readUInt32LE(0), len = all.readDoubleLE(4);
        if (all.length < HEADER + len) return;
        chunks.length = 0;
        if (rank > 0 && rank < dist.world && got[rank] === undefined) {
          got[rank] = all.subarray(HEADER, HEADER + len);
          count += 1;
        }
        socket.end(Buffer.from([1]));
        sockets.delete(socket);
        if (count === dist.world) {
          clearTimeout(timer);
          server.close(() => resolve(got));
        }
      });
    });
    const timer = setTimeout(() => {
      for (const s of sockets) s.destroy();
      server.close();
      reject(runtimeErrors.distEnv(`rank 0 at ${where} got the shards of ${count} of ${dist.world} ranks within ${timeoutMs / 1000} s`, "check that every rank is still running"));
    }, timeoutMs);
    server.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(runtimeErrors.distEnv(`rank 0 cannot listen on port ${dist.masterPort} to gather shards (${err.code ?? err.message})`, "pick a free MASTER_PORT"));
    });
    server.listen(dist.masterPort);
  });
}

function sendOne(dist: DistEnv, payload: Buffer, timeoutMs: number): Promise<undefined> {
  const where = `${dist.masterAddr}:${dist.masterPort}`;
  const deadline = Date.now() + timeoutMs;
  const header = Buffer.alloc(HEADER);
  header.writeUInt32LE(dist.rank, 0);
  header.writeDoubleLE(payload.length, 4);
  return new Promise((resolve, reject) => {
    const attempt = () => {
      let acked = false;
      const socket = createConnection({ host: dist.masterAddr, port: dist.masterPort }, () => {
        socket.write(header);
        socket.write(payload);
      });
      socket.on("data", () => {
        acked = true;
      });
      let why = "closed before rank 0 acknowledged";
      // 'close' follows 'error': the attempt ends there, once
      socket.on("error", (err: NodeJS.ErrnoException) => {
        why = err.code ?? err.message;
      });
      socket.on("close", () => (acked ? resolve(undefined) : retry(why)));
    };
    const retry = (why: string) => {
      if (Date.now() + RETRY_MS > deadline) {
        reject(runtimeErrors.distEnv(`rank ${dist.rank} could not send its shards to rank 0 at ${where} within ${timeoutMs / 1000} s (${why})`, "check that rank 0 is still running"));
        return;
      }
      setTimeout(attempt, RETRY_MS);
    };
    attempt();
  });
}
