// Llama-3.2-1B (sizes and RoPE of the 3.2 release: theta 500000, llama3 frequency scaling with
// factor 32): input embedding tied to the LM head.
import { causalLM, defineModel, llamaLayer, type RopeScaling } from '../compiler/dsl/index.js';

const ropeScaling: RopeScaling = { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };

export default defineModel({
  name: 'llama1b',
  sizes: { V: 128256, D: 2048, L: 16, Hq: 32, Hkv: 8, Dh: 64, F: 8192 },
  train: { seq: '256K', sp: 1, chunk: '64K', offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) =>
    causalLM(m, { norm: 'rms', tiedEmbeddings: true, layer: (x, l) => llamaLayer(x, l, { ropeTheta: 500000, ropeScaling }) }),
});
