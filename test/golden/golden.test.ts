// The golden helper itself: a missing golden file fails (and leaves the actual text to compare),
// a matching one passes and clears an old .actual, a different one fails naming the line.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectGoldenFile } from './golden.js';

describe('golden files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fpdt-golden-'));
  const saved = process.env.UPDATE_GOLDEN;
  before(() => delete process.env.UPDATE_GOLDEN);
  after(() => (saved === undefined ? delete process.env.UPDATE_GOLDEN : (process.env.UPDATE_GOLDEN = saved)));

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
