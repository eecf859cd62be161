// tiny-llama's structure with a head dim the attention kernels take (64): GQA 4/2, SwiGLU,
// RMSNorm, tied embeddings, 4 chunks, offload on, checkpoints on host. For GPU tests.
import { causalLM, defineModel, llamaLayer } from '../../../compiler/dsl/index.js';

export default defineModel({
  name: 'gpu-llama',
  sizes: { V: 512, D: 256, L: 2, Hq: 4, Hkv: 2, Dh: 64, F: 512 },
  train: { seq: 1024, sp: 1, chunk: 256, offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 10000 }) }),
});
