// The golden helper itself: a missing golden file fails (and leaves the actual text to compare),
// a matching one passes and clears an old .actual, a different one fails naming the line.
import { expect } from 'chai';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../temp-dir.js';
import { expectGoldenFile } from './golden.js';

describe('golden files', () => {
  let dir = '';
  const saved = process.env.UPDATE_GOLDEN;
  before(() => {
    dir = makeTempDir('fpdt-golden-');
    delete process.env.UPDATE_GOLDEN;
  });
  after(() => {
    removeTempDir(dir);
    if (saved === undefined) delete process.env.UPDATE_GOLDEN;
    else process.env.UPDATE_GOLDEN = saved;
  });

  it('a missing golden file fails and is not written', () => {
    const path = join(dir, 'missing.txt');
    expect(() => expectGoldenFile(path, 'a\n')).to.throw(/no golden file/);
    expect(existsSync(path)).to.equal(false);
    expect(readFileSync(`${path}.actual`, 'utf8')).to.equal('a\n');
  });

  it('a different text fails at its first differing line; the same text passes and clears .actual', () => {
    const path = join(dir, 'g.txt');
    writeFileSync(path, 'x\ny\n');
    expect(() => expectGoldenFile(path, 'x\nz\n')).to.throw(/at line 2/);
    expect(existsSync(`${path}.actual`)).to.equal(true);
    expectGoldenFile(path, 'x\ny\n');
    expect(existsSync(`${path}.actual`)).to.equal(false);
  });
});
