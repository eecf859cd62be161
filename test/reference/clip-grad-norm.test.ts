// Clipping by the global gradient norm (`fpdtc run --clip-grad-norm`), proven on the CPU: the
// chunked, sharded schedule clips as torch.nn.utils.clip_grad_norm_ does on the whole model's
// gradients (the unchunked reference), over ZeRO-3 shards and dp groups; without the all-reduce
// of the ranks' sums of squares each rank would clip by its own shard's norm, and the check says so.
import { expect } from 'chai';
import { checkModel, type CheckOptions, type CheckReport } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import { clipScale } from '../../compiler/reference/executor-ops.js';
import type { Item, Schedule } from '../../compiler/schedule/types.js';
import tinyLlama from '../../models/tiny-llama.js';

const run = (o: TrainDefaults, opts: CheckOptions = {}): CheckReport =>
  checkModel(tinyLlama, resolveConfig(tinyLlama.def.train!, o), { orders: 2, arena: 'private', seed: 11, ...opts });

const BASE = { seq: 96, chunk: 24, offload: true } as const;

function dropGradNormReduce(s: Schedule): Schedule {
  let dropped = 0;
  const walk = (items: readonly Item[]): Item[] =>
    items.flatMap((it): Item[] => {
      if (it.kind === 'loop') return [{ ...it, body: walk(it.body) }];
      if (it.kind === 'instr' && it.op === 'all_reduce' && it.writes[0].buf === 'io.gradsq') {
        dropped++;
        return [];
      }
      return [it];
    });
  const body = walk(s.body);
  expect(dropped, 'all-reduces of io.gradsq dropped').to.equal(1);
  return { ...s, body };
}

describe('clipping by the global gradient norm', function () {
  this.timeout(120_000);

  it('scales as clip_grad_norm_ does: max / (norm + 1e-6), never above 1', () => {
    expect(clipScale(16, 2)).to.be.closeTo(2 / (4 + 1e-6), 1e-15);
    expect(clipScale(16, 8)).to.equal(1);
    expect(clipScale(16, 0)).to.equal(1);
  });

  for (const [name, o] of [['sp 2 (ZeRO-3 shards)', { ...BASE, sp: 2 }], ['dp 2 x sp 2', { ...BASE, sp: 2, dp: 2 }], ['one rank', { ...BASE, sp: 1 }]] as const) {
    it(`${name}: the clipped step equals the reference's`, () => {
      const r = run(o, { maxGradNorm: 1e-3 });
      expect(r.ok, JSON.stringify(r.params.filter((x) => x.error > r.limit).slice(0, 3))).to.equal(true);
    });
  }

  it('each rank clipping by its own shard is caught', () => {
    const r = run({ ...BASE, sp: 2 }, { maxGradNorm: 1e-3, mutate: dropGradNormReduce, verify: false });
    // AdamW's first step hardly depends on the gradients' scale (m / sqrt(v)), only through eps:
    // the difference is small, but far above what the float64 check allows
    expect(r.ok).to.equal(false);
    expect(Math.max(...r.params.map((x) => x.error))).to.be.greaterThan(1e3 * r.limit);
  });
});
