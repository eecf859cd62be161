// Checks that a training configuration fits the model before any graph is built, and says
// what to change: Ulysses splits query heads and tokens over `sp` ranks, and FPDT cuts the
// sequence into chunks that each rank holds chunk/sp tokens of.
import { errors } from '../errors.js';
import type { TrainConfig } from '../ir/types.js';
import { DEVICE_NAMES } from '../schedule/devices.js';

export function validateConfig(config: TrainConfig, sizes: Readonly<Record<string, number>>): void {
  const { seq, sp, chunk } = config;
  if (!DEVICE_NAMES.includes(config.device)) throw errors.unknownDevice(config.device, DEVICE_NAMES);
  const heads = sizes.Hq;
  if (heads !== undefined && heads % sp !== 0) throw errors.spNotDivisor('the query heads Hq', heads, sp);
  if (sp > seq) throw errors.spExceedsSeq(sp, seq);
  if (seq % sp !== 0) throw errors.spNotDivisor('seq', seq, sp);
  if (chunk === 'auto') return;
  if (chunk > seq) throw errors.chunkExceedsSeq(chunk, seq);
  if (seq % chunk !== 0) throw errors.chunkNotDivisor(chunk, seq, nearestDivisor(seq, chunk, sp));
  if (chunk % sp !== 0) throw errors.chunkNotDivisibleBySp(chunk, sp);
}

/**
 * The divisor of `n` that is a multiple of `step` and closest to `target` (the larger one
 * on a tie: fewer chunks). `step` must divide `n`, so `n` itself always qualifies.
 */
export function nearestDivisor(n: number, target: number, step = 1): number {
  let best = n;
  for (let d = 1; d * d <= n; d++) {
    if (n % d !== 0) continue;
    for (const c of [d, n / d]) {
      if (c % step !== 0) continue;
      const better = Math.abs(c - target) < Math.abs(best - target) || (Math.abs(c - target) === Math.abs(best - target) && c > best);
      if (better) best = c;
    }
  }
  return best;
}
