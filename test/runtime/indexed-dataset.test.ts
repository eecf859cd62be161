// Indexed datasets (PREFIX.bin + PREFIX.idx, the MMIDIDX layout) as --tokens: written here byte
// by byte from the layout, read back as one stream of the documents concatenated, window by
// window; broken pairs are one line naming the file.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stepTokens } from '../../compiler/train/loop.js';
import { checkTokenFile, openTokenSource } from '../../runtime/tokens.js';
import { failsWithOneLine } from '../inputs/helpers.js';

/** An .idx and .bin pair for these documents (one sequence each), with header fields overridable. */
function writeIndexed(prefix: string, docs: number[][], o: { code?: number; version?: bigint; magic?: string; pointers?: bigint[]; binBytes?: number } = {}): void {
  const code = o.code ?? 8;
  const width = code === 8 ? 2 : 4;
  const n = docs.length;
  const idx = new DataView(new ArrayBuffer(34 + n * 12 + (n + 1) * 8));
  [...(o.magic ?? 'MMIDIDX\x00\x00')].forEach((ch, i) => idx.setUint8(i, ch.charCodeAt(0)));
  idx.setBigUint64(9, o.version ?? 1n, true);
  idx.setUint8(17, code);
  idx.setBigUint64(18, BigInt(n), true);
  idx.setBigUint64(26, BigInt(n + 1), true);
  let at = 0;
  docs.forEach((d, i) => {
    idx.setInt32(34 + 4 * i, d.length, true);
    idx.setBigInt64(34 + 4 * n + 8 * i, o.pointers?.[i] ?? BigInt(at * width), true);
    at += d.length;
  });
  for (let i = 0; i <= n; i++) idx.setBigInt64(34 + 12 * n + 8 * i, BigInt(i), true);
  writeFileSync(`${prefix}.idx`, new Uint8Array(idx.buffer));
  const flat = docs.flat();
  const bin = code === 8 ? new Uint8Array(new Uint16Array(flat).buffer) : new Uint8Array(new Int32Array(flat).buffer);
  writeFileSync(`${prefix}.bin`, o.binBytes === undefined ? bin : bin.subarray(0, o.binBytes));
}

describe('indexed datasets as --tokens', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'fpdtc-indexed-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));
  const docs = [[1, 2, 3], [4, 5, 6, 7, 8], [], [9, 10, 11, 12, 13, 14, 15, 16]];

  it('reads uint16 and int32 datasets as the documents one after another, by prefix or .bin', async () => {
    for (const code of [8, 4]) {
      const prefix = join(root, `ds${code}`);
      writeIndexed(prefix, docs, { code });
      for (const path of [prefix, `${prefix}.bin`]) {
        const src = await openTokenSource(path);
        try {
          expect([src.dtype, src.length]).to.deep.equal([code === 8 ? 'uint16' : 'int32', 16]);
          expect(Array.from(await src.read(2, 5))).to.deep.equal([3, 4, 5, 6, 7]);
        } finally {
          await src.close();
        }
      }
      // windows of 5 tokens: three of them, the fourth step wraps to the first
      expect(Array.from(await stepTokens(prefix, 5, 64, 0, 1))).to.deep.equal([6, 7, 8, 9, 10]);
      expect(Array.from(await stepTokens(prefix, 5, 64, 0, 3))).to.deep.equal([1, 2, 3, 4, 5]);
      expect(await checkTokenFile(prefix, { seq: 5, vocab: 64, steps: 3 })).to.deep.equal({ length: 16, dtype: code === 8 ? 'uint16' : 'int32' });
    }
    // ids above int16 survive as uint16
    writeIndexed(join(root, 'wide'), [[65535, 40000]]);
    expect(Array.from(await stepTokens(join(root, 'wide'), 2, 65536, 0, 0))).to.deep.equal([65535, 40000]);
  });

  it('a broken pair is one line naming the file and what is wrong', async () => {
    const cases: [string, (p: string) => void, RegExp][] = [
      ['bad magic', (p) => writeIndexed(p, docs, { magic: 'MMIDXXX\x00\x00' }), /magic\.idx: is not an MMIDIDX index \(bad magic\)/],
      ['another version', (p) => writeIndexed(p, docs, { version: 2n }), /version\.idx: has index version 2, not 1/],
      ['float tokens', (p) => writeIndexed(p, docs, { code: 7 }), /float\.idx: holds float32 tokens, not uint16 \(code 8\) or int32 \(code 4\)/],
      ['a gap between sequences', (p) => writeIndexed(p, docs, { pointers: [0n, 6n, 16n, 20n] }), /gap\.idx: sequence 3 starts at byte 20, not 16/],
      ['a short .bin', (p) => writeIndexed(p, docs, { binBytes: 30 }), /short\.bin: holds 30 bytes but .*short\.idx lists 16 uint16 tokens \(32 bytes\)/],
      ['a missing .idx', (p) => writeFileSync(`${p}.bin`, new Uint8Array(8)), /missing\.idx: cannot be opened \(ENOENT\)/],
      ['an id past the vocabulary', (p) => writeIndexed(p, [[1, 2, 99, 3]]), /vocab\.bin: token 99 at index 2 is not below the vocabulary size 64/],
    ];
    const names = ['magic', 'version', 'float', 'gap', 'short', 'missing', 'vocab'];
    for (const [i, [what, make, message]] of cases.entries()) {
      const prefix = join(root, names[i]);
      make(prefix);
      expect(await failsWithOneLine(() => checkTokenFile(prefix, { seq: 4, vocab: 64, steps: 1 }), what)).to.match(message);
    }
    // a truncated index: its header's counts disagree with its length
    writeIndexed(join(root, 'cut'), docs);
    writeFileSync(join(root, 'cut.idx'), new Uint8Array(40));
    expect(await failsWithOneLine(() => checkTokenFile(join(root, 'cut'), { seq: 4, vocab: 64, steps: 1 }))).to.match(/cut\.idx: is not an MMIDIDX index/);
  });
});
