// `fpdtc run` with ranks, on a machine without a GPU: flags that do not match the compiled sp
// stop with one line that says what to pass; --gpus starts one process per rank and, when a
// rank fails, stops the others and names the failing rank; a bad launcher environment is one
// clear error.
import { expect } from 'chai';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../cli/run-cli.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';

const DIST_VARS = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID', 'MASTER_ADDR', 'MASTER_PORT'];

/** `fpdtc ...` with no launcher variables but `env`. */
function runCli(args: string[], env: Record<string, string> = {}) {
  const base: NodeJS.ProcessEnv = { ...process.env, FPDTC_DEBUG: '' };
  for (const v of DIST_VARS) delete base[v];
  const r = spawnSync(process.execPath, ['bin/fpdtc.js', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...base, ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const model = join(import.meta.dirname, '..', 'gpu', 'models', 'gpu-llama.ts');

describe('fpdtc run with ranks', function () {
  this.timeout(120_000);
  let out = '';
  let dir = '';
  const clean = {};
  before(async () => {
    out = makeTempDir('fpdt-run-ranks-');
    dir = join(out, 'gpu-llama');
    await compile(model, { sp: 2 }, { outDir: out, typeCheck: false });
  });
  after(() => removeTempDir(out));

  it('asks for --gpus or --ranks-per-gpu when the model is compiled for sp 2', () => {
    const r = runCli(['run', dir], clean);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim()).to.match(/compiled for sp 2: run it with --gpus 2 .* or --ranks-per-gpu 2/);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
  });

  it('rejects a local world of the wrong size and both flags at once', () => {
    expect(runCli(['run', dir, '--ranks-per-gpu', '3'], clean).stderr).to.match(/compiled for sp 2: run it with --ranks-per-gpu 2/);
    const both = runCli(['run', dir, '--ranks-per-gpu', '2', '--gpus', '2'], clean);
    expect(both.code).to.equal(2);
    expect(runCli(['run', dir, '--gpus', '0'], clean).code).to.equal(2);
  });

  it('--gpus 2 starts two ranks; the failing one takes the other down and is named @slow', () => {
    // no built addon here: a rank fails at start while the other waits for rank 0
    const r = runCli(['run', dir, '--gpus', '2'], clean);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/rank \d/);
  });

  it('a bad launcher environment is one clear error', () => {
    const r = runCli(['run', dir], { RANK: 'x', WORLD_SIZE: '2' });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/RANK="x" is not an integer/);
  });
});
