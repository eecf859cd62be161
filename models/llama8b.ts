// Llama-3.1-8B (sizes and RoPE of the 3.1 release: theta 500000, llama3 frequency scaling).
// Default run: the reference design's headline, 2M tokens on 4 GPUs.
import { causalLM, defineModel, llamaLayer, type RopeScaling } from '../compiler/dsl/index.js';

const ropeScaling: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };

export default defineModel({
  name: 'llama8b',
  sizes: { V: 128256, D: 4096, L: 32, Hq: 32, Hkv: 8, Dh: 128, F: 14336 },
  train: { seq: '2M', sp: 4, chunk: '64K', offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 500000, ropeScaling }) }),
});
