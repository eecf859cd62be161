// Training configuration: the model's defaults, overridden by flags, validated once.
import { errors, UserError } from './errors.js';
import type { Checkpoint, TrainConfig } from './ir/types.js';

export type SizeLike = number | string;

/** `65536`, `64K`, `2M`, `1.5M` -> tokens (K = 1024, M = 1024^2). */
export function parseSize(text: SizeLike, flag = 'seq'): number {
  if (typeof text === 'number') {
    if (!Number.isInteger(text) || text <= 0) throw errors.badSize(flag, String(text));
    return text;
  }
  const m = /^(\d+(?:\.\d+)?)([KkMmGg]?)$/.exec(text.trim());
  if (!m) throw errors.badSize(flag, text);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  const v = Number(m[1]) * mult;
  if (!Number.isInteger(v) || v <= 0) throw errors.badSize(flag, text);
  return v;
}

/**
 * The largest runs the planner takes. The schedule of one layer holds every pair of query and
 * key chunks, so its size, the time to plan it and its printed forms grow with the square of
 * the chunk count: 512 chunks take ~10-30 s and over a GiB, 1024 fail to print. Sequences stay
 * far below 2^53 so that every byte count is exact.
 */
export const LIMITS = {
  /** tokens in one sequence: 1024M */
  seq: 2 ** 30,
  /** chunks of one sequence */
  chunks: 256,
  /** any one size of a model (V, D, L, heads, ...) */
  size: 2 ** 30,
  /** sequence-parallel (and data-parallel) degree */
  ranks: 65536,
} as const;

// The chunk policy (schedule/chunk-policy.ts) owns nearestDivisor; re-exported for older imports.
export { nearestDivisor } from './schedule/chunk-policy.js';

/** Prints sizes the way people write them: 65536 -> 64K, 4194304 -> 4M. */
export function formatSize(n: number): string {
  if (n % 1024 ** 2 === 0) return `${n / 1024 ** 2}M`;
  if (n % 1024 === 0) return `${n / 1024}K`;
  return String(n);
}

/** What a model file may say about its default run. */
export interface TrainDefaults {
  seq?: SizeLike;
  sp?: number;
  /** data-parallel degree: groups of sp ranks, each on its own sequence (default 1) */
  dp?: number;
  chunk?: SizeLike | 'auto';
  offload?: boolean;
  checkpoint?: Checkpoint;
  zero?: 0 | 3;
  fpdt?: boolean;
  device?: string;
  /** layers that keep attention for backward instead of recomputing it (default: the planner decides) */
  keepAttention?: number | 'auto';
  /** what kept layers keep: all of q, k, v, o, lse, or the outputs o, lse (default: the planner decides) */
  keepForm?: 'all' | 'outputs';
  /** with checkpoints on the host: the last layers that keep theirs on the GPU (default: the planner decides) */
  gpuCheckpoints?: number | 'auto';
  /** layers that keep activations on the GPU for backward (without offload; default: the planner decides) */
  keepActivations?: number | 'auto';
  /** with offload, where a layer's working stashes go (default: the planner decides) */
  stashes?: 'host' | 'gpu';
  /** where the fp32 AdamW states live (default gpu) */
  optimizer?: 'gpu' | 'host';
  /** windows of packed documents: positions restart and attention stays inside each document (default off) */
  packed?: boolean;
  lr?: number;
  seed?: number;
}

export const BASE_CONFIG: TrainConfig = {
  seq: 4096,
  sp: 1,
  dp: 1,
  chunk: 'auto',
  offload: true,
  checkpoint: 'host',
  zero: 3,
  fpdt: true,
  device: 'h200',
  lr: 3e-4,
  seed: 1234,
};

export function resolveConfig(defaults: TrainDefaults, overrides: TrainDefaults & { hostMemGiB?: number }): TrainConfig {
  const pick = <K extends keyof TrainDefaults>(k: K) => (overrides[k] !== undefined ? overrides[k] : defaults[k]);
  const chunk = pick('chunk');
  return {
    seq: parseSize(pick('seq') ?? BASE_CONFIG.seq, 'seq'),
    sp: pick('sp') ?? BASE_CONFIG.sp,
    dp: dataParallel(pick('dp')),
    chunk: chunk === undefined ? BASE_CONFIG.chunk : chunk === 'auto' ? 'auto' : parseSize(chunk, 'chunk'),
    offload: pick('offload') ?? BASE_CONFIG.offload,
    checkpoint: pick('checkpoint') ?? BASE_CONFIG.checkpoint,
    zero: pick('zero') ?? BASE_CONFIG.zero,
    fpdt: pick('fpdt') ?? BASE_CONFIG.fpdt,
    // device names are case-insensitive (H200 and h200), whether from a flag or the model file
    device: (pick('device') ?? BASE_CONFIG.device).toLowerCase(),
    lr: pick('lr') ?? BASE_CONFIG.lr,
    seed: pick('seed') ?? BASE_CONFIG.seed,
    ...(pick('keepAttention') !== undefined ? { keepAttention: pick('keepAttention') } : {}),
    ...(pick('keepForm') !== undefined ? { keepForm: pick('keepForm') } : {}),
    ...(pick('gpuCheckpoints') !== undefined ? { gpuCheckpoints: pick('gpuCheckpoints') } : {}),
    ...(pick('keepActivations') !== undefined ? { keepActivations: pick('keepActivations') } : {}),
    ...(pick('stashes') !== undefined ? { stashes: pick('stashes') } : {}),
    ...(pick('optimizer') !== undefined ? { optimizer: pick('optimizer') } : {}),
    // only said when on, so that a schedule without packing prints as it always did
    ...(pick('packed') === true ? { packed: true } : {}),
    ...(overrides.hostMemGiB !== undefined ? { hostMemGiB: overrides.hostMemGiB } : {}),
  };
}

/** The data-parallel degree of a model file's `train.dp` or `--dp`: a whole number of at least 1. */
function dataParallel(dp: number | undefined): number {
  if (dp === undefined) return 1;
  if (!Number.isSafeInteger(dp) || dp < 1) throw new UserError(`train.dp ${dp}: the data-parallel degree must be a whole number of at least 1`);
  return dp;
}

/** Data-parallel groups of a resolved config (1 where the config predates dp). */
export const dpOf = (c: { readonly dp?: number }): number => c.dp ?? 1;
