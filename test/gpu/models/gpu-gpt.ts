// tiny-gpt's structure with a head dim the attention kernels take (64): LayerNorm, GeLU MLP,
// biases, rotary on half the head dim, 4 chunks, offload on, checkpoints on host. For GPU tests.
import { causalLM, defineModel, gptLayer } from '../../../compiler/dsl/index.js';

export default defineModel({
  name: 'gpu-gpt',
  sizes: { V: 512, D: 256, L: 2, Hq: 4, Hkv: 4, Dh: 64, F: 1024 },
  train: { seq: 1024, sp: 1, chunk: 256, offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'layer', layer: (x, l) => gptLayer(x, l, { ropeTheta: 10000, rotaryFraction: 0.5 }) }),
});
