// The GPT-style layer at the sizes of the GPTNeoXForCausalLM parity case (test/gpu/hf/): LayerNorm,
// q/k/v/o with biases, rotary on half the head dim, GeLU (tanh) MLP, sequential residuals, untied
// head, odd vocabulary. GPT-NeoX fuses q, k and v into one query_key_value per head; the parity
// script splits and joins it.
import { causalLM, defineModel, gptLayer } from '../../../compiler/dsl/index.js';

export default defineModel({
  name: 'hf-gptneox',
  sizes: { V: 5003, D: 256, L: 2, Hq: 4, Hkv: 4, Dh: 64, F: 1024 },
  train: { seq: 12288, sp: 1, chunk: 4096, offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'layer', layer: (x, l) => gptLayer(x, l, { ropeTheta: 10000, rotaryFraction: 0.5 }) }),
});
