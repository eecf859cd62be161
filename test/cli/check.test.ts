// `fpdtc check`: the printout, exit codes and one-line errors.
import { expect } from 'chai';
import { clipGradNorm } from '../../compiler/cli/run.js';
import { UserError } from '../../compiler/errors.js';
import { runCli } from './run-cli.js';

describe('fpdtc check', () => {
  it('passes a correct schedule: every error printed, exit 0', () => {
    const r = runCli(['check', 'tiny-llama', '--sp', '2', '--chunk', '48', '--arena', 'private', '--orders', '2', '--seed', '3']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^tiny-llama: seq 96, sp 2, chunk 48/);
    expect(r.stdout).to.match(/grad {2}lm_head\.weight +\d\.\de[-+]\d+/);
    expect(r.stdout).to.match(/param model\.norm\.weight +\d\.\de[-+]\d+/);
    expect(r.stdout).to.match(/max relative error \S+: ok \(limit 1\.0e-9\)/);
  });

  it('a model too big for the CPU is one line, exit 1', () => {
    const r = runCli(['check', 'llama8b']);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/parameters; the float64 check runs on the CPU/);
  });

  it('a sequence too long for the CPU is one line, exit 1', () => {
    const r = runCli(['check', 'tiny-llama', '--seq', '8192', '--chunk', '1024']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/seq 8192 is too long for the float64 check/);
  });

  it('bad flags are usage errors, exit 2', () => {
    expect(runCli(['check', 'tiny-llama', '--orders', '0']).code).to.equal(2);
    expect(runCli(['check', 'tiny-llama', '--arena', 'shared']).code).to.equal(2);
    // run's schedule flags, by run's rules
    expect(runCli(['check', 'tiny-llama', '--steps', '3', '--schedule', 'cosin']).code).to.equal(2);
  });

  it('--clip-grad-norm 0 or abc is one usage line, exit 2', () => {
    const r = runCli(['check', 'tiny-llama', '--steps', '2', '--clip-grad-norm', '0']);
    expect(r.code).to.equal(2);
    expect(r.stderr.trim()).to.equal('error: --clip-grad-norm 0: a positive number, e.g. 1.0');
    // the same reader, in process (a subprocess each is slow)
    for (const x of ['abc', '-1', '', '1e-2x']) {
      const e = (() => {
        try {
          clipGradNorm(x);
        } catch (err) {
          return err as UserError;
        }
      })();
      expect(e, x).to.be.instanceOf(UserError);
      expect([e!.exitCode, e!.line()]).to.deep.equal([2, `error: --clip-grad-norm ${x}: a positive number, e.g. 1.0`]);
    }
    expect(clipGradNorm('0.5')).to.equal(0.5);
  });

  it('@slow --steps 2 --accumulate 2 --clip-grad-norm: each step\'s norm on both sides and that it clipped', () => {
    const r = runCli(['check', 'tiny-llama', '--sp', '2', '--seq', '32', '--chunk', '16', '--orders', '1', '--steps', '2', '--accumulate', '2', '--clip-grad-norm', '0.01']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/2 optimizer steps .*, clipping at global gradient norm 0\.01;/);
    expect(r.stdout.match(/^ {2}clip [12] +grad norm \S+ \(reference \S+\) +\S+ +clipped \(reference clipped\)$/gm)).to.have.length(2);
    expect(r.stdout).to.match(/: ok \(limit 1\.0e-9\)/);
  });
});
