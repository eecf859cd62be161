// `fpdtc check`: the printout, exit codes and one-line errors.
import { expect } from 'chai';
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
});
