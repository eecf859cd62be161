// `run --accumulate K`: one optimizer step over K windows (of each dp group). The program runs
// K micro steps (fpdt_step_phases): the first clears the gradient shards, each adds its reduced
// gradients into them, the last takes the norm, clips and applies AdamW. Every micro step
// divides by the labels of all K windows, so the step's loss and gradients are the mean over
// every counted token of the K windows (token-weighted, as one batch of K sequences would be,
// and as `fpdtc check --accumulate K` proves on the CPU), and the K losses sum to it.
import { STEP_PHASES } from '../../runtime/load.js';
import type { RankSet } from './ranks.js';

/** Labels a window of dp sequences of `seq` tokens counts when they default to the next token: all but each sequence's last. */
export const defaultLabelCount = (seq: number, dp: number): number => dp * (seq - 1);

/** Labels the program counts (fpdt_set_tokens): those in [0, vocab); the ignore label (-100) is not. */
export function countedLabels(labels: Int32Array, vocab: number): number {
  let n = 0;
  for (const l of labels) if (l >= 0 && l < vocab) n++;
  return n;
}

/**
 * The window (of each dp group) that micro step j of optimizer step k (from 0) reads: the
 * steps read the windows in order, K each, so a checkpoint after step k resumes at window k * K.
 */
export const microWindow = (k: number, j: number, K: number): number => k * K + j;

/** The phases of micro step j of K. */
export function microPhases(j: number, K: number): number {
  return (j === 0 ? STEP_PHASES.zeroGrads : 0) | (j === K - 1 ? STEP_PHASES.update : 0);
}

/** One micro step's window, read before the step starts: its counted labels, and how to give it to the ranks. */
export interface MicroWindow {
  readonly labels: number;
  readonly load: () => void;
  /** model FLOPs of the window (all dp groups); packed documents count attention per document */
  readonly flops: number;
}

export interface AccumulatedStep {
  /** the mean over the K windows' counted tokens */
  readonly loss: number;
  /** the K calls' step times (CUDA events), summed */
  readonly ms: number;
}

/**
 * Runs the micro steps of one optimizer step, one per window (all read first: the first micro
 * step's backward already divides by the labels of every window); `stepMs()` gives the last
 * call's measured time.
 */
export async function accumulatedStep(ranks: RankSet, windows: readonly MicroWindow[], stepMs: () => number): Promise<AccumulatedStep> {
  const K = windows.length;
  const total = Math.max(1, windows.reduce((n, w) => n + w.labels, 0));
  let loss = 0;
  let ms = 0;
  for (const [j, w] of windows.entries()) {
    w.load();
    // after the tokens, which set the count back to their own window's
    if (K > 1) ranks.setLabelCount(total);
    loss += await ranks.step(microPhases(j, K));
    ms += stepMs();
  }
  return { loss, ms };
}
