// A rotating buffer whose every access names a slot known before the step runs is one buffer per
// slot, so that each slot has its own live interval: in a one-layer model the layer output's
// carry slot is dead after the loss, and the backward's gradient carry takes its bytes.
import { expect } from 'chai';
import { checkModel } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import { splitStaticSlots } from '../../compiler/lower/static-slots.js';
import { runScheduleStages } from '../../compiler/lower/pipeline.js';
import { sharedBytes, type MemoryPlan } from '../../compiler/schedule/memory.js';
import { aff, v, type Ref, type Schedule } from '../../compiler/schedule/types.js';
import oneLayer from '../fixtures/models/tiny-attn-one-layer.js';
import { attentionOnlyModel } from '../fixtures/models/tiny-attn-only.js';
import { buffer, instr, loop, ref, scheduleOf } from '../schedule/fixtures.js';
import { graphOfModel } from './helpers.js';

const OFFLOADED = { sp: 1, seq: 96, chunk: 24, checkpoint: 'host', stashes: 'host' } as const;

const plannedOf = (model: typeof oneLayer, o: TrainDefaults) => runScheduleStages(graphOfModel(model, o), { until: 'plan' });
const ids = (s: Schedule, prefix: string) => s.buffers.filter((b) => b.id.startsWith(prefix)).map((b) => `${b.id} x${b.slots}`);
const place = (p: MemoryPlan, buf: string) => p.placements.find((x) => x.buf === buf)!;
const refsOf = (s: Schedule): Ref[] => {
  const out: Ref[] = [];
  const walk = (items: Schedule['body']) => items.forEach((it) => (it.kind === 'loop' ? walk(it.body) : it.kind === 'instr' && out.push(...it.reads, ...it.writes)));
  walk(s.body);
  return out;
};

describe('buffers whose slots are known before the step runs', () => {
  it('split into one buffer per slot where every access names one slot (over the ranges of its loops)', () => {
    const body = [
      instr('compute', 'fill', [], [ref('a', 0, 4, aff(1))]),
      loop('l', 0, 1, 'layer', [instr('compute', 'fill', [ref('a', 0, 4, v('l', 1, 1))], [ref('a', 0, 4, v('l'))])]),
      // the one trip of j = 3 names slot 1; r (the rank, sp 1) slot 0
      loop('j', 3, 4, 'kv', [instr('compute', 'fill', [], [ref('b', 0, 4, v('j')), ref('c', 0, 4, v('r'))])]),
    ];
    const s = splitStaticSlots(scheduleOf(body, [buffer('a', 'gpu', 'act', [4], 2), buffer('b', 'gpu', 'attn', [4], 2), buffer('c', 'gpu', 'attn', [4], 2)]));
    expect(s.buffers.map((b) => `${b.id} x${b.slots}`)).to.deep.equal(['a#0 x1', 'a#1 x1', 'b#0 x1', 'b#1 x1', 'c#0 x1', 'c#1 x1']);
    expect(refsOf(s).map((r) => `${r.buf}${r.slot ? '@' : ''}`)).to.deep.equal(['a#1', 'a#1', 'a#0', 'b#1', 'c#0']);
  });

  it('stay rotating where a slot varies with a loop or the rank, or a copy from the host fills them', () => {
    const body = [
      loop('i', 0, 2, 'chunk', [instr('compute', 'fill', [], [ref('a', 0, 4, v('i'))])]),
      instr('h2d', 'copy', [ref('h', 0, 4)], [ref('d', 0, 4, aff(1))]),
      // j runs 1..2 for i = 0 and 2..2 for i = 1: slot j takes two values
      loop('i', 0, 2, 'chunk', [loop('j', v('i', 1, 1), 3, 'kv', [instr('compute', 'fill', [], [ref('b', 0, 4, v('j'))])])]),
      instr('compute', 'fill', [], [ref('c', 0, 4, v('r'))]),
    ];
    const s = scheduleOf(body, [buffer('a', 'gpu', 'act', [4], 2), buffer('b', 'gpu', 'attn', [4], 2), buffer('c', 'gpu', 'attn', [4], 2), buffer('d', 'gpu', 'attn', [4], 2), buffer('h', 'host', 'stash', [4])]);
    const two = { ...s, config: { ...s.config, sp: 2 } };
    expect(splitStaticSlots(two)).to.equal(two);
  });

  it("a one-layer model's carries are one buffer per slot; a model of three layers keeps them rotating", () => {
    const one = plannedOf(oneLayer, OFFLOADED).schedule!;
    expect(ids(one, 'act.')).to.deep.equal(['act.carry#0 x1', 'act.carry#1 x1', 'act.dcarry#0 x1', 'act.dcarry#1 x1']);
    // the next layer's parameters are never gathered: its slot is not declared
    expect(ids(one, 'gathered.layer')).to.deep.equal(['gathered.layer#0 x1']);
    // (two layers' split too, their forward loops running once each; and so do the backward's
    // gradient carries of three, whose layers each have a loop of their own)
    const three = plannedOf(attentionOnlyModel(3), OFFLOADED).schedule!;
    expect(ids(three, 'act.carry')).to.deep.equal(['act.carry x2']);
  });

  it("the layer output's slot, dead after the loss, lends its bytes to the backward", () => {
    const { plan } = plannedOf(oneLayer, OFFLOADED);
    const out = place(plan!, 'act.carry#1');
    const input = place(plan!, 'act.carry#0');
    // the layer input is read by the weight gradients, through the backward
    expect(input.live[1]).to.be.greaterThan(place(plan!, 'act.dcarry#0').live[0]);
    const reusers = sharedBytes(plan!).get('act.carry#1') ?? [];
    expect(reusers).to.include('act.dcarry#0');
    expect(place(plan!, 'act.dcarry#0').live[0]).to.be.greaterThan(out.live[1]);
  });

  it('equals the unchunked model within 1e-9 with buffers at their planned, shared offsets', () => {
    const r = checkModel(oneLayer, resolveConfig(oneLayer.def.train!, OFFLOADED as TrainDefaults), { orders: 2, arena: 'planned', seed: 17 });
    expect(r.maxError).to.be.at.most(1e-9);
    expect(r.ok).to.equal(true);
  });

  it('the executor catches a plan that lets the kept layer input share the reused bytes', () => {
    // act.carry#0 moved onto act.carry#1's bytes: the gradient carry then overwrites the input
    // the weight gradients still read
    const overlap = (p: MemoryPlan): MemoryPlan => {
      const at = place(p, 'act.carry#1').offset;
      return { ...p, placements: p.placements.map((x) => (x.buf === 'act.carry#0' ? { ...x, offset: at } : x)) };
    };
    const r = checkModel(oneLayer, resolveConfig(oneLayer.def.train!, OFFLOADED as TrainDefaults), { orders: 1, arena: 'planned', seed: 17, mutatePlan: overlap });
    expect(r.ok).to.equal(false);
  });
});
