// A Llama-style model small enough for float64 checks on a CPU: 12 query heads (so SP 1-4
// divide them) and 2 KV heads (so SP 3 and 4 need KV-head replication).
import { causalLM, defineModel, llamaLayer } from '../compiler/dsl/index.js';

export default defineModel({
  name: 'tiny-llama',
  sizes: { V: 64, D: 48, L: 2, Hq: 12, Hkv: 2, Dh: 4, F: 64 },
  train: { seq: 96, sp: 2, chunk: 24, offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 10000 }) }),
});
