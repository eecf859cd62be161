// Starts N ranks of one command on this node, each in its own process group,
// with the rendezvous environment set. If a rank fails, or a rank's start
// stalls, every rank's whole process group is stopped (SIGTERM, then SIGKILL
// after a grace period) so nothing is left running, and the launch rejects
// naming the rank and where its start stopped. A signal to the launcher stops
// the ranks the same way, or, with forwardSignals, is passed on to them.
//
// Start phases: the launcher sets FPDT_START_PHASES=1, and a rank then writes
// one stderr line "@fpdt-start-phase <phase>" as each phase of its start begins
// (reportStartPhase). The launcher keeps these lines out of the output and
// remembers each rank's last phase; a start is done at 'ready'. A rank that
// stays in one phase (or, before its first, since it was started) longer than
// the start timeout has stalled. The limit is per phase, not for the whole
// start, because creating a large program (pinned host memory) takes a while.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { createInterface } from "node:readline";

import { RuntimeError, runtimeErrors } from "./errors.js";
import { initTimeoutMs } from "./rendezvous.js";

/** The phases of a rank's start, in order, each as it reads after "stopped" or "exited ...". */
export const START_PHASES = {
  addon: "while loading the addon",
  "nccl-id": "while exchanging the NCCL id",
  "nccl-init": "in ncclCommInitRank (joining the NCCL communicator)",
  program: "while creating the program",
  ready: "after its start",
} as const;
export type StartPhase = keyof typeof START_PHASES;

const PHASE_ENV = "FPDT_START_PHASES";
const PHASE_PREFIX = "@fpdt-start-phase ";
// The launcher waits this much longer than the ranks' own join timeout, so that a rank's
// own one-line report (it knows more) normally comes first.
const START_MARGIN_MS = 30_000;

/** Tells the launcher (when this process is one of its ranks) that `phase` begins. */
export function reportStartPhase(phase: StartPhase, env: NodeJS.ProcessEnv = process.env): void {
  if (env[PHASE_ENV] === "1") process.stderr.write(`${PHASE_PREFIX}${phase}\n`);
}

function phaseText(phase: string): string {
  return (START_PHASES as Record<string, string>)[phase] ?? `in start phase '${phase}'`;
}

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
  /**
   * The longest a rank may stay in one start phase before 'ready' (or exit 0), else all are
   * stopped; default the ranks' FPDT_INIT_TIMEOUT_S (120 s) plus 30 s; 0: no limit, for a
   * command that reports no phases.
   */
  startTimeoutMs?: number;
  /**
   * A first SIGTERM or SIGINT to the launcher is passed on to every rank, which then stop when
   * they choose (after a checkpoint) and decide by their exits whether the launch succeeded; a
   * second one stops them as without this option. Default false: every rank is stopped at once.
   */
  forwardSignals?: boolean;
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
    [PHASE_ENV]: "1",
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
  const startTimeoutMs = options.startTimeoutMs ?? initTimeoutMs(base) + START_MARGIN_MS;

  return new Promise<RankExit[]>((resolve, reject) => {
    const children: ChildProcess[] = [];
    const exits: (RankExit | undefined)[] = new Array(nprocs).fill(undefined);
    let open = nprocs; // children whose stdio has not closed yet
    const phases: (string | undefined)[] = new Array(nprocs).fill(undefined);
    const phaseSince: number[] = new Array(nprocs).fill(Date.now());
    // Made when the launch ends, so that a failed rank's last phase line has been read by then.
    let failure: (() => RuntimeError) | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let startTimer: NodeJS.Timeout | undefined;
    const starting = () => phases.map((_, r) => r).filter((r) => phases[r] !== "ready" && exits[r] === undefined);

    const stopAll = () => {
      for (const child of children) signalGroup(child, "SIGTERM");
      killTimer ??= setTimeout(() => {
        for (const child of children) signalGroup(child, "SIGKILL");
      }, grace);
    };
    const killNow = () => {
      for (const child of children) signalGroup(child, "SIGKILL");
    };
    let forwarded = false;
    const onParentSignal = (signal: NodeJS.Signals) => {
      if (options.forwardSignals && !forwarded) {
        forwarded = true;
        process.stderr.write(`launch: ${signal} passed on to every rank (again to stop them at once)\n`);
        for (const child of children) signalGroup(child, signal);
        return;
      }
      failure ??= () => runtimeErrors.launchUsage(`interrupted by ${signal}`, "all ranks were stopped");
      // the ranks had the first signal already: the second is theirs too (they stop at once)
      if (forwarded) for (const child of children) signalGroup(child, signal);
      stopAll();
    };
    process.on("exit", killNow);
    process.on("SIGINT", onParentSignal);
    process.on("SIGTERM", onParentSignal);

    // Wakes at the earliest a starting rank can have stalled; phases only move that later.
    const watchStart = () => {
      const pending = starting();
      if (failure || pending.length === 0) return;
      const now = Date.now();
      const stalled = pending.filter((r) => now - phaseSince[r] >= startTimeoutMs);
      if (stalled.length === 0) {
        startTimer = setTimeout(watchStart, Math.min(...pending.map((r) => phaseSince[r] + startTimeoutMs)) - now);
        return;
      }
      const where = (r: number) => (phases[r] === undefined ? "before its first start phase" : phaseText(phases[r]!));
      const others = pending.filter((r) => r !== stalled[0]).map((r) => `rank ${r} ${where(r)}`);
      const also = others.length ? `; not ready either: ${others.join(", ")}` : "";
      const error = runtimeErrors.rankFailed(stalled[0], `stalled for ${startTimeoutMs / 1000} s ${where(stalled[0])}${also}`, nprocs - 1);
      failure = () => error;
      stopAll();
    };
    if (startTimeoutMs > 0) startTimer = setTimeout(watchStart, startTimeoutMs);
    const notePhase = (rank: number, phase: string) => {
      phases[rank] = phase;
      phaseSince[rank] = Date.now();
      if (startTimer && starting().length === 0) clearTimeout(startTimer);
    };

    const finish = () => {
      if (killTimer) clearTimeout(killTimer);
      if (startTimer) clearTimeout(startTimer);
      // Ranks that exited 0 may have left helpers behind in their groups.
      killNow();
      process.off("exit", killNow);
      process.off("SIGINT", onParentSignal);
      process.off("SIGTERM", onParentSignal);
      if (failure) reject(failure());
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
        createInterface({ input: child[stream]!, crlfDelay: Infinity }).on("line", (line) => {
          if (stream === "stderr" && line.startsWith(PHASE_PREFIX)) notePhase(rank, line.slice(PHASE_PREFIX.length).trim());
          else onLine(rank, stream, line);
        });
      }
      child.on("error", (err: NodeJS.ErrnoException) => {
        failure ??= () => runtimeErrors.launchUsage(`cannot start ${command} (${err.code ?? err.message})`, "check the command and that it is executable");
        stopAll();
      });
      child.on("exit", (code, signal) => {
        exits[rank] = { rank, code, signal };
        if (startTimer && starting().length === 0) clearTimeout(startTimer);
        if (failure || (code === 0 && signal === null)) return;
        const running = exits.filter((e) => e === undefined).length;
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        failure = () => {
          const phase = phases[rank];
          return runtimeErrors.rankFailed(rank, phase === undefined || phase === "ready" ? how : `${how} ${phaseText(phase)}`, running);
        };
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
