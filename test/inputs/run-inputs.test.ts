// `fpdtc run` checks every input before the addon loads: token files, weights (headers, shapes,
// dtypes; NaNs as they load) and the folders it saves into; tokens without --tokens are made
// one step at a time; saves are flushed to disk before they are renamed into place.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { randomTokens, stepTokens } from '../../compiler/train/loop.js';
import { checkWeightPaths, loadParams, writeTensors } from '../../compiler/train/weights.js';
import { SafetensorsReader, writeSafetensors } from '../../runtime/safetensors.js';
import { checkTokenFile } from '../../runtime/tokens.js';
import tinyLlama from '../../models/tiny-llama.js';
import { runCli } from '../cli/run-cli.js';
import { paramsOf, writeOutDir } from '../train/hf-fixtures.js';
import { expectUnchanged, failsWithOneLine, snapshot } from './helpers.js';

const u32 = (ids: number[]) => new Uint8Array(new Uint32Array(ids).buffer);
/** A .npy file of little-endian int32 with the given header fields. */
function npy(header: string, data: Uint8Array): Uint8Array {
  const text = `{${header}}`.padEnd(118, ' ') + '\n';
  const out = new Uint8Array(10 + text.length + data.length);
  out.set([0x93, ...Buffer.from('NUMPY'), 1, 0], 0);
  new DataView(out.buffer).setUint16(8, text.length, true);
  out.set(Buffer.from(text, 'latin1'), 10);
  out.set(data, 10 + text.length);
  return out;
}

