// The generated host program of the GPU test model: golden text (UPDATE_GOLDEN=1 rewrites it),
// and on machines with nvcc, a real build through the addon whose program then reports the
// missing GPU in one line; the same model compiled for sp 2 (collectives, shards, token layout)
// renders and builds too. GPU runs live in test/gpu/ (run-on-h200.sh, run-sp-on-h200.sh).
import { expect } from 'chai';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { loadCompiled, renderProgramSources, writeProgramSources } from '../../compiler/codegen/host-files.js';
import { findExecutable, buildAddon } from '../../runtime/build.js';
import { Program } from '../../runtime/load.js';
import { expectGoldenFile } from '../golden/golden.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';

const model = join(import.meta.dirname, '..', 'gpu', 'models', 'gpu-llama.ts');
const golden = join(import.meta.dirname, 'golden', 'gpu-llama.program.cu');

describe('host program codegen', function () {
  this.timeout(300_000);
  let out = '';
  let dir = '';
  let out2 = '';
  let dir2 = '';
  before(async () => {
    out = makeTempDir('fpdt-host-');
    dir = join(out, 'gpu-llama');
    out2 = makeTempDir('fpdt-host-sp2-');
    dir2 = join(out2, 'gpu-llama');
    await compile(model, {}, { outDir: out, typeCheck: false });
    await compile(model, { sp: 2 }, { outDir: out2, typeCheck: false });
  });
  after(() => {
    removeTempDir(out);
    removeTempDir(out2);
  });

  it('renders collectives, shards and the token layout for sp 2', () => {
    const program = renderProgramSources(loadCompiled(dir2)).find((f) => f.file === 'program.cu')!.text;
    expect(program).to.include('#define FPDT_WORLD 2');
    for (const call of ['fpdt_all_gather(p,', 'fpdt_reduce_scatter(p,', 'fpdt_all_reduce(p,', 'fpdt_all_to_all(p, 1,', 'fpdt_all_to_all(p, 0,'])
      expect(program, call).to.include(call);
    // the attention blocks get the rank's first q head: 2 local q heads per rank, GQA group 2
    expect(program).to.match(/fpdt_attn_fwd\([^;]*, 2, 1, \(int\)\(?2LL \* p->rank\)?, 2, /);
  });

  it('builds the sp 2 program with nvcc @nvcc', async function () {
    if (!findExecutable('nvcc', process.env.CUDACXX, ['/usr/local/cuda/bin/nvcc']) || !findExecutable('cmake', process.env.CMAKE, [])) {
      console.log('    skipped: no nvcc or cmake on this machine');
      this.skip();
    }
    writeProgramSources(dir2);
    const built = await buildAddon({ programDir: dir2, onProgress: () => {} });
    expect(existsSync(built.addonPath)).to.equal(true);
  });

  it('writes src afresh: files of an earlier render are removed', () => {
    const src = join(dir, 'src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'attention_fwd_docs_sm90.cu'), '// an earlier layout\n');
    const written = writeProgramSources(dir).map((f) => basename(f)).sort();
    expect(readdirSync(src).sort()).to.deep.equal(written);
    expect(written).to.include('program.cu');
  });

  it('renders the golden program.cu for gpu-llama', () => {
    const files = renderProgramSources(loadCompiled(dir));
    const program = files.find((f) => f.file === 'program.cu')!.text;
    expectGoldenFile(golden, program);
    // one synchronization per step, after the schedule: none inside issue_step
    const issue = program.slice(program.indexOf("static int issue_step"), program.indexOf("extern \"C\" int fpdt_abi_version"));
    expect(issue).to.not.match(/Synchronize/);
  });

  it('builds with nvcc and reports the missing GPU in one line @nvcc', async function () {
    if (!findExecutable('nvcc', process.env.CUDACXX, ['/usr/local/cuda/bin/nvcc']) || !findExecutable('cmake', process.env.CMAKE, [])) {
      console.log('    skipped: no nvcc or cmake on this machine');
      this.skip();
    }
    writeProgramSources(dir);
    const built = await buildAddon({ programDir: dir, onProgress: () => {} });
    let program: Program | undefined;
    let message = '';
    try {
      program = Program.create(built.addonPath);
    } catch (e) {
      message = (e as Error).message;
    }
    if (program) {
      // a GPU is present: the built program must then come up with its parameter table
      try {
        expect(program.params().map((p) => p.name)).to.include('model.embed_tokens.weight');
      } finally {
        program.destroy();
      }
      return;
    }
    expect(message).to.match(/^no CUDA device: /);
    expect(message).to.not.include('\n');
  });
});
