// Codegen refuses a schedule compiled with --packed (the GPU kernels do not mask documents yet):
// one line from the error catalog, from the library and from `fpdtc build`, before anything is
// rendered; the same model compiled without --packed renders.
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { loadCompiled, renderProgramSources } from '../../compiler/codegen/host-files.js';
import { UserError } from '../../compiler/errors.js';
import { runCli } from '../cli/run-cli.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';

const model = join(import.meta.dirname, '..', 'gpu', 'models', 'gpu-llama.ts');

describe('codegen of packed documents', function () {
  this.timeout(120_000);
  let out = '';
  before(async () => {
    out = makeTempDir('fpdt-packed-');
    await compile(model, { sp: 2, packed: true }, { outDir: out, typeCheck: false });
  });
  after(() => removeTempDir(out));

  it('the library refuses with the catalog line', () => {
    const m = loadCompiled(join(out, 'gpu-llama'));
    expect(m.schedule.config.packed).to.equal(true);
    let err: unknown;
    try {
      renderProgramSources(m);
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(UserError);
    expect((err as UserError).message).to.match(/packed documents run on the CPU check only so far; the GPU kernels /);
    expect((err as UserError).message).to.not.include('\n');
  });

  it('fpdtc build says it in one line, exit 1, and renders nothing', () => {
    const dir = join(out, 'gpu-llama');
    const r = runCli(['build', dir]);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/^error: gpu-llama was compiled with --packed: packed documents run on the CPU check only so far/);
    expect(existsSync(join(dir, 'src', 'program.cu'))).to.equal(false);
  });

  it('without --packed the same model renders', async () => {
    const plain = makeTempDir('fpdt-unpacked-');
    try {
      await compile(model, { sp: 2 }, { outDir: plain, typeCheck: false });
      expect(renderProgramSources(loadCompiled(join(plain, 'gpu-llama'))).some((f) => f.file === 'program.cu')).to.equal(true);
    } finally {
      removeTempDir(plain);
    }
  });
});
