// `fpdtc run`'s overnight flags: the schedule flags' usage errors (exit 2, one line), the
// --metrics and --min-lr checks made before the GPU, the metrics line, and the ETA's form.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointFlags, checkRunInputs, optimizerFlags, type RunFlags } from '../../compiler/cli/run.js';
import { UserError } from '../../compiler/errors.js';
import { compile } from '../../compiler/compile.js';
import { formatDuration, metricsLine, stepProgress } from '../../compiler/train/loop.js';
import { runCli } from '../cli/run-cli.js';
import { failsWithOneLine } from '../inputs/helpers.js';

describe('fpdtc run: schedule, metrics and progress flags', () => {
  let root: string;
  let dir: string;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'fpdtc-run-flags-'));
    dir = (await compile('tiny-llama', {}, { outDir: join(root, 'out'), typeCheck: false })).modelOutDir;
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('bad schedule values are one usage line, exit 2, before anything is read @slow', () => {
    const cases: [string[], string][] = [
      [['--schedule', 'step'], '--schedule step: one of constant, cosine, linear'],
      [['--warmup', '-3'], '--warmup -3: a whole number of steps (0 for none)'],
      [['--min-lr', 'x'], '--min-lr x: a non-negative number, e.g. 3e-4'],
      [['--total-steps', '0'], '--total-steps 0: a whole number of steps, at least 1'],
      [['--warmup', '20', '--total-steps', '10'], '--warmup 20: longer than --total-steps 10; warm up over fewer steps'],
      [['--seed', '1.5'], '--seed 1.5: a whole number'],
    ];
    for (const [flags, line] of cases) {
      const r = runCli(['run', 'out/no-such-model', ...flags]);
      expect(r.code, flags.join(' ')).to.equal(2);
      expect(r.stderr.trim()).to.equal(`error: ${line}`);
    }
  });

  it('--metrics needs a writable folder and --min-lr at most the peak, checked with the other inputs', async () => {
    // launching: the ranks would check the build, so these checks run without one
    const check = (o: object) => failsWithOneLine(() => checkRunInputs(dir, { steps: 1, gpus: 2, launching: true, ...o }));
    expect(await check({ metrics: join(root, 'nowhere', 'm.jsonl') })).to.equal(`error: cannot write ${join(root, 'nowhere', 'm.jsonl')}: its folder ${join(root, 'nowhere')} does not exist; create it first`);
    mkdirSync(join(root, 'a-folder'));
    expect(await check({ metrics: join(root, 'a-folder') })).to.match(/a-folder: it is not a file; pass a file path for --metrics$/);
    expect(await check({ lr: 1e-4, minLr: 2e-4 })).to.equal('error: --min-lr 0.0002: above the peak learning rate 0.0001');
    expect(await check({ minLr: 10 })).to.match(/^error: --min-lr 10: above the peak learning rate [\d.e-]+ \(the compiled lr; pass --lr\)$/);
    await checkRunInputs(dir, { steps: 1, gpus: 2, launching: true, metrics: join(root, 'm.jsonl'), lr: 1e-3, minLr: 1e-5 });
  });

  it('optimizer and checkpoint flags: usage errors are one line, exit 2', () => {
    const cases: [RunFlags, string][] = [
      [{ steps: '1', betas: '0.9' }, '--betas 0.9: two numbers in [0, 1) separated by a comma, e.g. 0.9,0.95'],
      [{ steps: '1', betas: '0.9,1.5' }, '--betas 0.9,1.5: two numbers in [0, 1) separated by a comma, e.g. 0.9,0.95'],
      [{ steps: '1', eps: '0' }, '--eps 0: a positive number, e.g. 1e-8'],
      [{ steps: '1', weightDecay: '-1' }, '--weight-decay -1: a non-negative number, e.g. 3e-4'],
      [{ steps: '1', clipGradNorm: '0' }, '--clip-grad-norm 0: a positive number, e.g. 1.0'],
      [{ steps: '1', saveEvery: '10' }, '--save-every 10: needs --checkpoint-dir DIR (where the checkpoints go)'],
      [{ steps: '1', saveEvery: '0', checkpointDir: root }, '--save-every 0: a whole number of steps, at least 1'],
      [{ steps: '1', keepCheckpoints: '2' }, '--keep-checkpoints 2: needs --checkpoint-dir DIR'],
    ];
    for (const [flags, line] of cases) {
      let got: UserError | undefined;
      try {
        optimizerFlags(flags);
        checkpointFlags(flags);
      } catch (e) {
        got = e as UserError;
      }
      expect(got, line).to.be.instanceOf(UserError);
      expect(got!.exitCode, line).to.equal(2);
      expect(got!.line()).to.equal(`error: ${line}`);
    }
    expect(optimizerFlags({ steps: '1', betas: '0.8,0.99', eps: '1e-6', weightDecay: '0', clipGradNorm: '1.0' })).to.deep.equal({ beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0, max_grad_norm: 1 });
    expect(checkpointFlags({ steps: '1', checkpointDir: root })).to.deep.equal({ every: Number.MAX_SAFE_INTEGER, dir: root, keep: 3 });
    // the command line itself: one case through a subprocess
    const r = runCli(['run', 'out/no-such-model', '--resume', 'latest']);
    expect(r.code).to.equal(2);
    expect(r.stderr.trim()).to.equal("error: --resume latest: 'latest' needs --checkpoint-dir (where the checkpoints are)");
  });


  it('--checkpoint-dir and --resume are checked with the other inputs, before the GPU', async () => {
    const check = (o: object) => failsWithOneLine(() => checkRunInputs(dir, { steps: 4, gpus: 2, launching: true, ...o }));
    expect(await check({ checkpointDir: join(root, 'no', 'such') })).to.equal(`error: cannot write ${join(root, 'no', 'such')}: its folder ${join(root, 'no')} does not exist; create it first`);
    const ck = join(root, 'ck', 'step-00000004');
    mkdirSync(ck, { recursive: true });
    const { schedule } = JSON.parse(JSON.stringify({ schedule: (await import('../../compiler/schedule/json.js')).readCompiledOut(dir).schedule }));
    const trainer = { format: 'fpdtc checkpoint', version: 1, step: 4, model: 'tiny-llama', schedule_hash: schedule.hash, world: schedule.world, dp: 1, seq: schedule.sizes.S, tokens: { length: null, seed: null } };
    writeFileSync(join(ck, 'trainer.json'), JSON.stringify(trainer));
    expect(await check({ resume: ck, weights: join(root, 'w.safetensors') })).to.equal(`error: --weights ${join(root, 'w.safetensors')}: either --weights or --resume (a checkpoint holds its weights)`);
    expect(await check({ resume: ck })).to.equal('error: --steps 4: the checkpoint is after step 4 already; --steps is the step the run ends at, pass more than 4');
    expect(await check({ resume: ck, steps: 8, seed: 2 })).to.equal(`error: checkpoint ${ck} was written with seed none, this run has 2; resume with no --seed`);
    writeFileSync(join(ck, 'trainer.json'), JSON.stringify({ ...trainer, schedule_hash: 'other' }));
    expect(await check({ resume: ck, steps: 8 })).to.match(/was written with schedule_hash other, this run has \w+; resume with the out dir the checkpoint was written by$/);
  });

  it('a metrics line holds the step figures, the lr, tokens/s and the time', () => {
    const line = metricsLine({ step: 3, loss: 2.5, ms: 500, tokens: 1024, mfu: 0.25, plannedGpu: 100, peakGpu: 90 }, 1e-4, new Date(Date.UTC(2026, 0, 2, 3, 4, 5)));
    expect(JSON.parse(line)).to.deep.equal({
      step: 3, loss: 2.5, lr: 1e-4, tokens: 1024, step_ms: 500, tokens_per_s: 2048, mfu: 0.25, peak_gpu_bytes: 90, planned_gpu_bytes: 100, time: '2026-01-02T03:04:05.000Z',
    });
  });

  it('a long step says how long it has run and, after a first step, about how long is left', () => {
    expect(stepProgress(1, 30_000)).to.equal('  step 1: running, 30 s');
    expect(stepProgress(3, 60_000, 157_000)).to.equal('  step 3: running, 1m 00s of about 2m 37s (1m 37s left)');
    expect(stepProgress(3, 200_000, 157_000)).to.equal('  step 3: running, 3m 20s (longer than the mean 2m 37s so far)');
  });

  it('ETAs read as seconds, minutes or hours', () => {
    expect([42_000, 185_000, 7_620_000].map(formatDuration)).to.deep.equal(['42 s', '3m 05s', '2h 07m']);
  });
});
