// The 6.7B GPT of the Ulysses-Offload tutorial: 32 layers, hidden 4096, 32 heads, GeLU MLP,
// LayerNorm, rotary on 25% of the head dim with theta 1e8. Vocabulary: GPT-2's 50257,
// padded to 50304 as Megatron does; LM head not tied.
import { causalLM, defineModel, gptLayer } from '../compiler/dsl/index.js';

export default defineModel({
  name: 'gpt6.7b',
  sizes: { V: 50304, D: 4096, L: 32, Hq: 32, Hkv: 32, Dh: 128, F: 16384 },
  train: { seq: 262144, sp: 4, chunk: 65536, offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) =>
    causalLM(m, { norm: 'layer', layer: (x, l) => gptLayer(x, l, { ropeTheta: 1e8, rotaryFraction: 0.25 }) }),
});
