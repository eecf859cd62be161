// The learning-rate schedule of `fpdtc run`, against values worked out by hand and against the
// usual cosine-with-warmup definition of torch training scripts, written out here.
import { expect } from 'chai';
import { learningRate, type ScheduleOptions } from '../../compiler/train/schedule.js';

const base: ScheduleOptions = { peak: 1e-3, warmup: 0, kind: 'constant', minLr: 0, totalSteps: 10 };
const close = (a: number, b: number) => expect(a).to.be.closeTo(b, 1e-15);

describe('learning-rate schedule', () => {
  it('warmup: step k of w gets peak*k/w, then the peak', () => {
    const o = { ...base, warmup: 4 };
    expect([1, 2, 3, 4, 5, 10].map((k) => learningRate(k, o))).to.deep.equal([0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3, 1e-3]);
  });

  it('linear: from the peak after warmup to min-lr at the last step', () => {
    // warmup 2 of 10 steps: decay over steps 3..10, p = (k - 2) / 8
    const o: ScheduleOptions = { peak: 1, warmup: 2, kind: 'linear', minLr: 0.2, totalSteps: 10 };
    close(learningRate(2, o), 1);
    close(learningRate(3, o), 0.2 + 0.8 * (7 / 8)); // 0.9
    close(learningRate(6, o), 0.6);
    close(learningRate(10, o), 0.2);
    close(learningRate(12, o), 0.2); // past the total: stays at the floor
  });

  it('cosine: hand-computed points', () => {
    const o: ScheduleOptions = { peak: 2, warmup: 0, kind: 'cosine', minLr: 0, totalSteps: 4 };
    // p = k/4: cos(pi/4) = sqrt(2)/2, cos(pi/2) = 0, cos(3pi/4) = -sqrt(2)/2, cos(pi) = -1
    close(learningRate(1, o), 1 + Math.SQRT1_2);
    close(learningRate(2, o), 1);
    close(learningRate(3, o), 1 - Math.SQRT1_2);
    close(learningRate(4, o), 0);
    close(learningRate(2, { ...o, minLr: 0.5 }), 0.5 + 1.5 * 0.5);
  });

  it("cosine with warmup is torch's usual lambda, evaluated at the number of steps done including this one", () => {
    // The LambdaLR factor that torch scripts use (the Hugging Face get_cosine_schedule_with_warmup
    // definition, num_cycles 0.5), written out:
    //   if s < warmup: s / max(1, warmup)
    //   progress = (s - warmup) / max(1, total - warmup)
    //   max(0, 0.5 * (1 + cos(pi * progress)))
    const torchFactor = (s: number, warmup: number, total: number) => {
      if (s < warmup) return s / Math.max(1, warmup);
      const progress = (s - warmup) / Math.max(1, total - warmup);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
    };
    // torch's scheduler trains its first step at factor(0) = 0; ours trains step k at factor(k)
    for (const [warmup, total] of [[0, 7], [3, 20], [5, 5], [10, 100]]) {
      const o: ScheduleOptions = { peak: 3e-4, warmup, kind: 'cosine', minLr: 0, totalSteps: total };
      for (let k = 1; k <= total; k++) expect(learningRate(k, o)).to.be.closeTo(3e-4 * torchFactor(k, warmup, total), 1e-18);
    }
  });

  it('constant without warmup is the peak at every step; steps are 1-based', () => {
    expect(learningRate(1, base)).to.equal(1e-3);
    expect(learningRate(1000, base)).to.equal(1e-3);
    expect(() => learningRate(0, base)).to.throw(/1-based/);
  });
});
