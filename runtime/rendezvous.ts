// Shares rank 0's NCCL unique id with the other ranks over TCP at MASTER_ADDR:MASTER_PORT,
// then joins the communicator. Whoever resolves here goes on to ncclCommInitRank, which
// returns only once every rank has entered it, so nothing may still need this process's
// event loop: rank 0 resolves as soon as every peer has been sent the whole id (the kernel
// delivers it and the FIN without us), and a peer closes its socket before it resolves.
// One deadline covers the whole join, from the exchange until the communicator exists.
import { createConnection, createServer, type Socket } from "node:net";

import type { DistEnv } from "./dist-env.js";
import { RuntimeError, runtimeErrors } from "./errors.js";
import type { StartPhase } from "./launcher.js";
import { toRuntimeError, type LoadedAddon, type NcclComm } from "./load.js";

export const UNIQUE_ID_BYTES = 128;
export const DEFAULT_INIT_TIMEOUT_S = 120;
const RETRY_MS = 200;

/** How long a rank may take to join the world: FPDT_INIT_TIMEOUT_S seconds, default 120. */
export function initTimeoutMs(env: Record<string, string | undefined> = process.env): number {
  const text = env.FPDT_INIT_TIMEOUT_S;
  if (text === undefined || text.trim() === "") return DEFAULT_INIT_TIMEOUT_S * 1000;
  const seconds = Number(text);
  if (!(seconds > 0) || !Number.isFinite(seconds)) throw runtimeErrors.distEnv(`FPDT_INIT_TIMEOUT_S=${JSON.stringify(text)} is not a number of seconds`, "set it to a positive number, or unset it for 120");
  return seconds * 1000;
}

/** Rank 0 serves `makeId()`; the others fetch it. Resolves to the same bytes on every rank. */
export async function exchangeUniqueId(dist: DistEnv, makeId: () => Buffer, timeoutMs = DEFAULT_INIT_TIMEOUT_S * 1000): Promise<Buffer> {
  const where = `${dist.masterAddr}:${dist.masterPort}`;
  if (dist.world === 1) return makeId();
  if (dist.rank === 0) return serveId(makeId(), dist.world - 1, dist.masterPort, where, timeoutMs);
  return fetchId(dist, where, timeoutMs);
}

function serveId(id: Buffer, peers: number, port: number, where: string, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let served = 0;
    let settled = false;
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
      // Counted once the kernel has the whole id; the peer's close is not waited for.
      socket.end(id, () => {
        if (settled || socket.errored) return;
        served += 1;
        if (served < peers) return;
        settled = true;
        clearTimeout(timer);
        // No callback: server.close's waits for every connection to close, i.e. for the peers.
        server.close();
        resolve(id);
      });
    });
    const timer = setTimeout(() => {
      settled = true;
      for (const s of sockets) s.destroy();
      server.close();
      reject(runtimeErrors.distEnv(`rank 0 at ${where} heard from ${served} of ${peers} ranks within ${timeoutMs / 1000} s`, "check that every rank started and uses the same MASTER_ADDR and MASTER_PORT"));
    }, timeoutMs);
    server.on("error", (err: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(runtimeErrors.distEnv(`rank 0 cannot listen on port ${port} (${err.code ?? err.message})`, "pick a free MASTER_PORT"));
    });
    server.listen(port);
  });
}

function fetchId(dist: DistEnv, where: string, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let why = "no answer";
    let socket: Socket | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    // One timer for the whole fetch, so a rank 0 that accepts and never answers is bounded too.
    const deadline = setTimeout(() => {
      settled = true;
      clearTimeout(retryTimer);
      socket?.destroy();
      reject(runtimeErrors.distEnv(`rank ${dist.rank} could not get the NCCL id from rank 0 at ${where} within ${timeoutMs / 1000} s (${why})`, "check MASTER_ADDR/MASTER_PORT and that rank 0 started"));
    }, timeoutMs);
    const attempt = () => {
      const chunks: Buffer[] = [];
      const s = createConnection({ host: dist.masterAddr, port: dist.masterPort });
      socket = s;
      s.on("connect", () => (why = "connected, but no id came"));
      s.on("data", (c) => chunks.push(c));
      s.on("end", () => {
        // Closed now, not on a later turn of the event loop: the caller blocks next.
        s.destroy();
        const id = Buffer.concat(chunks);
        if (id.length !== UNIQUE_ID_BYTES) return retry(`got ${id.length} bytes instead of ${UNIQUE_ID_BYTES}`);
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        resolve(id);
      });
      s.on("error", (err: NodeJS.ErrnoException) => {
        s.destroy();
        retry(err.code ?? err.message);
      });
    };
    const retry = (reason: string) => {
      why = reason;
      if (settled) return;
      clearTimeout(retryTimer);
      retryTimer = setTimeout(attempt, RETRY_MS);
    };
    attempt();
  });
}

export interface JoinOptions {
  /** The whole join (id exchange and ncclCommInitRank); default initTimeoutMs(). */
  timeoutMs?: number;
  /** Told as each start phase of the join begins. */
  onPhase?: (phase: StartPhase) => void;
  /**
   * Told when ncclCommInitRank outlives the timeout, as the join fails with `error`. Its thread
   * cannot be stopped and keeps the process alive, so a command reports and exits from here.
   */
  onStuck?: (error: RuntimeError) => void;
}

/** This rank's NCCL communicator on GPU localRank, for fpdt_create (a world of one included). */
export async function joinWorld(addon: LoadedAddon, dist: DistEnv, options: JoinOptions = {}): Promise<NcclComm> {
  const timeoutMs = options.timeoutMs ?? initTimeoutMs();
  const started = Date.now();
  options.onPhase?.("nccl-id");
  const id = await exchangeUniqueId(dist, () => native(() => addon.native.ncclUniqueId()), timeoutMs);
  options.onPhase?.("nccl-init");
  const init = Promise.resolve().then(() => addon.native.ncclInit(id, dist.rank, dist.world, dist.localRank));
  return new Promise<NcclComm>((resolve, reject) => {
    const timer = setTimeout(() => {
      const error = runtimeErrors.distEnv(
        `rank ${dist.rank} waited ${timeoutMs / 1000} s in ncclCommInitRank (joining the NCCL communicator of ${dist.world} ranks)`,
        "check that every rank started and none failed before this point, and that they can reach each other (NCCL_DEBUG=INFO shows where NCCL waits)",
      );
      reject(error);
      options.onStuck?.(error);
    }, Math.max(0, started + timeoutMs - Date.now()));
    init.then(
      (comm) => {
        clearTimeout(timer);
        resolve(comm);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(toRuntimeError(e));
      },
    );
  });
}

function native<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toRuntimeError(e);
  }
}
