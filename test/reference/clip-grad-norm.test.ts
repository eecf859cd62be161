// Clipping by the global gradient norm (`fpdtc run --clip-grad-norm`), proven on the CPU: the
// chunked, sharded schedule clips as torch.nn.utils.clip_grad_norm_ does on the whole model's
// gradients (the unchunked reference), over ZeRO-3 shards and dp groups; without the all-reduce
// of the ranks' sums of squares each rank would clip by its own shard's norm, and the check says so.
// Then `check --steps N --clip-grad-norm X`: the reference clips with torch's formula written apart
// from the executor's (reference/clip-grad-norm.ts), each step's norm is compared and printed, and a
// wrong coefficient or a shard's norm in the executor is caught over several steps.
import { expect } from 'chai';
import { checkModel, type CheckOptions, type CheckReport } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import { formatCheck } from '../../compiler/cli/check.js';
import { expectedClip } from '../../compiler/reference/clip-grad-norm.js';
import { clipScale, type ClipScale } from '../../compiler/reference/executor-ops.js';
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

// small enough that three clipped steps take a fraction of a second; the norm is about 2
const SMALL = { sp: 2, seq: 32, chunk: 16, offload: true } as const;
const STEPS = { steps: 3, lr: 1e-3 } as const;
const MAX = 1e-2;

/** The squared norm where the norm belongs: a coefficient of max / (norm^2 + 1e-6). */
const squaredNorm: ClipScale = (sq, max) => (sq === undefined || !(max > 0) ? 1 : Math.min(1, max / (sq + 1e-6)));
/** Clipping that never acts. */
const neverClips: ClipScale = () => 1;

describe('check --steps N --clip-grad-norm X', function () {
  this.timeout(120_000);
  const steps = (opts: CheckOptions = {}) => run(SMALL, { orders: 1, seed: 5, schedule: STEPS, maxGradNorm: MAX, ...opts });

  it("the reference's own formula: the norm of the tensors' norms, max / (norm + 1e-6) clamped at 1", () => {
    const g = [Float64Array.of(3, 4), Float64Array.of(12)];
    expect(expectedClip(g, 1)).to.deep.equal({ norm: 13, coef: 1 / (13 + 1e-6), clipped: true });
    expect(expectedClip(g, 20)).to.deep.equal({ norm: 13, coef: 1, clipped: false });
    expect(expectedClip(g, 0)).to.deep.equal({ norm: 13, coef: 1, clipped: false });
    // the kernel's formula that the executor follows gives the same factor
    for (const max of [1e-3, 1, 12.9999, 13, 20]) expect(clipScale(169, max)).to.be.closeTo(expectedClip(g, max).coef, 1e-15);
  });

  it('three clipped steps, sp 2: every norm before clipping equals the reference, printed with whether it clipped', () => {
    const r = steps();
    expect(r.ok, JSON.stringify(r.params.filter((x) => x.error > r.limit).slice(0, 3))).to.equal(true);
    expect(r.clip!.max).to.equal(MAX);
    expect(r.clip!.steps).to.have.length(3);
    for (const x of r.clip!.steps) {
      // clipping acts at every step: the check proves the clipped update, not an idle one
      expect(x.referenceNorm).to.be.greaterThan(10 * MAX);
      expect([x.clipped, x.referenceClipped]).to.deep.equal([true, true]);
      expect(x.normError).to.be.below(1e-12);
    }
    const out = formatCheck(r);
    expect(out).to.match(/, clipping at global gradient norm 0\.01;/);
    expect(out).to.match(/\n {2}clip 3 +grad norm \d\.\d{6}e\+0 \(reference \d\.\d{6}e\+0\) +\d\.\de-\d+ +clipped \(reference clipped\)\n/);
  });

  it('two clipped steps of two accumulated windows each, sp 2', () => {
    const r = steps({ accumulate: 2, schedule: { ...STEPS, steps: 2 } });
    expect(r.ok, JSON.stringify(r.params.filter((x) => x.error > r.limit).slice(0, 3))).to.equal(true);
    expect(r.clip!.steps.map((x) => x.referenceClipped)).to.deep.equal([true, true]);
  });

  it('@slow a maximum above every norm: nothing clipped on either side, and said so', () => {
    const r = steps({ maxGradNorm: 1e3, schedule: { ...STEPS, steps: 2 } });
    expect(r.ok).to.equal(true);
    expect(r.clip!.steps.map((x) => [x.clipped, x.referenceClipped])).to.deep.equal([[false, false], [false, false]]);
    expect(formatCheck(r)).to.match(/clip 2 .* not clipped \(reference not clipped\)/);
  });

  for (const [name, clipFn, slow] of [['a coefficient from the squared norm', squaredNorm, ''], ['clipping that never acts', neverClips, '@slow ']] as const) {
    it(`${slow}the executor clipping with ${name} is caught through the weights`, () => {
      // the broken factor really differs from the kernel's at these norms
      const r = steps({ clipFn });
      expect(clipFn(4, MAX)).to.not.be.closeTo(clipScale(4, MAX), 1e-6);
      // the first step's norm before clipping is right; its update is not (later norms move with the weights)
      expect(r.clip!.steps[0].normError).to.be.below(1e-12);
      expect(r.ok).to.equal(false);
      expect(Math.max(...r.params.map((x) => x.error))).to.be.greaterThan(1e3 * r.limit);
    });
  }

  it("each rank's shard norm in place of the global one is caught, the printed norms too", () => {
    const r = steps({ mutate: dropGradNormReduce, verify: false });
    expect(r.ok).to.equal(false);
    expect(Math.max(...r.params.map((x) => x.error))).to.be.greaterThan(1e3 * r.limit);
    expect(Math.min(...r.clip!.steps.map((x) => x.normError))).to.be.greaterThan(1e-3);
  });
});
