// The data of packed programs: windows cut into documents (ids, positions restarting at 0,
// labels that stop at each document's end and at masked tokens), document starts from an
// indexed dataset's document index (several sequences a document, empty ones), from
// --eod-token and from --documents, the loss mask; bad data and misplaced flags are one line.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDocumentFlags, documentFlags } from '../../compiler/cli/run-documents.js';
import { PackedData } from '../../compiler/train/packed-data.js';
import { fileBoundaries, indexedBoundaries } from '../../runtime/document-boundaries.js';
import { eodStarts, IGNORE_LABEL as X, packWindow } from '../../runtime/packed-window.js';
import { failsWithOneLine } from '../inputs/helpers.js';

/** Fails with one line that matches `what`. */
const failsWith = async (f: () => unknown, what: RegExp) => expect(await failsWithOneLine(f, String(what))).to.match(what);

/** PREFIX.idx/.bin of int32 sequences, `docIdx` the first sequence of each document (then n). */
function writeIndexed(prefix: string, seqs: number[][], docIdx: number[]): void {
  const n = seqs.length;
  const idx = new DataView(new ArrayBuffer(34 + n * 12 + docIdx.length * 8));
  [...'MMIDIDX\x00\x00'].forEach((ch, i) => idx.setUint8(i, ch.charCodeAt(0)));
  idx.setBigUint64(9, 1n, true);
  idx.setUint8(17, 4);
  idx.setBigUint64(18, BigInt(n), true);
  idx.setBigUint64(26, BigInt(docIdx.length), true);
  let at = 0;
  seqs.forEach((s, i) => {
    idx.setInt32(34 + 4 * i, s.length, true);
    idx.setBigInt64(34 + 4 * n + 8 * i, BigInt(at * 4), true);
    at += s.length;
  });
  docIdx.forEach((d, i) => idx.setBigInt64(34 + 12 * n + 8 * i, BigInt(d), true));
  writeFileSync(`${prefix}.idx`, new Uint8Array(idx.buffer));
  writeFileSync(`${prefix}.bin`, new Uint8Array(new Int32Array(seqs.flat()).buffer));
}

