// GQA with fewer kv heads than ranks: 12 q heads over 2 kv heads (group 6), head dim 64. At SP 3
// and 4 the kv heads are replicated, and at SP 3 one rank's q heads span both kv heads. For GPU
// tests of the ranks; 768 tokens in 4 chunks (192 = 64·3 = 48·4 = 96·2 tokens per rank and chunk).
import { causalLM, defineModel, llamaLayer } from '../../../compiler/dsl/index.js';

export default defineModel({
  name: 'gpu-llama-gqa12',
  sizes: { V: 512, D: 768, L: 2, Hq: 12, Hkv: 2, Dh: 64, F: 1024 },
  train: { seq: 768, sp: 1, chunk: 192, offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 10000 }) }),
});
