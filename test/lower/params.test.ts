// The small part of the parameters: one-dimensional tensors (norm weights and biases, linear
// biases) are fp32 and replicated, read from `params.small`, summed by one all-reduce and
// updated by their own AdamW, with their moments on the GPU even when the others are on the host.
import { expect } from 'chai';
import { paramLayout } from '../../compiler/lower/params.js';
import type { Instr, Item } from '../../compiler/schedule/types.js';
import { graphOf, scheduleOf } from './helpers.js';

function instrs(items: readonly Item[]): Instr[] {
  return items.flatMap((it) => (it.kind === 'loop' ? instrs(it.body) : it.kind === 'instr' ? [it] : []));
}

describe('small parameters (one-dimensional, fp32, replicated)', () => {
  it('puts every one-dimensional parameter of tiny-gpt in the small part, and nothing else', () => {
    const g = graphOf('tiny-gpt', { sp: 2 });
    const repeat = g.main.nodes.find((n) => n.op === 'repeat')!;
    const pl = paramLayout(g, repeat);
    const stacked = repeat.inputs.slice(1);
    const perLayerDims = (id: string) => g.values[id].type.shape.length - (stacked.includes(id) ? 1 : 0);
    for (const p of [...pl.smallLayer, ...pl.smallGlobal]) expect(perLayerDims(p.id), p.id).to.equal(1);
    for (const p of [...pl.layer, ...pl.global]) expect(perLayerDims(p.id), p.id).to.be.greaterThan(1);
    expect(pl.smallLayer.length + pl.smallGlobal.length + pl.layer.length + pl.global.length).to.equal(g.params.length);
    // tiny-gpt has biases and LayerNorm weights and biases in every layer, and a final LayerNorm
    expect(pl.smallLayer.length).to.be.greaterThan(2);
    expect(pl.smallGlobal.length).to.equal(2);
  });

  it('reads norms and biases from params.small (fp32), sums their gradients once and updates them on the GPU', () => {
    const s = scheduleOf('tiny-gpt', { sp: 2, optimizer: 'host' });
    const buf = (id: string) => s.buffers.find((b) => b.id === id)!;
    for (const id of ['params.small', 'grads.small', 'optim.m.small', 'optim.v.small']) {
      expect(buf(id).dtype, id).to.equal('fp32');
      expect(buf(id).space, id).to.equal('gpu');
    }
    const all = instrs(s.body);
    const norms = all.filter((i) => i.op === 'layernorm');
    const biased = all.filter((i) => i.op === 'linear' && i.attrs.bias === true);
    expect(norms).to.not.be.empty;
    expect(biased).to.not.be.empty;
    for (const x of norms) expect([x.reads[1].buf, x.reads[2].buf]).to.deep.equal(['params.small', 'params.small']);
    for (const x of biased) expect(x.reads[2].buf).to.equal('params.small');
    const reduce = all.filter((i) => i.writes.some((w) => w.buf === 'grads.small') && i.stream === 'comm');
    expect(reduce.map((i) => i.op)).to.deep.equal(['all_reduce']);
    const update = all.filter((i) => i.op === 'adamw' && i.writes[0].buf === 'params.small');
    expect(update).to.have.length(1);
    expect(update[0].writes.map((w) => w.buf)).to.deep.equal(['params.small', 'optim.m.small', 'optim.v.small']);
    // the small part never enters the ZeRO-3 gathers
    for (const x of all.filter((i) => i.op === 'all_gather')) expect(x.reads[0].buf).to.not.equal('params.small');
  });
});
