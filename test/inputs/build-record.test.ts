// A real build (nvcc and cmake, no GPU) records the schedule it was built from; run takes it, a
// rebuild for other architectures reconfigures, and a recompile to another schedule drops it.
// Tagged @nvcc: `npm run test:build` runs it.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgramDir } from '../../compiler/cli/build.js';
import { checkRunInputs } from '../../compiler/cli/run.js';
import { compile, STALE_BUILD_NOTE } from '../../compiler/compile.js';
import { findExecutable, readBuildRecord } from '../../runtime/build.js';
import { failsWithOneLine } from './helpers.js';

const model = join(import.meta.dirname, '..', 'gpu', 'models', 'gpu-llama.ts');

/** Runs `f` with stderr (the build's progress lines) kept out of the test output. */
async function quietly<T>(f: () => Promise<T>): Promise<T> {
  const write = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return await f();
  } finally {
    process.stderr.write = write;
  }
}

describe('the build record @nvcc', function () {
  this.timeout(300_000);
  let out: string;
  before(function () {
    if (!findExecutable('nvcc', process.env.CUDACXX, ['/usr/local/cuda/bin/nvcc']) || !findExecutable('cmake', process.env.CMAKE, [])) this.skip();
    out = mkdtempSync(join(tmpdir(), 'fpdtc-build-record-'));
  });
  after(() => out && rmSync(out, { recursive: true, force: true }));

  it('records the hash and architectures; a new --arch reconfigures; another schedule drops the build', async () => {
    const dir = (await compile(model, {}, { outDir: out, typeCheck: false })).modelOutDir;
    const hash = JSON.parse(readFileSync(join(dir, 'schedule.json'), 'utf8')).hash as string;
    await quietly(() => buildProgramDir(dir, { jobs: 2 }));
    const first = readBuildRecord(join(dir, 'build'))!;
    expect(first).to.include({ hash, arch: '90a' });
    expect(existsSync(join(dir, 'build', first.addon))).to.equal(true);
    await checkRunInputs(dir, { steps: 1 });

    await quietly(() => buildProgramDir(dir, { jobs: 2, arch: '90a-real' }));
    expect(readBuildRecord(join(dir, 'build'))).to.include({ hash, arch: '90a-real' });
    expect(readFileSync(join(dir, 'build', 'cmake', 'CMakeCache.txt'), 'utf8')).to.match(/^CMAKE_CUDA_ARCHITECTURES:\w+=90a-real$/m);

    expect((await compile(model, {}, { outDir: out, typeCheck: false })).notes).to.deep.equal([]);
    await checkRunInputs(dir, { steps: 1 });
    expect((await compile(model, { seq: 2 * Number(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')).tokens) }, { outDir: out, typeCheck: false })).notes).to.deep.equal([STALE_BUILD_NOTE]);
    expect(await failsWithOneLine(() => checkRunInputs(dir, { steps: 1 }))).to.equal(`error: no built addon under ${dir}/build; run 'fpdtc build ${dir}' first`);
  });
});
