// One kv head for four query heads: at SP 2 and above every rank holds a replica of the kv head
// (Ulysses with more ranks than kv heads). For GPU tests of the ranks over NCCL.
import { causalLM, defineModel, llamaLayer } from '../../../compiler/dsl/index.js';

export default defineModel({
  name: 'gpu-llama-mqa',
  sizes: { V: 1003, D: 256, L: 2, Hq: 4, Hkv: 1, Dh: 64, F: 768 },
  train: { seq: 2048, sp: 1, chunk: 512, offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 10000 }) }),
});
