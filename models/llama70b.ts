// Llama-3.1-70B (sizes and RoPE of the 3.1 release: theta 500000, llama3 frequency scaling).
// Default run: the reference design's headline, 4M tokens on 32 GPUs.
import { causalLM, defineModel, llamaLayer, type RopeScaling } from '../compiler/dsl/index.js';

const ropeScaling: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };

export default defineModel({
  name: 'llama70b',
  sizes: { V: 128256, D: 8192, L: 80, Hq: 64, Hkv: 8, Dh: 128, F: 28672 },
  train: { seq: '4M', sp: 32, chunk: '64K', offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 500000, ropeScaling }) }),
});
