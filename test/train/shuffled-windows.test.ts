// `fpdtc run --seed N`: the token windows in a seeded order (every window once per pass over the
// file, the same order for the same seed); without a seed, in order as before.
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stepBatch } from '../../compiler/train/loop.js';
import { checkTokenFile, windowIndex } from '../../runtime/tokens.js';
import { withTempDir } from '../temp-dir.js';

describe('fpdtc run --seed: shuffled token windows', () => {
  it('a seed gives a permutation of the windows, reproducible, new each pass; no seed keeps the order', () => {
    const order = (seed: number | undefined, from = 0) => Array.from({ length: 10 }, (_, k) => windowIndex(from + k, 10, seed));
    expect(order(undefined)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const a = order(7);
    expect([...a].sort((x, y) => x - y)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(a).to.not.deep.equal(order(undefined));
    expect(order(7)).to.deep.equal(a);
    expect(order(8)).to.not.deep.equal(a);
    const second = order(7, 10);
    expect([...second].sort((x, y) => x - y)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(second).to.not.deep.equal(a);
  });

  it('steps read the seeded windows; the check reads the windows the run will use', async () => {
    const stream = Array.from({ length: 8 * 4 }, (_, i) => i);
    await withTempDir('fpdt-shuffle-', async (dir) => {
      const file = join(dir, 'tokens.bin');
      writeFileSync(file, new Uint8Array(new Uint32Array(stream).buffer));
      for (let k = 0; k < 4; k++) {
        const w = windowIndex(2 * k, 8, 3);
        const w2 = windowIndex(2 * k + 1, 8, 3);
        expect(Array.from(await stepBatch(file, 4, 64, 0, k, 2, 3))).to.deep.equal([...stream.slice(4 * w, 4 * w + 4), ...stream.slice(4 * w2, 4 * w2 + 4)]);
      }
      // an id past the vocabulary in a window the seeded run never reads in its steps passes the check
      const unused = [0, 1, 2, 3, 4, 5, 6, 7].find((w) => ![0, 1].map((k) => windowIndex(k, 8, 3)).includes(w))!;
      const bad = stream.map((x, i) => (Math.floor(i / 4) === unused ? 99 : x));
      writeFileSync(file, new Uint8Array(new Uint32Array(bad).buffer));
      await checkTokenFile(file, { seq: 4, vocab: 64, steps: 2, seed: 3 });
      const used = windowIndex(0, 8, 3);
      writeFileSync(file, new Uint8Array(new Uint32Array(stream.map((x, i) => (Math.floor(i / 4) === used ? 99 : x))).buffer));
      let message = '';
      await checkTokenFile(file, { seq: 4, vocab: 64, steps: 2, seed: 3 }).catch((e: Error) => (message = e.message));
      expect(message).to.match(new RegExp(`token 99 at index ${4 * used} is not below the vocabulary size 64`));
    });
  });
});
