import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cachedVerdict, storeVerdict } from '../../compiler/frontend/check-cache.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';

describe('type-check verdict cache', () => {
  let dir = '';
  let model = '';
  let dsl = '';
  let cache = '';
  let diagnostics: { file: string; line: number; col: number; message: string }[] = [];
  before(() => {
    dir = makeTempDir('fpdtc-cache-');
    model = join(dir, 'model.ts');
    dsl = join(dir, 'dsl.ts');
    cache = join(dir, 'cache');
    diagnostics = [{ file: model, line: 3, col: 7, message: 'nope' }];
  });
  after(() => removeTempDir(dir));

  beforeEach(() => {
    writeFileSync(model, 'export default 1;\n');
    writeFileSync(dsl, 'export const x = 1;\n');
    storeVerdict(cache, model, { diagnostics, files: [model, dsl] });
  });

  it('returns the stored diagnostics while nothing changed', () => {
    expect(cachedVerdict(cache, model)).to.deep.equal(diagnostics);
  });

  it('forgets the verdict when the model changes', () => {
    writeFileSync(model, 'export default 2;\n');
    expect(cachedVerdict(cache, model)).to.equal(undefined);
  });

  it('forgets the verdict when a file the check read changes', () => {
    writeFileSync(dsl, 'export const x = 2;\n');
    expect(cachedVerdict(cache, model)).to.equal(undefined);
  });

  it('has nothing for a model never checked', () => {
    expect(cachedVerdict(cache, join(dir, 'other.ts'))).to.equal(undefined);
  });
});
