// The chunk-size policy, in one place: which chunk sizes a (seq, sp) allows, what a bad one
// is told to use instead, and how `--chunk auto` chooses among the allowed ones. It lives in
// schedule/ because DESIGN.md's map gives schedule/ the chunk-size search, and it stays pure
// (no graphs, no planning): plan.ts plans each candidate and hands the trials back to
// `chooseChunk`; the frontend's config check and the chunk pass validate with `checkChunk`.
//
// Rules (C the chunk in global tokens, S the sequence, P the sequence-parallel degree):
//   1. C <= S, C divides S, and P divides C (each rank holds C/P tokens of every chunk).
//   2. S/C <= LIMITS.chunks: a layer's schedule grows with the square of the chunk count.
//   3. Without FPDT the whole sequence is one chunk, whatever the setting says.
//   4. `auto` tries the candidates below and keeps the fastest plan that fits the device; when
//      none fits, the smallest candidate that planned; when none planned, the smallest.
import { LIMITS } from '../config.js';
import { errors } from '../errors.js';

/**
 * The divisor of `n` that is a multiple of `step` and at least `min`, closest to `target`.
 * Tie rule: of two equally close divisors, the larger (fewer chunks). `n` itself when no
 * divisor qualifies. Walks divisor pairs up to sqrt(n), so it is quick for any sequence the
 * planner takes.
 */
export function nearestDivisor(n: number, target: number, step = 1, min = 1): number {
  let best = n;
  for (let d = 1; d * d <= n; d++) {
    if (n % d !== 0) continue;
    for (const c of [d, n / d]) {
      if (c % step !== 0 || c < min) continue;
      const better = Math.abs(c - target) < Math.abs(best - target) || (Math.abs(c - target) === Math.abs(best - target) && c > best);
      if (better) best = c;
    }
  }
  return best;
}

/** The smallest chunk that keeps the chunk count of `seq` within LIMITS.chunks. */
export const leastChunk = (seq: number): number => Math.ceil(seq / LIMITS.chunks);

/** The allowed chunk closest to `target`: divides seq, a multiple of sp, within the count limit. */
export const suggestChunk = (seq: number, sp: number, target: number): number => nearestDivisor(seq, target, sp, leastChunk(seq));

/** Throws the catalog's one-line error for the first rule `chunk` breaks (seq % sp == 0 is checked before). */
export function checkChunk(chunk: number, seq: number, sp: number): void {
  if (chunk > seq) throw errors.chunkExceedsSeq(chunk, seq);
  if (seq % chunk !== 0) throw errors.chunkNotDivisor(chunk, seq, suggestChunk(seq, sp, chunk));
  if (chunk % sp !== 0) throw errors.chunkNotDivisibleBySp(chunk, sp);
  if (seq / chunk > LIMITS.chunks) throw errors.tooManyChunks(chunk, seq, LIMITS.chunks, suggestChunk(seq, sp, leastChunk(seq)));
}

/** The powers of two `auto` tries, besides seq itself (below seq). */
const AUTO_RANGE = { from: 4096, to: 1 << 20 } as const;

/**
 * Chunk sizes `auto` tries, smallest first: the powers of two in AUTO_RANGE that are allowed
 * (rules 1 and 2), and seq itself.
 */
export function chunkCandidates(seq: number, sp: number): number[] {
  const out: number[] = [];
  for (let c = AUTO_RANGE.from; c < seq && c <= AUTO_RANGE.to; c *= 2) if (seq % c === 0 && c % sp === 0 && seq / c <= LIMITS.chunks) out.push(c);
  out.push(seq);
  return out;
}

/** What `auto` needs to know of one candidate's plan. */
export interface ChunkTrial {
  readonly fits: boolean;
  readonly stepSeconds: number;
}

/**
 * `--chunk auto` (rule 4). `plan` plans one candidate, or returns undefined when its passes
 * reject it. Candidates are tried smallest first and a later one must be strictly faster, so
 * equal predictions keep the smaller chunk. A single candidate is chosen without planning.
 */
export function chooseChunk(seq: number, sp: number, plan: (chunk: number) => ChunkTrial | undefined): number {
  const candidates = chunkCandidates(seq, sp);
  if (candidates.length === 1) return candidates[0];
  let best: { chunk: number; trial: ChunkTrial } | undefined;
  let smallest: number | undefined;
  for (const chunk of candidates) {
    const trial = plan(chunk);
    if (!trial) continue;
    smallest ??= chunk;
    if (trial.fits && (!best || trial.stepSeconds < best.trial.stepSeconds)) best = { chunk, trial };
  }
  return best?.chunk ?? smallest ?? candidates[0];
}

/**
 * The chunk of a configuration whose `auto` has been resolved (by plan.ts `resolveAutoChunk`),
 * checked against rules 1-3. `auto` here is a compiler bug, not a user error.
 */
export function configuredChunk(config: { readonly seq: number; readonly sp: number; readonly fpdt: boolean; readonly chunk: number | 'auto' }): number {
  const { seq, sp, fpdt, chunk } = config;
  if (!fpdt) return seq;
  if (chunk === 'auto') throw new Error("chunk 'auto' reached the chunk pass; resolve it first (plan.ts resolveAutoChunk)");
  checkChunk(chunk, seq, sp);
  return chunk;
}
