// Llama-3-8B's layer at 12 layers: one rank's layer parameters pass 2^31 elements (2.6e9), so the
// GPU AdamW, the gradient buffers and the parameter shards are exercised past 32-bit indexing on one
// H200 (states ~60 GB). For GPU tests of whether an update lands.
import { causalLM, defineModel, llamaLayer } from '../../../compiler/dsl/index.js';

export default defineModel({
  name: 'gpu-llama8b-l12',
  sizes: { V: 128256, D: 4096, L: 12, Hq: 32, Hkv: 8, Dh: 128, F: 14336 },
  train: { seq: '16K', sp: 1, chunk: '16K', offload: false, zero: 3, checkpoint: 'gpu', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 500000 }) }),
});