describe('packed documents: data', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'fpdtc-packed-data-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('cuts a window into documents: ids, positions from 0, labels stopping at each end', () => {
    const w = packWindow(Int32Array.from([10, 11, 12, 20, 30, 31]), [3, 4]);
    expect([...w.docs]).to.deep.equal([0, 0, 0, 1, 2, 2]);
    expect([...w.positions]).to.deep.equal([0, 1, 2, 0, 0, 1]);
    // a document of length 1 predicts nothing; the window's last token neither
    expect([...w.labels]).to.deep.equal([11, 12, X, X, 31, X]);
    expect(w.documents).to.equal(3);
    expect(w.counted).to.equal(3);
    // starts at 0 and repeated starts (empty sequences) change nothing
    expect(packWindow(Int32Array.from([10, 11, 12, 20, 30, 31]), [0, 3, 3, 4, 4]).labels).to.deep.equal(w.labels);
  });

  it('masks labels where the loss mask is 0, and starts documents after each end-of-document token', () => {
    const tokens = Int32Array.from([5, 6, 2, 7, 8, 2, 9]);
    expect(eodStarts(tokens, 2)).to.deep.equal([3, 6]);
    const w = packWindow(tokens, eodStarts(tokens, 2), [0, 1, 1, 1, 0, 1, 1]);
    expect([...w.docs]).to.deep.equal([0, 0, 0, 1, 1, 1, 2]);
    // the end-of-document token is its document's last: it predicts nothing
    expect([...w.labels]).to.deep.equal([X, 2, X, 8, X, X, X]);
  });

  it('finds document starts from the document index, several sequences a document, window by window', async () => {
    const prefix = join(root, 'ds');
    // tokens 0..15; documents: seqs 0-1 (tokens 0..5), seq 2 (6..6), seqs 3-4 (7..15, seq 4 empty is at 15), seq 5
    const seqs = [[0, 1, 2], [3, 4, 5], [6], [7, 8, 9, 10, 11, 12, 13, 14], [], [15]];
    writeIndexed(prefix, seqs, [0, 2, 3, 5, 6]);
    const b = await indexedBoundaries(prefix);
    try {
      const window = (from: number, n: number) => b.startsIn(from, new Int32Array(n));
      expect(await window(0, 8)).to.deep.equal([6, 7]);
      // a window that starts inside a document: its tail is the window's first document
      expect(await window(4, 8)).to.deep.equal([2, 3]);
      expect(await window(8, 8)).to.deep.equal([7]);
      expect(b.describe).to.match(/4 documents/);
    } finally {
      await b.close();
    }
    writeIndexed(join(root, 'bad'), seqs, [0, 3, 2, 6]);
    await failsWith(() => indexedBoundaries(join(root, 'bad')), /bad\.idx: document index entry 2 is 2 \(after 3;.*write the dataset again/);
    writeIndexed(join(root, 'short'), seqs, [0, 3]);
    await failsWith(() => indexedBoundaries(join(root, 'short')), /short\.idx: document index ends at sequence 3, not at the 6 sequences/);
  });

  it('reads a boundaries file as ascending start offsets; anything else is one line', async () => {
    const good = join(root, 'starts.txt');
    writeFileSync(good, '0\n5\n9 12\n');
    const b = await fileBoundaries(good, 16);
    expect(await b.startsIn(4, new Int32Array(8))).to.deep.equal([1, 5]);
    for (const [text, what] of [
      ['0 5 5', /entry 3 \(5\) does not come after entry 2 \(5\)/],
      ['0 20', /entry 2 \(20\) is past the token stream's 16 tokens/],
      ['0 x1', /entry 2 'x1' is not a whole number/],
      ['', /lists no document start/],
    ] as const) {
      const p = join(root, 'bad-starts.txt');
      writeFileSync(p, text);
      await failsWith(() => fileBoundaries(p, 16), what);
    }
  });

  it('a packed run needs a document source, and the flags need a packed program', async () => {
    const tokens = join(root, 'flat.bin');
    writeFileSync(tokens, new Uint8Array(new Uint32Array(Array.from({ length: 32 }, (_, i) => i % 7)).buffer));
    await failsWith(() => PackedData.open('out/m', tokens, {}), /out\/m was compiled with --packed: say where its documents start: .*--eod-token ID, or --documents FILE/);
    await failsWith(() => PackedData.open('out/m', undefined, { documents: 'x.txt' }), /--documents x\.txt: needs --tokens FILE/);
    await failsWith(() => checkDocumentFlags('out/m', false, tokens, { eodToken: 2 }), /--eod-token: out\/m was compiled without --packed/);
    expect(() => documentFlags({ eodToken: '-1' })).to.throw(/--eod-token -1: a token id/);
    const mask = join(root, 'mask.bin');
    writeFileSync(mask, new Uint8Array(new Uint32Array(16).buffer));
    await failsWith(() => PackedData.open('out/m', tokens, { eodToken: 0, lossMask: mask }), /mask\.bin: holds 16 values but the token file 32 tokens/);
    writeFileSync(mask, new Uint8Array(new Uint32Array(Array.from({ length: 32 }, (_, i) => (i === 20 ? 3 : 1))).buffer));
    const data = await PackedData.open('out/m', tokens, { eodToken: 0, lossMask: mask });
    try {
      // two dp groups of 8-token windows at step 1: windows 2 and 3 of the file
      const batch = Int32Array.from(Array.from({ length: 16 }, (_, i) => (16 + i) % 7));
      const w = await data.step(batch.subarray(0, 8).slice(), 8, 0, 1);
      expect(w.docs.length).to.equal(8);
      await failsWith(() => data.step(batch, 8, 1, 2), /mask\.bin: value 3 at index 20 is not 0 or 1/);
    } finally {
      await data.close();
    }
  });
});
