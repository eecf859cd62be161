// `--dp N` on compile and check: the check of dp 2 x sp 2 passes and says so, a bad degree is a
// usage error naming the flag.
import { expect } from 'chai';
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
});
