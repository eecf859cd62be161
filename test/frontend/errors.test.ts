// Each bad model file stops with one line that says where and what, and exit code 1.
import { expect } from 'chai';
import { compile, type ConfigOverrides, type CompileOptions } from '../../compiler/compile.js';
import { UserError } from '../../compiler/errors.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';

const FIX = 'test/fixtures/models';

/** The line and exit code a compile fails with (paths are shown relative to the cwd). */
async function failure(model: string, overrides: ConfigOverrides = {}, opts: CompileOptions = {}): Promise<[string, number]> {
  try {
    await compile(model, overrides, { write: false, outDir: OUT, ...opts });
  } catch (e) {
    if (e instanceof UserError) return [e.line(), e.exitCode];
    throw e;
  }
  throw new Error(`${model} compiled, but should not have`);
}

let OUT: string;
before(() => {
  OUT = makeTempDir('fpdtc-errors-');
});
after(() => removeTempDir(OUT));

describe('bad model files', () => {
  it('a missing file', async () => {
    expect(await failure(`${FIX}/missing.ts`)).to.deep.equal([`error: model file '${FIX}/missing.ts' not found (looked at ${FIX}/missing.ts)`, 1]);
  });

  it('a bare name that is not in models/', async () => {
    const [line, code] = await failure('llama9000');
    expect(line).to.match(/^error: model file 'llama9000' not found \(looked at llama9000, llama9000\.ts, .*models\/llama9000\.ts\)$/);
    expect(code).to.equal(1);
  });

  it('no default export', async () => {
    expect(await failure(`${FIX}/no-default.ts`)).to.deep.equal([
      `${FIX}/no-default.ts: error: the model file has no default export; end it with 'export default defineModel({...})'`,
      1,
    ]);
  });

  it('a default export that is not a model', async () => {
    expect(await failure(`${FIX}/not-a-model.ts`)).to.deep.equal([
      `${FIX}/not-a-model.ts: error: the default export is an object {name, sizes}, not a model; export the result of defineModel({...})`,
      1,
    ]);
  });

  it('an exception in the forward function, at its line', async () => {
    expect(await failure(`${FIX}/throws.ts`)).to.deep.equal([`${FIX}/throws.ts:5:28: error: the model threw: vocabulary 64 is not padded to 128`, 1]);
  });

  it('an exception while the file loads, at its line', async () => {
    const [line, code] = await failure(`${FIX}/throws-on-load.ts`);
    expect(line).to.match(new RegExp(`^${FIX}/throws-on-load.ts:4:\\d+: error: the model threw: .*JSON`));
    expect(code).to.equal(1);
  });

  it('a shape mismatch, at the line of the op', async () => {
    expect(await failure(`${FIX}/bad-shape.ts`)).to.deep.equal([
      `${FIX}/bad-shape.ts:13:16: error: shape mismatch: linear: input features vs weight in-features: D does not match F`,
      1,
    ]);
  });

  it('a type error, as path:line:col', async () => {
    expect(await failure(`${FIX}/type-error.mts`)).to.deep.equal([`${FIX}/type-error.mts:8:82: error: Type 'string' is not assignable to type 'number'.`, 1]);
  });
});

describe('bad configurations', () => {
  it('a chunk that does not divide seq (exit 1, with a suggestion)', async () => {
    expect(await failure('tiny-llama', { chunk: 25 })).to.deep.equal(['error: chunk 25 does not divide seq 96; try 24', 1]);
  });

  it('an sp that does not divide the query heads', async () => {
    const [line, code] = await failure('tiny-llama', { sp: 5 });
    expect(line).to.match(/degree 5 does not divide the query heads Hq \(12\)/);
    expect(code).to.equal(1);
  });

  it('an unknown device (exit 2)', async () => {
    const [line, code] = await failure('tiny-llama', { device: 'tpu9' });
    expect(line).to.match(/^error: --device tpu9: unknown device; known: .*h200/);
    expect(code).to.equal(2);
  });

  it('an unknown pass name (exit 2)', async () => {
    const [line, code] = await failure('tiny-llama', {}, { skip: ['nope'] });
    expect(line).to.match(/^error: --skip nope: no pass named 'nope'; passes: .*shapes/);
    expect(code).to.equal(2);
  });
});
