// Starts N ranks of one command on this node, each in its own process group,
// with the rendezvous environment set. If a rank fails, every other rank's
// whole process group is stopped (SIGTERM, then SIGKILL after a grace period)
// so nothing is left running, and the launch rejects naming the failed rank.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { createInterface } from "node:readline";

import { RuntimeError, runtimeErrors } from "./errors.js";

export interface LaunchOptions {
  command: string;
  args?: string[];
  /** Number of ranks (processes) on this node. */
  nprocs: number;
  /** Base environment of every rank; default process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  masterAddr?: string;
  /** Default: a free port on this machine. */
  masterPort?: number;
  /** Receives each output line; default writes "[rank N] line" to our stdout/stderr. */
  onLine?: (rank: number, stream: "stdout" | "stderr", line: string) => void;
  /** How long ranks get after SIGTERM before SIGKILL; default 3000 ms. */
  killGraceMs?: number;
}

export interface RankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The environment rank `rank` of `nprocs` is started with. */
export function rankEnv(base: NodeJS.ProcessEnv, rank: number, nprocs: number, masterAddr: string, masterPort: number): NodeJS.ProcessEnv {
  return {
    ...base,
    RANK: String(rank),
    WORLD_SIZE: String(nprocs),
    LOCAL_RANK: String(rank),
    LOCAL_WORLD_SIZE: String(nprocs),
    MASTER_ADDR: masterAddr,
    MASTER_PORT: String(masterPort),
    // Multi-GPU hosts we run on have NVLink multicast disabled; NCCL must not try it.
    NCCL_NVLS_ENABLE: "0",
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function defaultOnLine(rank: number, stream: "stdout" | "stderr", line: string): void {
  (stream === "stdout" ? process.stdout : process.stderr).write(`[rank ${rank}] ${line}\n`);
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is already empty.
  }
}

/** Runs the ranks to completion; resolves with their exits when all succeed. */
export async function launch(options: LaunchOptions): Promise<RankExit[]> {
  const { command, nprocs } = options;
  if (!Number.isInteger(nprocs) || nprocs < 1) throw runtimeErrors.launchUsage(`${nprocs} processes requested`, "pass a whole number of GPUs >= 1");
  const masterAddr = options.masterAddr ?? "127.0.0.1";
  const masterPort = options.masterPort ?? (await freePort());
  const onLine = options.onLine ?? defaultOnLine;
  const grace = options.killGraceMs ?? 3000;
  const base = options.env ?? process.env;

  return new Promise<RankExit[]>((resolve, reject) => {
    const children: ChildProcess[] = [];
    const exits: (RankExit | undefined)[] = new Array(nprocs).fill(undefined);
    let open = nprocs; // children whose stdio has not closed yet
    let failure: RuntimeError | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const stopAll = () => {
      for (const child of children) signalGroup(child, "SIGTERM");
      killTimer ??= setTimeout(() => {
        for (const child of children) signalGroup(child, "SIGKILL");
      }, grace);
    };
    const killNow = () => {
      for (const child of children) signalGroup(child, "SIGKILL");
    };
    const onParentSignal = (signal: NodeJS.Signals) => {
      failure ??= runtimeErrors.launchUsage(`interrupted by ${signal}`, "all ranks were stopped");
      stopAll();
    };
    process.on("exit", killNow);
    process.on("SIGINT", onParentSignal);
    process.on("SIGTERM", onParentSignal);

    const finish = () => {
      if (killTimer) clearTimeout(killTimer);
      // Ranks that exited 0 may have left helpers behind in their groups.
      killNow();
      process.off("exit", killNow);
      process.off("SIGINT", onParentSignal);
      process.off("SIGTERM", onParentSignal);
      if (failure) reject(failure);
      else resolve(exits as RankExit[]);
    };

    for (let rank = 0; rank < nprocs; rank++) {
      const child = spawn(command, options.args ?? [], {
        cwd: options.cwd,
        env: rankEnv(base, rank, nprocs, masterAddr, masterPort),
        detached: true, // own process group, so the whole group can be signalled
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.push(child);
      for (const stream of ["stdout", "stderr"] as const) {
        createInterface({ input: child[stream]!, crlfDelay: Infinity }).on("line", (line) => onLine(rank, stream, line));
      }
      child.on("error", (err: NodeJS.ErrnoException) => {
        failure ??= runtimeErrors.launchUsage(`cannot start ${command} (${err.code ?? err.message})`, "check the command and that it is executable");
        stopAll();
      });
      child.on("exit", (code, signal) => {
        exits[rank] = { rank, code, signal };
        if (failure || (code === 0 && signal === null)) return;
        const running = exits.filter((e) => e === undefined).length;
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        failure = runtimeErrors.rankFailed(rank, how, running);
        stopAll();
        signalGroup(child, "SIGTERM");
      });
      child.on("close", () => {
        open -= 1;
        if (open === 0) finish();
      });
    }
  });
}
