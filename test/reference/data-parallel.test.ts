// Data parallelism (dp groups of sp ranks, a sequence each): the compiled step of every group
// together equals one rank on the batch of all dp sequences, in float64, for dp 2 x sp 1,
// dp 2 x sp 2 and dp 3 x sp 2; the collectives say which ranks they span; a loss summed
// inside one group only is caught; dp 1 carries no span at all.
import { expect } from 'chai';
import { checkModel, groupBatches, type CheckOptions, type CheckReport } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import { printGraph } from '../../compiler/ir/printer.js';
import { interpretBatch } from '../../compiler/reference/batch.js';
import { initParams } from '../../compiler/reference/init.js';
import { interpret } from '../../compiler/reference/interpreter.js';
import { listSchedule } from '../../compiler/schedule/listing.js';
import type { Instr, Item, Schedule } from '../../compiler/schedule/types.js';
import tinyLlama from '../../models/tiny-llama.js';
import { graphOf, scheduleOf } from '../lower/helpers.js';

function run(o: TrainDefaults, opts: CheckOptions = {}): CheckReport {
  return checkModel(tinyLlama, resolveConfig(tinyLlama.def.train!, o), { orders: 2, seed: 5, ...opts });
}

function* instrs(items: readonly Item[]): Generator<Instr> {
  for (const it of items) {
    if (it.kind === 'instr') yield it;
    else if (it.kind === 'loop') yield* instrs(it.body);
  }
}

const COLLECTIVES = new Set(['all_to_all', 'all_gather', 'reduce_scatter', 'all_reduce']);
const collectives = (s: Schedule) => [...instrs(s.body)].filter((x) => COLLECTIVES.has(x.op));

describe('data parallelism: dp groups of sp ranks, a sequence each', () => {
  for (const [dp, sp, seq, chunk] of [
    [2, 1, 96, 24],
    [2, 2, 96, 48],
    [3, 2, 48, 24],
  ] as const)
    it(`dp ${dp} x sp ${sp} equals one rank on the batch of ${dp} sequences (1e-9)`, () => {
      const r = run({ dp, sp, seq, chunk });
      expect(r.ok, `max error ${r.maxError}`).to.equal(true);
      expect(r.config.dp).to.equal(dp);
    });

  it('the batch reference weighs each sequence by its counted tokens, and both sequences count', () => {
    const config = resolveConfig(tinyLlama.def.train!, { dp: 2, seq: 48, chunk: 24 });
    const built = tinyLlama.build(config);
    const params = initParams(built, 5);
    const batches = groupBatches(config, built.sizes.V, 5);
    expect(batches[0].tokens).to.not.deep.equal(batches[1].tokens);
    // forward only: the loss of the batch lies between the two sequences' own losses
    const losses = batches.map((b) => interpret(built, b, params).loss);
    const both = interpretBatch(built, batches, params).loss;
    expect(Math.abs(both - losses[0])).to.be.greaterThan(1e-6);
    expect(both).to.be.within(Math.min(...losses), Math.max(...losses));
  });

  it('a loss summed inside each group only (not the world) is caught', () => {
    const groupLoss = (s: Schedule): Schedule => {
      const rewrite = (items: readonly Item[]): Item[] =>
        items.map((it) => {
          if (it.kind === 'loop') return { ...it, body: rewrite(it.body) };
          if (it.kind === 'instr' && it.op === 'all_reduce' && it.reads[0].buf === 'io.loss') return { ...it, attrs: { ...it.attrs, span: 'sp', ranks: s.config.sp } };
          return it;
        });
      return { ...s, body: rewrite(s.body) };
    };
    const r = run({ dp: 2, sp: 2, seq: 48, chunk: 24 }, { mutate: groupLoss, verify: false });
    expect(r.ok).to.equal(false);
    expect(r.loss.error).to.be.greaterThan(1e-3);
  });

  it('collectives say which ranks they span: all-to-alls the sp group, ZeRO-3 and the loss the world', () => {
    const s = scheduleOf('tiny-llama', { dp: 2, sp: 2, seq: 48, chunk: 24 });
    expect(s.world).to.equal(4);
    const all = collectives(s);
    for (const c of all) {
      if (c.op === 'all_to_all') expect(c.attrs, c.id).to.include({ span: 'sp', ranks: 2 });
      else expect(c.attrs, `${c.id} ${c.op}`).to.include({ span: 'world', ranks: 4 });
    }
    expect(new Set(all.map((c) => c.op))).to.deep.equal(COLLECTIVES);
    const listing = listSchedule(s);
    expect(listing).to.match(/^schedule tiny-llama: 4 ranks \(dp 2 x sp 2: a sequence per group\)/);
    expect(listing).to.match(/all_to_all .*span=sp ranks=2/);
    expect(listing).to.match(/reduce_scatter .*span=world ranks=4/);
    // ZeRO-3 shards over the world, the sequence over the group
    const graph = printGraph(graphOf('tiny-llama', { dp: 2, sp: 2, seq: 48, chunk: 24 }));
    expect(graph).to.match(/param %embed_tokens: bf16\[V, D\] \{zero3\/4\}/);
    expect(graph).to.match(/input %tokens: int32\[S\] \{seq\/2\}/);
  });

  it('dp 1: no collective carries a span, the world is the sp group', () => {
    const s = scheduleOf('tiny-llama', { sp: 2, seq: 48, chunk: 24 });
    expect(s.world).to.equal(2);
    for (const c of collectives(s)) expect(c.attrs, c.id).to.not.have.property('span');
  });

  it('train.dp must be a whole number of at least 1', () => {
    expect(() => resolveConfig({ dp: 0 }, {})).to.throw(/train\.dp 0: the data-parallel degree must be a whole number of at least 1/);
    expect(() => resolveConfig({ dp: 1.5 }, {})).to.throw(/train\.dp 1\.5/);
    expect(resolveConfig({ dp: 2 }, {}).dp).to.equal(2);
    expect(resolveConfig({}, {}).dp).to.equal(1);
  });
});
