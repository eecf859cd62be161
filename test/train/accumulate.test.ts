// `run --accumulate K` without a GPU: the calls an optimizer step makes (phases, label count,
// the order of tokens and count), the flag's usage errors, and a checkpoint refusing another K.
import { expect } from 'chai';
import { checkResumable, type TrainerState } from '../../compiler/train/checkpoint.js';
import { accumulatedStep, countedLabels, defaultLabelCount, microPhases, type MicroWindow } from '../../compiler/train/accumulate.js';
import type { RankSet } from '../../compiler/train/ranks.js';
import { UserError } from '../../compiler/errors.js';
import { STEP_PHASES } from '../../runtime/load.js';
import { runCli } from '../cli/run-cli.js';

/** A stand-in for the ranks that records every call. */
function fakeRanks(losses: number[]) {
  const calls: string[] = [];
  const ranks = {
    setTokens: () => calls.push('tokens'),
    setLabelCount: (n: number) => calls.push(`count ${n}`),
    step: async (phases: number) => (calls.push(`step ${phases}`), losses.shift()!),
  } as unknown as RankSet;
  return { ranks, calls };
}

const window = (labels: number, ranks: () => RankSet): MicroWindow => ({ labels, flops: 0, load: () => ranks().setTokens(new Int32Array(0)) });

describe('run --accumulate: one optimizer step of K micro steps', () => {
  it('the first micro step zeroes, the last updates, every one divides by the labels of all K windows', async () => {
    const { ranks, calls } = fakeRanks([0.5, 0.25, 1]);
    const r = await accumulatedStep(ranks, [window(10, () => ranks), window(7, () => ranks), window(3, () => ranks)], () => 2);
    expect(calls).to.deep.equal(['tokens', 'count 20', `step ${STEP_PHASES.zeroGrads}`, 'tokens', 'count 20', 'step 0', 'tokens', 'count 20', `step ${STEP_PHASES.update}`]);
    // each micro loss is that window's share of the batch mean: they sum to it
    expect(r).to.deep.equal({ loss: 1.75, ms: 6 });
  });

  it('one window is the whole step, with its own label count', async () => {
    const { ranks, calls } = fakeRanks([3]);
    expect((await accumulatedStep(ranks, [window(5, () => ranks)], () => 1)).loss).to.equal(3);
    expect(calls).to.deep.equal(['tokens', `step ${STEP_PHASES.whole}`]);
    expect(microPhases(0, 1)).to.equal(STEP_PHASES.whole);
  });

  it('counts the labels the program counts', () => {
    expect(defaultLabelCount(96, 2)).to.equal(190);
    expect(countedLabels(Int32Array.from([0, -100, 31, 32, 5]), 32)).to.equal(3);
  });

  it('--accumulate 0 or 1.5 is one usage line, exit 2', () => {
    for (const k of ['0', '1.5']) {
      const r = runCli(['run', 'out/no-such-model', '--accumulate', k]);
      expect(r.code, k).to.equal(2);
      expect(r.stderr.trim()).to.equal(`error: --accumulate ${k}: a whole number of windows per optimizer step, at least 1`);
    }
  });

  it('a checkpoint written with another K is refused with one line naming accumulate', () => {
    const now = { model: 'm', schedule_hash: 'h', world: 1, dp: 1, seq: 96, tokens: { length: null, seed: null }, accumulate: 4 };
    const saved = { ...now, accumulate: 2 } as unknown as TrainerState;
    let got: UserError | undefined;
    try {
      checkResumable('ck/step-3', saved, now);
    } catch (e) {
      got = e as UserError;
    }
    expect(got).to.be.instanceOf(UserError);
    expect(got!.line()).to.equal('error: checkpoint ck/step-3 was written with accumulate 2, this run has 4; resume with --accumulate 2');
    // a checkpoint from before the field accumulated one window a step
    const old = { ...now, accumulate: undefined } as unknown as TrainerState;
    expect(() => checkResumable('ck', old, { ...now, accumulate: 1 })).not.to.throw();
    expect(() => checkResumable('ck', old, now)).to.throw(/accumulate 1, this run has 4/);
  });
});
