// A GPT-style model small enough for float64 checks on a CPU: LayerNorm, GeLU MLP, biases,
// rotary on half the head dim, 12 heads.
import { causalLM, defineModel, gptLayer } from '../compiler/dsl/index.js';

export default defineModel({
  name: 'tiny-gpt',
  sizes: { V: 64, D: 48, L: 2, Hq: 12, Hkv: 12, Dh: 4, F: 96 },
  train: { seq: 96, sp: 2, chunk: 24, offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'layer', layer: (x, l) => gptLayer(x, l, { ropeTheta: 10000, rotaryFraction: 0.5 }) }),
});