describe('run inputs: checked before the GPU', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'fpdtc-run-inputs-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));
  const file = (name: string, bytes: Uint8Array | string) => {
    const p = join(root, name);
    writeFileSync(p, bytes);
    return p;
  };

  describe('token files', () => {
    const run = { seq: 96, vocab: 64, steps: 2 };
    const ok = Array.from({ length: 3 * 96 }, (_, i) => i % 64);
    const cases: [string, () => string, RegExp][] = [
      ['a missing file', () => join(root, 'missing.bin'), /missing\.bin: cannot be opened \(ENOENT\)/],
      ['a folder', () => (mkdirSync(join(root, 'tokens-dir'), { recursive: true }), join(root, 'tokens-dir')), /tokens-dir: is not a file/],
      ['a text file', () => file('corpus.txt', 'The quick brown fox jumps over the lazy dog.\n'.repeat(40)), /corpus\.txt: holds text, not token ids; tokenize it first/],
      ['text named .npy', () => file('corpus.npy', 'just words, no numbers at all\n'.repeat(8)), /corpus\.npy: holds text, not token ids/],
      ['a size that is no whole number of tokens', () => file('odd.bin', new Uint8Array([1, 0, 0, 0, 2, 0])), /odd\.bin: 6 bytes is not a whole number of uint32 tokens/],
      ['a .npy of floats', () => file('floats.npy', npy(`'descr': '<f4', 'fortran_order': False, 'shape': (4,), `, new Uint8Array(16))), /holds dtype '<f4', not uint32, int32 or int64/],
      ['a .npy of negative length', () => file('neg.npy', npy(`'descr': '<i4', 'fortran_order': False, 'shape': (-4,), `, new Uint8Array(16))), /holds an array of shape \(-4,\), not 1-D/],
      ['a .npy with bytes after its data', () => file('long.npy', npy(`'descr': '<i4', 'fortran_order': False, 'shape': (2,), `, new Uint8Array(16))), /declares 2 tokens but holds 16 bytes of data/],
      ['too few tokens for one step', () => file('short.bin', u32([1, 2, 3])), /short\.bin: holds 3 tokens and one step needs 96/],
      ['an id past the vocabulary', () => file('big.bin', u32(ok.map((x, i) => (i === 150 ? 64 : x)))), /big\.bin: token 64 at index 150 is not below the vocabulary size 64/],
      ['a negative id', () => file('neg.bin', u32(ok.map((x, i) => (i === 7 ? -5 : x)))), /token 4294967291 at index 7 is not a valid id/],
    ];
    for (const [what, make, message] of cases)
      it(`refuses ${what}`, async () => {
        expect(await failsWithOneLine(() => checkTokenFile(make(), run), what)).to.match(message);
      });

    it('reads only the windows the run uses, and passes a good file', async () => {
      const late = file('late.bin', u32(ok.map((x, i) => (i === 2 * 96 + 5 ? 99 : x))));
      expect(await checkTokenFile(late, run)).to.deep.equal({ length: 288, dtype: 'uint32' });
      expect(await failsWithOneLine(() => checkTokenFile(late, { ...run, steps: 3 }))).to.match(/token 99 at index 197/);
      const good = file('good.npy', npy(`'descr': '<i8', 'fortran_order': False, 'shape': (288,), `, new Uint8Array(new BigInt64Array(ok.map(BigInt)).buffer)));
      expect(await checkTokenFile(good, { ...run, steps: 10 })).to.deep.equal({ length: 288, dtype: 'int64' });
      // a step reads its own window, wrapping around the file
      expect(Array.from(await stepTokens(good, 96, 64, 0, 4))).to.deep.equal(ok.slice(96, 192));
    });
  });

  it('tokens without --tokens: one step at a time, seeded, a different stream each step', async () => {
    const first = randomTokens(96, 64, 1234);
    let x = (1234 * 2654435761) >>> 0;
    const before = Array.from({ length: 96 }, () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0), x % 64));
    expect(Array.from(first)).to.deep.equal(before); // step 0 is the stream runs had before
    expect(Array.from(await stepTokens(undefined, 96, 64, 1234, 0))).to.deep.equal(before);
    const again = await stepTokens(undefined, 96, 64, 1234, 3);
    expect(Array.from(again)).to.deep.equal(Array.from(randomTokens(96, 64, 1234, 3)));
    expect(Array.from(again)).not.to.deep.equal(before);
    expect(again.every((t) => t >= 0 && t < 64)).to.equal(true);
  });

  describe('weights and save folders', () => {
    let out: string;
    const params = paramsOf(tinyLlama);
    const tensors = (edit: (name: string) => Partial<{ dtype: 'F32' | 'I32'; shape: number[]; data: Float32Array | Int32Array }> = () => ({})) =>
      params.map((p) => {
        const t = { name: p.name, dtype: 'F32' as 'F32' | 'I32', shape: [...p.shape], data: new Float32Array(p.shape.reduce((a, b) => a * b, 1)) as Float32Array | Int32Array, ...edit(p.name) };
        return t;
      });
    before(() => {
      out = writeOutDir(join(root, 'out'), tinyLlama);
    });

    it('refuses a wrong shape, an integer tensor and overlapping byte ranges before loading anything', async () => {
      const shape = join(root, 'shape.safetensors');
      await writeSafetensors(shape, tensors((n) => (n === 'model.norm.weight' ? { shape: [47], data: new Float32Array(47) } : {})));
      expect(await failsWithOneLine(() => checkWeightPaths(out, { weights: shape }))).to.equal(`error: ${shape}: 'model.norm.weight' has shape [47], the model needs [48]`);
      const ints = join(root, 'ints.safetensors');
      await writeSafetensors(ints, tensors((n) => (n === 'model.norm.weight' ? { dtype: 'I32', data: new Int32Array(48) } : {})));
      expect(await failsWithOneLine(() => checkWeightPaths(out, { weights: ints }))).to.match(/'model\.norm\.weight' is I32; weights must be F32, BF16 or F16/);
      const header = JSON.stringify({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } });
      const len = new Uint8Array(8);
      new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
      const overlap = file('overlap.safetensors', Buffer.concat([len, Buffer.from(header), new Uint8Array(24)]));
      expect(await failsWithOneLine(() => SafetensorsReader.open(overlap))).to.match(/overlap\.safetensors: tensors 'a' and 'b' share bytes \[8, 16\) of the data; the file is not a valid safetensors file/);
      expect(await failsWithOneLine(() => checkWeightPaths(out, { weights: overlap }))).to.match(/share bytes/);
    });

    it('names the tensor and element of a NaN as the weights load', async () => {
      const nan = join(root, 'nan.safetensors');
      await writeSafetensors(nan, tensors((n) => (n === 'model.layers.1.mlp.up_proj.weight' ? { data: Float32Array.from({ length: 64 * 48 }, (_, i) => (i === 100 ? NaN : 0)) } : {})));
      await checkWeightPaths(out, { weights: nan }); // headers and shapes are fine
      expect(await failsWithOneLine(() => loadParams(nan, params, async (_i, read) => void (await read(0, undefined as unknown as number))))).to.equal(
        `error: ${nan}: 'model.layers.1.mlp.up_proj.weight' holds NaN at element 100; weights must be finite (the checkpoint is damaged, or diverged before it was saved)`,
      );
    });

    it('refuses save targets whose folder is missing or that name the wrong kind of thing', async () => {
      expect(await failsWithOneLine(() => checkWeightPaths(out, { save: join(root, 'no', 'such', 'w.safetensors') }))).to.match(/cannot write .*w\.safetensors: its folder .*no\/such does not exist; create it first/);
      mkdirSync(join(root, 'is-a-dir.safetensors'), { recursive: true });
      expect(await failsWithOneLine(() => checkWeightPaths(out, { dumpGrads: join(root, 'is-a-dir.safetensors') }))).to.match(/is-a-dir\.safetensors: it is a folder/);
      const same = join(root, 'same.safetensors');
      expect(await failsWithOneLine(() => checkWeightPaths(out, { save: same, dumpGrads: same }))).to.match(/same\.safetensors: it is the --save path too/);
      await checkWeightPaths(out, { save: join(root, 'w.safetensors'), dumpGrads: join(root, 'g.safetensors') });
    });

    it('flushes a saved file to disk before renaming it into place', async () => {
      const probe = await open(join(root, 'probe'), 'w');
      const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
      await probe.close();
      const sync = proto.sync;
      const synced: string[] = [];
      proto.sync = async function (this: unknown) {
        synced.push(readdirSync(root).filter((n) => n.startsWith('saved.safetensors')).join(','));
        return sync.call(this);
      };
      try {
        await writeTensors(join(root, 'saved.safetensors'), params.slice(0, 2), (i) => new Float32Array(params[i].shape.reduce((a, b) => a * b, 1)));
      } finally {
        proto.sync = sync;
      }
      // synced while only the temporary file existed; renamed after
      expect(synced).to.have.length(1);
      expect(synced[0]).to.match(/^saved\.safetensors\.tmp-\d+$/);
      expect(readdirSync(root).filter((n) => n.startsWith('saved.safetensors'))).to.deep.equal(['saved.safetensors']);
    });
  });

  it('the command checks the tokens before it loads the addon', async function () {
    this.timeout(30000);
    const dir = (await compile('tiny-llama', {}, { outDir: join(root, 'compiled'), typeCheck: false })).modelOutDir;
    const { readFileSync } = await import('node:fs');
    const hash = JSON.parse(readFileSync(join(dir, 'schedule.json'), 'utf8')).hash;
    mkdirSync(join(dir, 'build'), { recursive: true });
    // not a loadable addon: reaching it would be a different error
    writeFileSync(join(dir, 'build', 'fpdt.node'), 'not an addon');
    writeFileSync(join(dir, 'build', 'built-from.json'), JSON.stringify({ hash, arch: '90a', built_at: 'now', addon: 'fpdt.node' }));
    const text = file('words.txt', 'one two three four five six seven eight\n'.repeat(30));
    const before = snapshot(root);
    const r = runCli(['run', dir, '--ranks-per-gpu', '2', '--steps', '2', '--tokens', text, '--save', join(root, 'nope', 'w.safetensors')]);
    expect([r.code, r.stderr]).to.deep.equal([1, `error: ${text}: holds text, not token ids; tokenize it first and write the ids as flat little-endian uint32 (.bin) or a .npy array\n`]);
    expectUnchanged(root, before, 'run with a text file as tokens');
  });
});
