// Checks that a training configuration fits the model before any graph is built, and says
// what to change: Ulysses splits query heads and tokens over `sp` ranks, and FPDT cuts the
// sequence into chunks that each rank holds chunk/sp tokens of.
// The chunk rules themselves are the chunk policy's (schedule/chunk-policy.ts).
import { dpOf, formatSize, LIMITS } from '../config.js';
import { errors } from '../errors.js';
import type { TrainConfig } from '../ir/types.js';
import { checkChunk, nearestDivisor } from '../schedule/chunk-policy.js';
import { DEVICE_NAMES } from '../schedule/devices.js';

export { nearestDivisor };

export function validateConfig(config: TrainConfig, sizes: Readonly<Record<string, number>>): void {
  const { seq, sp, chunk } = config;
  if (!DEVICE_NAMES.includes(config.device)) throw errors.unknownDevice(config.device, DEVICE_NAMES);
  if (seq > LIMITS.seq) throw errors.seqTooLong(seq, LIMITS.seq, formatSize(LIMITS.seq));
  if (sp > LIMITS.ranks) throw errors.tooManyRanks('sp', sp, LIMITS.ranks);
  // every rank of the world is planned and reported
  if (dpOf(config) * sp > LIMITS.ranks) throw errors.tooManyRanks('dp', dpOf(config), Math.floor(LIMITS.ranks / sp));
  const layers = sizes.L;
  if (typeof config.keepAttention === 'number' && layers !== undefined && config.keepAttention > layers)
    throw errors.keepAttentionAboveLayers(config.keepAttention, layers);
  if (typeof config.gpuCheckpoints === 'number' && layers !== undefined && config.gpuCheckpoints > layers)
    throw errors.keepAttentionAboveLayers(config.gpuCheckpoints, layers, 'gpu-checkpoints');
  if (typeof config.keepActivations === 'number' && layers !== undefined && config.keepActivations > layers)
    throw errors.keepAttentionAboveLayers(config.keepActivations, layers, 'keep-activations');
  const heads = sizes.Hq;
  if (heads !== undefined && heads % sp !== 0) throw errors.spNotDivisor('the query heads Hq', heads, sp);
  if (sp > seq) throw errors.spExceedsSeq(sp, seq);
  if (seq % sp !== 0) throw errors.spNotDivisor('seq', seq, sp);
  // without FPDT the whole sequence is one chunk, whatever the chunk setting says;
  // auto is chosen later, among allowed chunks only (plan.ts resolveAutoChunk)
  if (chunk === 'auto' || !config.fpdt) return;
  checkChunk(chunk, seq, sp);
}
