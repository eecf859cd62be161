// Between steps, the processes of a world agree whether to stop: a signal may reach one rank
// (a user's kill) or all of them (Slurm's scancel), at different moments of the step, and a
// checkpoint needs every rank to save after the same step. Each rank tells rank 0 the step it
// has finished and the signal it got, if any (./gather.ts exchange: a barrier, answered when
// every rank has told); rank 0 answers every rank with the first signal any rank got, so all
// of them stop after the same step or none does. A rank that never comes (dead, or stuck in
// its step) fails the exchange after FPDT_STOP_TIMEOUT_S seconds with one line.
import type { DistEnv } from "./dist-env.js";
import { runtimeErrors } from "./errors.js";
import { exchangeAtRank0, exchangeKind } from "./gather.js";

export const STOP = exchangeKind(0x53544f50, "whether to stop", "say whether it stops");
export const DEFAULT_STOP_TIMEOUT_S = 300;

/** A stop every rank agreed on: the signal and the rank that got it (the lowest of those that did). */
export interface AgreedStop {
  readonly signal: string;
  readonly rank: number;
}

interface Vote {
  readonly step: number;
  readonly signal: string | null;
}

interface Verdict {
  readonly stop: AgreedStop | null;
  /** set when the ranks are not at the same step: every rank fails with this line */
  readonly error?: string;
}

/** How long a rank waits for the others between steps: FPDT_STOP_TIMEOUT_S seconds, default 300. */
export function stopTimeoutMs(env: Record<string, string | undefined> = process.env): number {
  const text = env.FPDT_STOP_TIMEOUT_S;
  if (text === undefined || text.trim() === "") return DEFAULT_STOP_TIMEOUT_S * 1000;
  const seconds = Number(text);
  if (!(seconds > 0) || !Number.isFinite(seconds)) throw runtimeErrors.distEnv(`FPDT_STOP_TIMEOUT_S=${JSON.stringify(text)} is not a number of seconds`, `set it to a positive number, or unset it for ${DEFAULT_STOP_TIMEOUT_S}`);
  return seconds * 1000;
}

/** Rank 0's verdict from every rank's vote (rank order). */
export function decideStop(votes: readonly Vote[]): Verdict {
  const behind = votes.findIndex((v) => v.step !== votes[0].step);
  if (behind > 0) return { stop: null, error: `rank ${behind} finished step ${votes[behind].step} while rank 0 finished step ${votes[0].step}` };
  const first = votes.findIndex((v) => v.signal !== null);
  return { stop: first < 0 ? null : { signal: votes[first].signal!, rank: first } };
}

/** Whether any rank of the world got a signal by the end of `step`; the same answer on every rank. */
export async function agreeToStop(dist: DistEnv, step: number, signal: string | undefined, timeoutMs = stopTimeoutMs()): Promise<AgreedStop | undefined> {
  const mine: Vote = { step, signal: signal ?? null };
  if (dist.world === 1) return signal === undefined ? undefined : { signal, rank: dist.rank };
  const { answer } = await exchangeAtRank0(dist, Buffer.from(JSON.stringify(mine)), {
    kind: STOP,
    answer: (all) => Buffer.from(JSON.stringify(decideStop(all.map((b) => JSON.parse(b.toString("utf8")) as Vote)))),
    timeoutMs,
    fix: `a rank died or is stuck in step ${step}; no checkpoint of this step was written (see every rank's output)`,
  });
  const verdict = JSON.parse(answer.toString("utf8")) as Verdict;
  if (verdict.error) throw runtimeErrors.distEnv(verdict.error, "the ranks must run the same steps; start them with the same flags");
  return verdict.stop ?? undefined;
}
