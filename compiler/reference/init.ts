// Deterministic parameters and batches for float64 checks: each parameter from its
// Value's `init` (normal std, ones, zeros), each from its own stream so that adding a
// parameter does not change the others.
import { numel, type Graph } from '../ir/types.js';
import { IGNORE_LABEL } from './cpu-loss.js';
import { Rng } from './rng.js';

/** A seed per string, so each parameter has its own stream. */
function hashSeed(seed: number, key: string): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function initParams(g: Graph, seed: number): Record<string, Float64Array> {
  const out: Record<string, Float64Array> = {};
  for (const id of g.params) {
    const v = g.values[id];
    const n = numel(v.type, g.sizes);
    const init = v.init ?? { kind: 'normal', std: 0.02 };
    if (init.kind === 'normal') out[id] = new Rng(hashSeed(seed, id)).normals(n, init.std);
    else out[id] = new Float64Array(n).fill(init.kind === 'ones' ? 1 : 0);
  }
  return out;
}

export interface Batch {
  tokens: Int32Array;
  labels: Int32Array;
}

/** Random tokens in [0, vocab); labels are the next token, -1 at the end and at a fraction of other rows. */
export function randomBatch(seq: number, vocab: number, seed: number, ignoreFraction = 0.1): Batch {
  const rng = new Rng(hashSeed(seed, 'batch'));
  const tokens = new Int32Array(seq + 1);
  for (let i = 0; i <= seq; i++) tokens[i] = rng.int(vocab);
  const labels = new Int32Array(seq);
  for (let i = 0; i < seq; i++) labels[i] = i === seq - 1 || rng.uniform() < ignoreFraction ? IGNORE_LABEL : tokens[i + 1];
  return { tokens: tokens.slice(0, seq), labels };
}
