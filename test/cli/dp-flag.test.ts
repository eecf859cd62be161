// `--dp N` on compile and check: the check of dp 2 x sp 2 passes and says so, a bad degree is a
// usage error naming the flag.
import { expect } from 'chai';
import { join } from 'node:path';
import { withTempDir } from '../temp-dir.js';
import { runCli } from './run-cli.js';

describe('--dp', () => {
  it('fpdtc check --dp 2 --sp 2: every group its own sequence, equal to the batch, exit 0', () => {
    const r = runCli(['check', 'tiny-llama', '--dp', '2', '--sp', '2', '--seq', '48', '--orders', '1']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^tiny-llama: seq 48, dp 2 \(a sequence each\), sp 2, chunk 24/);
    expect(r.stdout).to.match(/max relative error \S+: ok/);
  });

  it('--dp 0 and --dp two are usage errors, exit 2', () => {
    for (const bad of ['0', 'two']) {
      const r = runCli(['check', 'tiny-llama', '--dp', bad]);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include(`--dp ${bad}: expected a whole number of at least 1`);
    }
  });

  it('compile names dp x sp; run names the world and the ranks it needs @slow', () =>
    withTempDir('fpdt-dp-', (out) => {
      const c = runCli(['compile', 'tiny-llama', '--dp', '2', '--sp', '2', '--out', out]);
      expect(c.code, c.stderr).to.equal(0);
      expect(c.stdout).to.include('(dp 2 x sp 2, chunk');
      const r = runCli(['run', join(out, 'tiny-llama'), '--ranks-per-gpu', '2']);
      expect(r.code).to.equal(1);
      expect(r.stderr.trim()).to.equal(`error: ${join(out, 'tiny-llama')} is compiled for dp 2 x sp 2 (4 ranks): run it with --ranks-per-gpu 4, or compile for 2 ranks (--dp and --sp)`);
    }));
});
