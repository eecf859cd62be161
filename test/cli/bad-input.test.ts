// Bad sizes, flags and model files, in-process: each ends in what the command prints through
// reportError, one line (no stack, never "internal error") with its exit code, and quickly.
// bad-input-models.test.ts runs what only a process shows (hangs, process.exit, signals).
import { expect } from 'chai';
import { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { check } from '../../compiler/check.js';
import { applyEvalTimeout, parseCompileFlags } from '../../compiler/cli/compile-flags.js';
import { register as registerCompile } from '../../compiler/cli/compile.js';
import { reportError } from '../../compiler/cli/report-error.js';
import { register as registerRun } from '../../compiler/cli/run.js';
import { compile, type ConfigOverrides } from '../../compiler/compile.js';
import { LIMITS, nearestDivisor, resolveConfig } from '../../compiler/config.js';
import { UserError } from '../../compiler/errors.js';
import { DEFAULT_EVAL_TIMEOUT_S, setEvalTimeout, validateConfig } from '../../compiler/frontend/index.js';
import { validateModelDefinition } from '../../compiler/frontend/model-check.js';
import type { ModelDefinition } from '../../compiler/dsl/index.js';
import { chunkCandidates } from '../../compiler/plan.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';
import { ROOT } from './run-cli.js';

const DSL = JSON.stringify(join(ROOT, 'compiler', 'dsl', 'index.js'));
const SIZES = `{ V: 64, D: 48, L: 2, Hq: 12, Hkv: 2, Dh: 4, F: 64 }`;
const FORWARD = `(m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 10000 }) })`;

let dir = '';
let files = 0;
before(() => (dir = makeTempDir('fpdtc-bad-input-')));
after(() => removeTempDir(dir));

/** A model file with the given sizes, train and forward (as source text). */
function modelFile(o: { sizes?: string; train?: string; forward?: string } = {}): string {
  const path = join(dir, `m${files++}`, 'model.ts');
  mkdirSync(join(path, '..'));
  const train = o.train ?? `{ seq: 96, sp: 2, chunk: 24 }`;
  writeFileSync(
    path,
    [
      `import { causalLM, defineModel, llamaLayer } from ${DSL};`,
      `export default defineModel({`,
      `  name: 'bad',`,
      `  sizes: ${o.sizes ?? SIZES},`,
      `  train: ${train},`,
      `  forward: ${o.forward ?? FORWARD},`,
      `});`,
      '',
    ].join('\n'),
  );
  return path;
}

/** What the command prints for whatever `f` throws: one line, its exit code. */
async function printed(f: () => unknown): Promise<{ line: string; code: number }> {
  let thrown: unknown;
  try {
    await f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, 'an error').to.not.equal(undefined);
  let text = '';
  const write = process.stderr.write;
  process.stderr.write = ((s: string) => ((text += s), true)) as typeof process.stderr.write;
  let code: number;
  try {
    code = reportError(thrown);
  } finally {
    process.stderr.write = write;
  }
  expect(text.endsWith('\n') && text.split('\n').length === 2, `one line: ${text}`).to.equal(true);
  expect(text).not.to.match(/internal error|\n\s+at /);
  return { line: text.trimEnd(), code };
}

const compileIt = (model: string, overrides: ConfigOverrides = {}) => compile(model, overrides, { write: false, typeCheck: false, outDir: join(dir, 'out') });

describe('bad sizes in a model file', () => {
  const cases: [string, Partial<Record<string, unknown>>, RegExp][] = [
    ['negative', { D: -48 }, /:4:\d+: error: sizes\.D is -48; a size must be a whole number of at least 1/],
    ['zero vocabulary', { V: 0 }, /error: sizes\.V is 0; a size must be a whole number of at least 1/],
    ['zero width', { D: 0 }, /error: sizes\.D is 0;/],
    ['fractional', { D: 1.5 }, /error: sizes\.D is 1\.5;/],
    ['NaN', { D: NaN }, /error: sizes\.D is NaN;/],
    ['infinite', { D: Infinity }, /error: sizes\.D is Infinity;/],
    ['past the limit', { L: 2 ** 31 }, /error: sizes\.L is 2147483648; a size must be at most 1073741824/],
  ];
  for (const [what, change, pattern] of cases) {
    it(`${what}: file:line:col, the field and the rule, exit 1`, async () => {
      const sizes = `{ ${Object.entries({ V: 64, D: 48, L: 2, Hq: 12, Hkv: 2, Dh: 4, F: 64, ...change }).map(([k, v]) => `${k}: ${String(v)}`).join(', ')} }`;
      const path = modelFile({ sizes });
      const def = { name: 'bad', sizes: { V: 64, D: 48, L: 2, Hq: 12, Hkv: 2, Dh: 4, F: 64, ...change } } as unknown as ModelDefinition;
      const r = await printed(() => validateModelDefinition(def, path));
      expect(r.code).to.equal(1);
      expect(r.line.startsWith(`${path}:4:`), r.line).to.equal(true);
      expect(r.line).to.match(pattern);
    });
  }

  it('through compile, before any graph is built', async () => {
    const r = await printed(() => compileIt(modelFile({ sizes: SIZES.replace('D: 48', 'D: -48') })));
    expect(r).to.deep.include({ code: 1 });
    expect(r.line).to.match(/model\.ts:4:22: error: sizes\.D is -48/);
  });
});

describe('bad train settings in a model file', () => {
  const cases: [string, string, RegExp][] = [
    ['fractional sp', `{ seq: 96, sp: 1.5 }`, /:5:\d+: error: train\.sp is 1\.5; must be a whole number from 1 to 65536$/],
    ['negative seq', `{ seq: -96 }`, /error: train\.seq is -96; must be a whole number of tokens/],
    ['seq past the planner', `{ seq: '4096M' }`, /error: train\.seq is "4096M"; must be at most 1024M \(1073741824\)/],
    ['unknown device', `{ device: 'x100' }`, /error: train\.device is "x100"; unknown device; known: h200/],
    ['keepAttention past the layers', `{ keepAttention: 99 }`, /error: train\.keepAttention is 99; must be 'auto' or a whole number of layers from 0 to 2/],
    ['a misspelt setting', `{ sequence: 96 }`, /error: train\.sequence is 96; not a setting of train/],
  ];
  for (const [what, train, pattern] of cases) {
    it(`${what}: named by its field, exit 1`, async () => {
      const path = modelFile({ train });
      const def = { name: 'bad', sizes: { V: 64, D: 48, L: 2, Hq: 12, Hkv: 2, Dh: 4, F: 64 }, train: Function(`return (${train})`)() } as unknown as ModelDefinition;
      const r = await printed(() => validateModelDefinition(def, path));
      expect(r.code).to.equal(1);
      expect(r.line).to.match(pattern);
    });
  }

  it("accepts device: 'H200' as --device H200 is", async () => {
    const train = { seq: 96, sp: 2, chunk: 24, device: 'H200' };
    const def = { name: 'ok', sizes: { V: 64, D: 48, L: 2, Hq: 12, Hkv: 2, Dh: 4, F: 64 }, train } as unknown as ModelDefinition;
    await validateModelDefinition(def, modelFile());
    const config = resolveConfig(train, {});
    expect(config.device).to.equal('h200');
    validateConfig(config, def.sizes);
  });
});

describe('bad sizes and flags', () => {
  it('--seq 1e29 written out: refused at once with the limit', async () => {
    const t0 = performance.now();
    const r = await printed(() => compileIt('tiny-llama', parseCompileFlags({ seq: '100000000000000000000000000000' })));
    expect(r).to.deep.equal({ code: 1, line: 'error: seq 1e+29 is longer than the planner supports (at most 1073741824 = 1024M tokens); pass a smaller --seq' });
    expect(performance.now() - t0).to.be.below(2000);
  });

  it('--seq 4096M: the limit, not a hang', async () => {
    const r = await printed(() => compileIt('tiny-llama', parseCompileFlags({ seq: '4096M' })));
    expect(r.line).to.match(/^error: seq 4294967296 is longer than the planner supports/);
  });

  it('too many chunks for the planner: the limit and a chunk that works', async () => {
    const r = await printed(() => compileIt('tiny-llama', parseCompileFlags({ seq: '64M', chunk: '4K' })));
    expect(r).to.deep.equal({ code: 1, line: `error: chunk 4096 cuts seq 67108864 into 16384 chunks; the planner supports at most ${LIMITS.chunks} (a layer's schedule grows with their square): use --chunk 262144 or larger` });
  });

  it('--chunk auto tries only chunk counts the planner takes', () => {
    for (const seq of [2 ** 20, 2 ** 26, 2 ** 28, LIMITS.seq]) for (const c of chunkCandidates(seq, 2)) expect(seq / c).to.be.at.most(LIMITS.chunks);
  });

  it('the divisor suggestion is quick for the largest sequence', () => {
    const t0 = performance.now();
    expect(nearestDivisor(LIMITS.seq - 1, 65536)).to.be.a('number');
    expect(nearestDivisor(3 * 2 ** 28, 65535, 2)).to.equal(65536);
    expect(performance.now() - t0).to.be.below(500);
  });

  it('--keep-attention above the layer count', async () => {
    const r = await printed(() => compileIt('tiny-llama', parseCompileFlags({ keepAttention: '99' })));
    expect(r).to.deep.equal({ code: 1, line: "error: --keep-attention 99 is more than the model's 2 layers; pass at most 2, or auto" });
  });

  it('--host-mem below a GiB is a usage error', async () => {
    const r = await printed(() => parseCompileFlags({ hostMem: '0.0000001' }));
    expect(r).to.deep.equal({ code: 2, line: 'error: --host-mem 0.0000001: expected from 1 to 1048576 GiB of pinned host memory per GPU, e.g. 512' });
  });

  it('--eval-timeout takes seconds', async () => {
    for (const bad of ['0', '-1', 'soon', '1e3']) expect((await printed(() => applyEvalTimeout({ evalTimeout: bad }))).code).to.equal(2);
  });

  it('run --steps 0x10, --lr 0x10, --gpus 1e1: whole decimal numbers only, exit 2', async () => {
    for (const flags of [['--steps', '0x10'], ['--lr', '0x10'], ['--gpus', '1e1'], ['--ranks-per-gpu', '2.0']]) {
      const program = new Command('fpdtc').exitOverride();
      registerRun(program);
      const r = await printed(() => program.parseAsync(['run', join(dir, 'nowhere'), ...flags], { from: 'user' }));
      expect(r.code, flags.join(' ')).to.equal(2);
      expect(r.line).to.match(new RegExp(`^error: ${flags[0]} ${flags[1].replace('.', '\\.')}: `));
    }
  });

  it('compile --help names every file compile writes', () => {
    const program = new Command('fpdtc');
    registerCompile(program);
    const help = program.commands[0].helpInformation().replace(/\s+/g, ' ');
    for (const f of ['graph.txt', 'graph.json', 'report.json', 'schedule.json', 'schedule.dot', 'trace.json']) expect(help).to.include(f);
  });
});

describe('a model that does not finish', () => {
  afterEach(() => setEvalTimeout(DEFAULT_EVAL_TIMEOUT_S));

  it('an endless forward() stops at the time limit, naming the file', async () => {
    setEvalTimeout(0.2);
    const path = modelFile({ forward: '(m) => { for (;;) {} }' });
    const r = await printed(() => compileIt(path));
    expect(r.code).to.equal(1);
    expect(r.line).to.equal(`${path}: error: forward() did not finish within 0.2 s building the graph at seq 96 (an endless loop?); fix it, or allow more time with --eval-timeout SECONDS`);
  });

  it('process.exit in forward() is an error at its line, and process.exit is left as it was', async () => {
    const exit = process.exit;
    const path = modelFile({ forward: '(m) => { (globalThis as any).process.exit(3); return m.tokens; }' });
    const r = await printed(() => compileIt(path));
    expect(r.line).to.match(/model\.ts:6:\d+: error: the model file called process\.exit\(3\); a model file must not end fpdtc/);
    expect(process.exit).to.equal(exit);
  });
});

describe('fpdtc check within limits', () => {
  it('refuses a check estimated past its limit, with the estimate and --force', async () => {
    const path = modelFile({ sizes: `{ V: 256, D: 128, L: 2, Hq: 8, Hkv: 2, Dh: 16, F: 256 }`, train: `{ seq: 4096, sp: 2, chunk: 1024 }` });
    const r = await printed(() => check(path));
    expect(r.code).to.equal(1);
    expect(r.line).to.match(/^error: checking bad at seq 4096 would take about \d+ min on this CPU \(5 float64 runs of 3\.4e\+10 FLOPs; more than 5 min\): .*pass --force to run it anyway$/);
  });

  it('reports progress: the estimate, the reference, each interleaving', async () => {
    const lines: string[] = [];
    const report = await check('tiny-llama', {}, { orders: 1, onProgress: (l) => lines.push(l), progressAfterSeconds: 0 });
    expect(report.ok).to.equal(true);
    expect(lines).to.have.length(3);
    expect(lines[0]).to.match(/^check: about \d+ s for 2 float64 runs of the step \(the reference, then 1 interleaving\)$/);
    expect(lines[1]).to.match(/^check: reference done in \d+ s$/);
    expect(lines[2]).to.match(/^check: interleaving 1 of 1 \(program\) done in \d+ s$/);
  });
});

describe('errors print one line', () => {
  it('a message that carries another error\'s stack prints its first line only', async () => {
    const r = await printed(() => {
      throw new UserError('launch: rank 1 stopped\n    at joinWorld (runtime/rendezvous.ts:80:3)');
    });
    expect(r).to.deep.equal({ code: 1, line: 'error: launch: rank 1 stopped' });
  });
});
