// Llama-3-70B. Default run: the reference design's headline, 4M tokens on 32 GPUs.
import { causalLM, defineModel, llamaLayer } from '../compiler/dsl/index.js';

export default defineModel({
  name: 'llama70b',
  sizes: { V: 128256, D: 8192, L: 80, Hq: 64, Hkv: 8, Dh: 128, F: 28672 },
  train: { seq: '4M', sp: 32, chunk: '64K', offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 500000 }) }),
});
