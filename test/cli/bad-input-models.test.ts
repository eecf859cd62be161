// Model files through the real command: they load from folders of their own, and what only a
// process shows (a hang, process.exit, a signal) is one line (no stack, never "internal
// error") and its exit code. The runs start together in `before`, since each is a Node process
// of its own; bad-input.test.ts covers the other errors in-process.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { makeTempDir, removeTempDir } from '../temp-dir.js';
import { ROOT, type CliResult } from './run-cli.js';

const SIZES = `sizes: { V: 64, D: 48, L: 2, Hq: 12, Hkv: 2, Dh: 4, F: 64 }, train: { seq: 96, sp: 2, chunk: 24 }`;
const FORWARD = `forward: (m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 10000 }) })`;
const DSL = join(ROOT, 'compiler', 'dsl', 'index.js');

/** A model file whose body (between imports and export) and definition are given. */
function model(dir: string, name: string, opts: { imports?: string; body?: string; def?: string } = {}): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.ts`);
  const imports = opts.imports ?? `import { causalLM, defineModel, llamaLayer } from 'fpdtc/dsl';`;
  writeFileSync(path, `${imports}\n${opts.body ?? ''}\nexport default defineModel({ name: '${name}', ${opts.def ?? `${SIZES}, ${FORWARD}`} });\n`);
  return path;
}

interface Run extends CliResult {
  ms: number;
}

/** `node bin/fpdtc.js ...` without waiting; `onStart` gets the child (to signal it). */
function fpdtc(args: readonly string[], env: Record<string, string> = {}, onStart?: (kill: (s: NodeJS.Signals) => void) => void): Promise<Run> {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['bin/fpdtc.js', ...args], { cwd: ROOT, env: { ...process.env, FPDTC_DEBUG: '', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  onStart?.((s) => child.kill(s));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code: code ?? (signal ? -1 : -2), stdout, stderr, ms: performance.now() - t0 })));
}

/** One line on stderr, no stack, not an internal error. */
function oneLine(r: CliResult, code: number, pattern: RegExp): void {
  expect(r.code, r.stderr).to.equal(code);
  expect(r.stderr.endsWith('\n') && r.stderr.split('\n').length === 2, `one line: ${r.stderr}`).to.equal(true);
  expect(r.stderr).not.to.match(/internal error|\n\s+at /);
  expect(r.stderr).to.match(pattern);
}

describe('model files through fpdtc (subprocess)', function () {
  this.timeout(120_000);
  let tmp = '';
  const runs: Record<string, Run> = {};
  after(() => removeTempDir(tmp));

  before(async () => {
    tmp = makeTempDir('fpdtc-bad-input-');
    const out = join(tmp, 'out');
    // a folder with no package.json, the DSL by its package name
    const byName = model(join(tmp, 'plain'), 'by-name');
    // a folder whose package.json does not say "type": "module", the DSL by absolute and relative paths
    const pkgDir = join(tmp, 'cjs-package');
    mkdirSync(pkgDir, { recursive: true });
    writeFileSync(join(pkgDir, 'package.json'), '{ "name": "mine" }\n');
    const relativeDsl = relative(pkgDir, DSL).split('\\').join('/');
    const byPath = model(pkgDir, 'by-path', {
      imports: `import { defineModel } from ${JSON.stringify(DSL)};\nimport { causalLM, llamaLayer } from ${JSON.stringify(relativeDsl)};`,
    });
    const loop = model(join(tmp, 'loop'), 'loop', { body: 'let spins = 0;\nwhile (spins >= 0) spins++;' });
    const exits = model(join(tmp, 'exit'), 'exits', { body: '// @ts-ignore: model files see no Node types\nprocess.exit(0);' });
    // A rank stopped by its launcher while it waits (here: on a model file's top level, which
    // leaves a mark once fpdtc is running it).
    const mark = join(tmp, 'waiting');
    const waits = model(join(tmp, 'sig'), 'waits', {
      body: `// @ts-ignore: model files see no Node types\nprocess.getBuiltinModule('node:fs').writeFileSync(${JSON.stringify(mark)}, '');\nfor (;;) {}`,
    });
    const whenWaiting = (kill: (s: NodeJS.Signals) => void) => {
      const poll = setInterval(() => {
        if (!existsSync(mark)) return;
        clearInterval(poll);
        kill('SIGTERM');
      }, 20);
    };
    const all = {
      byName: fpdtc(['compile', byName, '--out', out]),
      byPath: fpdtc(['compile', byPath, '--out', out]),
      // check runs the model without the (slower) type check; compile takes the same path after it
      loop: fpdtc(['check', loop, '--eval-timeout', '0.5']),
      exits: fpdtc(['check', exits]),
      sigterm: fpdtc(['check', waits], { RANK: '0' }, whenWaiting),
    };
    for (const [k, p] of Object.entries(all)) runs[k] = await p;
  });

  it('a model file in a folder without package.json loads, importing the DSL as fpdtc/dsl', () => {
    expect(runs.byName.code, runs.byName.stderr).to.equal(0);
    expect(runs.byName.stdout).to.match(/^by-name: 35\.6K params, 2 layers, 96 tokens/);
  });

  it('a model file in a CommonJS package loads, importing the DSL by absolute and relative path', () => {
    expect(runs.byPath.code, runs.byPath.stderr).to.equal(0);
    expect(runs.byPath.stdout).to.match(/^by-path: 35\.6K params/);
  });

  it('an endless top level stops at --eval-timeout and names the file', () => {
    oneLine(runs.loop, 1, /loop\.ts: error: the model file did not finish loading within 0\.5 s .*--eval-timeout/);
  });

  it('process.exit(0) in a model file is an error at its line, exit 1', () => {
    oneLine(runs.exits, 1, /exits\.ts:3:9: error: the model file called process\.exit\(0\)/);
  });

  it('a rank stopped by SIGTERM prints one line and exits 143', () => {
    oneLine(runs.sigterm, 143, /^error: rank 0 interrupted by SIGTERM$/m);
  });
});
