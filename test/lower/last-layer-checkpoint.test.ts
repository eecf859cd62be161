// The last layer needs no checkpoint: its input is still in act.carry when the backward starts with
// it. Its forward copies nothing out, its backward nothing back, and a one-layer model (the layer
// DeepSpeed's FPDT layer is compared with) has no checkpoint buffers at all.
import { expect } from 'chai';
import { checkModel } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import type { Schedule } from '../../compiler/schedule/types.js';
import { unroll } from '../../compiler/schedule/unroll.js';
import tinyLlama from '../../models/tiny-llama.js';
import oneLayer from '../fixtures/models/tiny-attn-one-layer.js';
import { graphOfModel, syncedSchedule } from './helpers.js';

const checkpointCopies = (s: Schedule) =>
  [...unroll(s)].filter((it) => it.kind === 'instr' && it.item.op === 'copy' && [...it.item.reads, ...it.item.writes].some((r) => r.buf.startsWith('ckpt.'))).length;

describe('the last layer keeps its checkpoint in act.carry', () => {
  it('a two-layer model copies one layer out and back; a one-layer model none, with no checkpoint buffers', () => {
    const two = syncedSchedule(graphOfModel(tinyLlama, { sp: 1, seq: 96, chunk: 24, checkpoint: 'host' }));
    expect(checkpointCopies(two)).to.equal(2); // layer 0: out in the forward, back in the backward
    const one = syncedSchedule(graphOfModel(oneLayer, { sp: 1, seq: 96, chunk: 24, checkpoint: 'host' }));
    expect(checkpointCopies(one)).to.equal(0);
    expect(one.buffers.map((b) => b.id).filter((x) => x.startsWith('ckpt.') || x === 'act.xck')).to.deep.equal([]);
  });

  for (const [name, model, o] of [
    ['one layer, sp 2, offloaded, host checkpoints', oneLayer, { sp: 2, seq: 96, chunk: 24, checkpoint: 'host', stashes: 'host' }],
    ['one layer, sp 1, resident, GPU checkpoints', oneLayer, { sp: 1, seq: 96, chunk: 24, offload: false, checkpoint: 'gpu' }],
    ['two layers, sp 2, the last keeps attention', tinyLlama, { sp: 2, seq: 96, chunk: 24, checkpoint: 'host', keepAttention: 1, stashes: 'host' }],
  ] as const)
    it(`equals the unchunked model: ${name}`, () => {
      const r = checkModel(model, resolveConfig(model.def.train!, o as TrainDefaults), { orders: 2, arena: 'planned', seed: 13 });
      expect(r.maxError).to.be.at.most(1e-9);
      expect(r.ok).to.equal(true);
    });
});
