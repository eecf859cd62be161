// The learning-rate schedule of `fpdtc run`, proven on the CPU: N optimizer steps of the chunked,
// sharded schedule at the run loop's rates equal N reference AdamW steps at the rates of the
// reference's own formulas. Then schedule functions broken on purpose (a warmup one step late,
// cosine decay without its floor): the check must catch each through the weights it trains.
import { expect } from 'chai';
import { checkModel, type CheckOptions, type CheckReport } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import { formatCheck } from '../../compiler/cli/check.js';
import { expectedLearningRate } from '../../compiler/reference/lr-schedule.js';
import { learningRate, SCHEDULE_KINDS, type ScheduleOptions } from '../../compiler/train/schedule.js';
import tinyLlama from '../../models/tiny-llama.js';

// small enough that a check of four steps takes a fraction of a second
const CONFIG = { sp: 2, seq: 32, chunk: 16, offload: true } as const;
const SCHEDULE = { steps: 4, lr: 1e-3, warmup: 2, kind: 'cosine', minLr: 2e-4 } as const;

const run = (o: TrainDefaults, opts: CheckOptions = {}): CheckReport =>
  checkModel(tinyLlama, resolveConfig(tinyLlama.def.train!, o), { orders: 1, arena: 'private', seed: 5, schedule: SCHEDULE, ...opts });

/** The first step of warmup trains at 0: steps counted from 0 where the schedule counts from 1. */
const warmupOneStepLate: typeof learningRate = (step, o) => (step <= o.warmup ? (o.peak * (step - 1)) / o.warmup : learningRate(step, o));
/** Cosine decay to 0 instead of to min-lr. */
const cosineWithoutFloor: typeof learningRate = (step, o) => learningRate(step, { ...o, minLr: 0 });

describe('the learning-rate schedule in the float64 check', function () {
  this.timeout(120_000);

  it("the reference's formulas give the run loop's rates", () => {
    for (const kind of SCHEDULE_KINDS)
      for (const [warmup, totalSteps] of [[0, 10], [3, 10], [4, 4], [6, 4]]) {
        const o: ScheduleOptions = { peak: 3e-4, warmup, kind, minLr: 3e-5, totalSteps };
        for (let k = 1; k <= 14; k++) expect(expectedLearningRate(k, o), `${kind} warmup ${warmup} total ${totalSteps} step ${k}`).to.be.closeTo(learningRate(k, o), 1e-18);
      }
  });

  it('four cosine steps with warmup equal the reference, and the printout shows each rate', () => {
    const r = run(CONFIG);
    expect(r.ok, JSON.stringify(r.params.filter((x) => x.error > r.limit).slice(0, 3))).to.equal(true);
    [5e-4, 1e-3, 6e-4, 2e-4].forEach((lr, j) => expect(r.steps![j].lr).to.be.closeTo(lr, 1e-18));
    const out = formatCheck(r);
    expect(out).to.match(/4 optimizer steps/);
    expect(out).to.match(/step 4 +lr 2\.000000e-4 \(reference 2\.000000e-4\)/);
  });

  for (const [name, fn] of [['a warmup one step late', warmupOneStepLate], ['cosine decay without its floor', cosineWithoutFloor]] as const) {
    it(`${name} is caught`, () => {
      // the broken function really gives other rates than the reference's formulas
      const r = run(CONFIG, { scheduleFn: fn });
      expect(r.steps!.some((x) => x.lr !== x.referenceLr)).to.equal(true);
      expect(r.ok).to.equal(false);
      expect(Math.max(...r.params.map((x) => x.error))).to.be.greaterThan(1e3 * r.limit);
    });
  }

  it('@slow linear decay with clipping, dp 2 and accumulate 2', () => {
    const r = run({ ...CONFIG, dp: 2 }, { accumulate: 2, maxGradNorm: 1e-2, schedule: { ...SCHEDULE, kind: 'linear', steps: 3, totalSteps: 5 } });
    expect(r.ok, JSON.stringify(r.params.filter((x) => x.error > r.limit).slice(0, 3))).to.equal(true);
  });
});
