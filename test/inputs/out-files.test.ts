// schedule.json and report.json are checked on every read (schema, the checks a schema cannot
// say, the content hash), and a build is used only when it finished and was made from the
// schedule that is there now.
import { expect } from 'chai';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgramDir } from '../../compiler/cli/build.js';
import { loadInspection } from '../../compiler/cli/inspect.js';
import { checkRunInputs } from '../../compiler/cli/run.js';
import { compile } from '../../compiler/compile.js';
import { readScheduleJson } from '../../compiler/schedule/export-json.js';
import { checkReportDoc, readCompiledOut, scheduleHash } from '../../compiler/schedule/json.js';
import { buildAddon, clearCacheOnArchChange, findExecutable } from '../../runtime/build.js';
import { runCli } from '../cli/run-cli.js';
import { expectUnchanged, failsWithOneLine, snapshot } from './helpers.js';

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('out files: checked on every read', () => {
  let root: string;
  let compiled: string;
  let dir: string;
  let text: string;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'fpdtc-outfiles-'));
    compiled = (await compile('tiny-llama', {}, { outDir: join(root, 'compiled'), typeCheck: false })).modelOutDir;
    text = readFileSync(join(compiled, 'schedule.json'), 'utf8');
  });
  after(() => rmSync(root, { recursive: true, force: true }));
  beforeEach(() => {
    dir = join(root, `x${Math.random().toString(36).slice(2, 8)}`);
    cpSync(compiled, dir, { recursive: true });
  });

  /** schedule.json with `edit` applied and its hash stamped again, as a careless tool would write it. */
  const restamped = (edit: (d: Doc) => void): string => {
    const d = JSON.parse(text) as Doc;
    edit(d);
    d.hash = scheduleHash(d);
    return JSON.stringify(d);
  };

  it('schedule.json carries the sha256 of its canonical content, whatever its layout', () => {
    const d = JSON.parse(text) as Doc;
    expect(d.hash).to.match(/^[0-9a-f]{64}$/);
    expect(scheduleHash(d)).to.equal(d.hash);
    expect(readScheduleJson(JSON.stringify(d)).hash).to.equal(d.hash);
    d.body[0].flops = 7; // an edit that leaves the file well-formed
    expect(() => readScheduleJson(JSON.stringify(d), 'out/x/schedule.json')).to.throw(/its content does not match its hash/);
  });

  const bad: [string, (d: Doc) => void, RegExp][] = [
    ['world -3', (d) => (d.world = -3), /^world is -3: must be >= 1/],
    ['world as text', (d) => (d.world = '2'), /^world is "2", expected integer/],
    ['world against sp', (d) => (d.world = 3), /^world is 3 but config\.sp 2 times config\.dp 1 is 2/],
    ['a missing field', (d) => delete d.body, /^missing field 'body'/],
    ['a buffer of 1 element', (d) => (d.buffers[0].elems = 1), /^buffers\[0\] \('params\.layers'\): elems is 1 but shape \[2, 7344\] holds 14688/],
    ['a buffer of 1 element, shape and bytes too', (d) => Object.assign(d.buffers[0], { elems: 1, shape: [1], bytes: 256 }), /^buffer 'params\.layers' holds 1 elements but the parameter table needs 14688/],
    ['a buffer of 1 element outside the table', (d) => Object.assign(d.buffers.find((b: { id: string }) => b.id === 'grads.acc_layer'), { elems: 1, shape: [1], bytes: 256 }), /^body.*: elements \[\d+, \d+\) of 'grads\.acc_layer' are outside its 1 elements/],
    ['a parameter window past its layer', (d) => (d.params.tensors[0].offset = d.params.layerElems), /^params\.tensors\[0\] \('model\.layers\.\{i\}\.input_layernorm\.weight'\): elements \[\d+, \d+\) lie outside the \d+ of its part/],
    ['two parameter windows overlapping', (d) => (d.params.tensors[1].offset = d.params.tensors[0].offset), /^params: '.*' and '.*' overlap in part layers/],
    ['parameter shards over other ranks', (d) => (d.params.ranks = 3), /^params\.ranks is 3 but world is 2/],
    ['an arena smaller than its buffers', (d) => (d.memory.gpuBytes = 256), /^buffer '.*' \[\d+, \d+\) lies outside the gpu arena of 256 bytes/],
    ['an unknown dtype', (d) => (d.buffers[2].dtype = 'fp8'), /^buffers\[2\]\.dtype is "fp8", expected one of "bf16", "fp32", "int32"/],
    ['overlapping plan offsets', (d) => (d.buffers[1].offset = d.buffers[0].offset), /share gpu bytes .* while both are live; the memory plan is inconsistent/],
    ['a ref to no buffer', (d) => (d.body[0].writes[0].buf = 'nope'), /^body\[0\]\.writes\[0\]: buffer 'nope' is not in buffers/],
    ['an unbound loop variable', (d) => (d.body[0].writes[0].off.t = { q: 1 }), /^body\[0\]\.writes\[0\]\.off: variable 'q' is not an enclosing loop's/],
    ['an item of no kind', (d) => (d.body[1].kind = 'jump'), /^body\[1\]\.kind is "jump", expected one of/],
    ['a negative chunk count', (d) => (d.chunks = 0), /^chunks is 0: must be >= 1/],
  ];
  for (const [what, edit, message] of bad)
    it(`schedule.json: ${what}`, async () => {
      const line = await failsWithOneLine(() => readScheduleJson(restamped(edit), 'out/x/schedule.json'), what);
      expect(line.replace(/^out\/x\/schedule\.json: error: /, '')).to.match(message);
      expect(line).to.match(/; compile the model again \(fpdtc compile\)$/);
    });

  it('report.json: null, missing fields, wrong types, a report of another compile', async () => {
    expect(await failsWithOneLine(() => checkReportDoc(null, 'out/x/report.json'))).to.equal('out/x/report.json: error: the file holds null, not a JSON object; compile the model again (fpdtc compile)');
    const r = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Doc;
    expect(await failsWithOneLine(() => checkReportDoc({ ...r, tokens: undefined }, 'r'))).to.match(/missing field 'tokens'/);
    expect(await failsWithOneLine(() => checkReportDoc({ ...r, memory: { ...r.memory, gpu: 5 } }, 'r'))).to.match(/memory\.gpu is 5, expected object/);
    writeFileSync(join(dir, 'report.json'), JSON.stringify({ ...r, tokens: 192 }));
    expect(await failsWithOneLine(() => readCompiledOut(dir))).to.match(/report\.json: error: tokens is 192 but schedule\.json's config\.seq is 96 \(files of two compiles\)/);
  });

  it('inspect and build read them checked, before anything is rendered', async () => {
    writeFileSync(join(dir, 'schedule.json'), restamped((d) => (d.world = -3)));
    expect(await failsWithOneLine(() => loadInspection(dir))).to.match(/schedule\.json: error: world is -3/);
    writeFileSync(join(dir, 'report.json'), 'null');
    const before = snapshot(dir);
    expect(await failsWithOneLine(() => buildProgramDir(dir))).to.match(/report\.json: error: the file holds null/);
    expectUnchanged(dir, before, 'build of a damaged out dir');
  });

  describe('builds', () => {
    const record = (hash: string) => {
      mkdirSync(join(dir, 'build', 'cmake'), { recursive: true });
      writeFileSync(join(dir, 'build', 'cmake', 'fpdt_tiny_llama.node'), 'addon');
      writeFileSync(join(dir, 'build', 'built-from.json'), JSON.stringify({ hash, arch: '90a', built_at: '2026-01-01T00:00:00Z', addon: 'cmake/fpdt_tiny_llama.node' }));
    };
    const hash = () => (JSON.parse(text) as Doc).hash as string;

    it('run refuses a build of another schedule, a build that did not finish, and no build', async () => {
      expect(await failsWithOneLine(() => checkRunInputs(dir, { steps: 1, ranksPerGpu: 2 }))).to.equal(`error: no built addon under ${dir}/build; run 'fpdtc build ${dir}' first`);
      record('0'.repeat(64));
      expect(await failsWithOneLine(() => checkRunInputs(dir, { steps: 1, ranksPerGpu: 2 }))).to.equal(`error: ${dir}/build was built from another schedule (recompiled since); run 'fpdtc build ${dir}'`);
      rmSync(join(dir, 'build', 'built-from.json'));
      expect(await failsWithOneLine(() => checkRunInputs(dir, { steps: 1, ranksPerGpu: 2 }))).to.match(/build holds no finished build \(no built-from\.json/);
      record(hash());
      await checkRunInputs(dir, { steps: 1, ranksPerGpu: 2 });
    });

    it('a failed build leaves neither its record nor the old addon', async function () {
      if (!findExecutable('nvcc', process.env.CUDACXX, ['/usr/local/cuda/bin/nvcc'])) this.skip();
      record(hash());
      mkdirSync(join(dir, 'src'), { recursive: true });
      writeFileSync(join(dir, 'src', 'program.cu'), '');
      const cmake = join(root, 'failing-cmake');
      writeFileSync(cmake, '#!/bin/sh\necho "CMake Error: configuration failed"\nexit 1\n', { mode: 0o755 });
      const saved = process.env.CMAKE;
      process.env.CMAKE = cmake;
      try {
        const err = await buildAddon({ programDir: dir, onProgress: () => {}, scheduleHash: hash() }).then(() => undefined, (e: Error) => e);
        expect(err?.message).to.match(/^build of .* failed: /);
      } finally {
        if (saved === undefined) delete process.env.CMAKE;
        else process.env.CMAKE = saved;
      }
      expect(snapshot(join(dir, 'build')).has('built-from.json')).to.equal(false);
      expect([...snapshot(join(dir, 'build')).keys()].filter((f) => f.endsWith('.node'))).to.deep.equal([]);
      expect(await failsWithOneLine(() => checkRunInputs(dir, { steps: 1, ranksPerGpu: 2 }))).to.match(/holds no finished build/);
    });

    it('a new --arch clears the CMake cache so that it takes effect', () => {
      const cmakeDir = join(dir, 'build', 'cmake');
      mkdirSync(join(cmakeDir, 'CMakeFiles'), { recursive: true });
      writeFileSync(join(cmakeDir, 'CMakeCache.txt'), 'CMAKE_BUILD_TYPE:STRING=Release\nCMAKE_CUDA_ARCHITECTURES:STRING=90a\n');
      expect(clearCacheOnArchChange(cmakeDir, '90a')).to.equal(false);
      expect(snapshot(cmakeDir).has('CMakeCache.txt')).to.equal(true);
      expect(clearCacheOnArchChange(cmakeDir, '80')).to.equal(true);
      expect(snapshot(cmakeDir).size).to.equal(0);
    });

    it('the commands: --jobs abc is a usage error; run of a stale build is one line', function () {
      this.timeout(30000);
      const jobs = runCli(['build', dir, '--jobs', 'abc']);
      expect([jobs.code, jobs.stderr]).to.deep.equal([2, 'error: --jobs abc: expected a whole number of parallel jobs, at least 1\n']);
      record('1'.repeat(64));
      const before = snapshot(dir);
      const run = runCli(['run', dir, '--ranks-per-gpu', '2']);
      expect([run.code, run.stderr]).to.deep.equal([1, `error: ${dir}/build was built from another schedule (recompiled since); run 'fpdtc build ${dir}'\n`]);
      expectUnchanged(dir, before, 'run of a stale build');
    });
  });
});
