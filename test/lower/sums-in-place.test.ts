// Gradient sums whose later term is a linear_dx take no buffers and no instruction: the terms share
// the sum's place, the earlier writes it, the linear_dx adds into it (linear_dx_add).
import { expect } from 'chai';
import { checkModel } from '../../compiler/check.js';
import { resolveConfig } from '../../compiler/config.js';
import { planMemory } from '../../compiler/schedule/memory.js';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import type { Schedule } from '../../compiler/schedule/types.js';
import { unroll } from '../../compiler/schedule/unroll.js';
import tinyGpt from '../../models/tiny-gpt.js';
import tinyLlama from '../../models/tiny-llama.js';
import oneLayer from '../fixtures/models/tiny-attn-one-layer.js';
import dsLayer from '../gpu/models/ds-attn8b.js';
import { graphOfModel, scheduleOf, syncedSchedule } from './helpers.js';

const count = (s: Schedule, op: string) => [...unroll(s)].filter((it) => it.kind === 'instr' && it.item.op === op).length;

describe('gradient sums in place', () => {
  it("the q, k, v projections' input gradients, and gate's and up's: one place, accumulating GEMMs, no adds", () => {
    const s = scheduleOf('tiny-llama', { sp: 1, seq: 96, chunk: 24, keepAttention: 0, stashes: 'host' });
    // per layer and chunk of the backward: k and q add into v's (2), gate into up's (1)
    expect(count(s, 'linear_dx_add')).to.equal(2 * 4 * 3);
    const one = syncedSchedule(graphOfModel(oneLayer, { sp: 1, seq: 96, chunk: 24, keepAttention: 0, stashes: 'host' }));
    expect(count(one, 'add')).to.equal(0);
    expect(one.buffers.map((b) => b.id).filter((x) => x.startsWith('b.d_x'))).to.deep.equal([]);
  });

  for (const [name, model, o] of [
    ['tiny-llama, sp 2, offloaded, recomputed', tinyLlama, { sp: 2, seq: 96, chunk: 24, keepAttention: 0, stashes: 'host' as const }],
    ['tiny-gpt (biases), sp 1, resident', tinyGpt, { sp: 1, seq: 96, chunk: 32, offload: false }],
    ['one layer, sp 2', oneLayer, { sp: 2, seq: 96, chunk: 24 }],
  ] as const)
    it(`equals the unchunked model: ${name}`, () => {
      const r = checkModel(model, resolveConfig(model.def.train!, o), { orders: 2, arena: 'planned', seed: 17 });
      expect(r.maxError).to.be.at.most(1e-9);
      expect(r.ok).to.equal(true);
    });

  // 28.8 GiB before the carries' slots were split (static-slots.test.ts); DeepSpeed measured 27.8
  it("DeepSpeed's layer at 512K plans 24.8 GiB of GPU with FPDT's host stashes", () => {
    const s = syncedSchedule(graphOfModel(dsLayer, { seq: '512K', chunk: '64K', offload: true, checkpoint: 'host', stashes: 'host' }));
    expect(planMemory(s, deviceProfile('h200')).gpu.size / 2 ** 30).to.be.within(24.5, 25);
  });
});
