import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedVerdict, storeVerdict } from '../../compiler/frontend/check-cache.js';

describe('type-check verdict cache', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fpdtc-cache-'));
  const model = join(dir, 'model.ts');
  const dsl = join(dir, 'dsl.ts');
  const cache = join(dir, 'cache');
  const diagnostics = [{ file: model, line: 3, col: 7, message: 'nope' }];

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
