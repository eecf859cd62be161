// Shares rank 0's NCCL unique id with the other ranks over TCP at
// MASTER_ADDR:MASTER_PORT, then joins the communicator. Rank 0 answers until
// every other rank has the id: ncclCommInitRank blocks the event loop, so
// serving must be over before it is called.
import { createConnection, createServer, type Socket } from "node:net";

import type { DistEnv } from "./dist-env.js";
import { runtimeErrors } from "./errors.js";
import type { LoadedAddon, NcclComm } from "./load.js";

export const UNIQUE_ID_BYTES = 128;
const RETRY_MS = 200;

/** Rank 0 serves `makeId()`; the others fetch it. Resolves to the same bytes on every rank. */
export async function exchangeUniqueId(dist: DistEnv, makeId: () => Buffer, timeoutMs = 120_000): Promise<Buffer> {
  const where = `${dist.masterAddr}:${dist.masterPort}`;
  if (dist.world === 1) return makeId();
  if (dist.rank === 0) return serveId(makeId(), dist.world - 1, dist.masterPort, where, timeoutMs);
  return fetchId(dist, where, timeoutMs);
}

function serveId(id: Buffer, peers: number, port: number, where: string, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let served = 0;
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.end(id, () => {
        sockets.delete(socket);
        served += 1;
        if (served === peers) {
          clearTimeout(timer);
          server.close(() => resolve(id));
        }
      });
    });
    const timer = setTimeout(() => {
      for (const s of sockets) s.destroy();
      server.close();
      reject(runtimeErrors.distEnv(`rank 0 at ${where} heard from ${served} of ${peers} ranks within ${timeoutMs / 1000} s`, "check that every rank started and uses the same MASTER_ADDR and MASTER_PORT"));
    }, timeoutMs);
    server.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(runtimeErrors.distEnv(`rank 0 cannot listen on port ${port} (${err.code ?? err.message})`, "pick a free MASTER_PORT"));
    });
    server.listen(port);
  });
}

function fetchId(dist: DistEnv, where: string, timeoutMs: number): Promise<Buffer> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const chunks: Buffer[] = [];
      const socket = createConnection({ host: dist.masterAddr, port: dist.masterPort });
      socket.on("data", (c) => chunks.push(c));
      socket.on("end", () => {
        const id = Buffer.concat(chunks);
        if (id.length === UNIQUE_ID_BYTES) resolve(id);
        else retry(`got ${id.length} bytes instead of ${UNIQUE_ID_BYTES}`);
      });
      socket.on("error", (err: NodeJS.ErrnoException) => retry(err.code ?? err.message));
    };
    const retry = (why: string) => {
      if (Date.now() + RETRY_MS > deadline) {
        reject(runtimeErrors.distEnv(`rank ${dist.rank} could not get the NCCL id from rank 0 at ${where} within ${timeoutMs / 1000} s (${why})`, "check MASTER_ADDR/MASTER_PORT and that rank 0 started"));
        return;
      }
      setTimeout(attempt, RETRY_MS);
    };
    attempt();
  });
}

/** The communicator for fpdt_create: null for one rank, else a joined NCCL comm on GPU localRank. */
export async function joinWorld(addon: LoadedAddon, dist: DistEnv, timeoutMs?: number): Promise<NcclComm | null> {
  if (dist.world === 1) return null;
  const id = await exchangeUniqueId(dist, () => addon.native.ncclUniqueId(), timeoutMs);
  return addon.native.ncclInit(id, dist.rank, dist.world, dist.localRank);
}
