// Hugging Face folders: the index and its failure modes, ranged reads across shards, single-file
// folders, shard planning under a size limit, and a save that fails midway leaving the folder
// it was replacing byte for byte as it was.
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { RuntimeError } from '../../runtime/errors.js';
import { parseIndex, planShards, shardName, WeightSource, writeHfFolder, type ShardSink } from '../../runtime/hf-folder.js';
import { SafetensorsReader, SafetensorsWriter, writeSafetensors } from '../../runtime/safetensors.js';

const ramp = (n: number, start = 0) => Float32Array.from({ length: n }, (_, i) => start + i);

/** A folder of `shards` (file -> tensor names), each tensor [2, 3] holding a ramp from its number. */
async function makeFolder(dir: string, shards: Record<string, string[]>, index = true): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const map: Record<string, string> = {};
  let k = 0;
  for (const [file, names] of Object.entries(shards)) {
    await writeSafetensors(join(dir, file), names.map((name) => ({ name, dtype: 'F32' as const, shape: [2, 3], data: ramp(6, 100 * k++) })), { format: 'pt' });
    for (const n of names) map[n] = file;
  }
  if (index) writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: k * 24 }, weight_map: map }));
}

async function rejects(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(RuntimeError);
    return (e as Error).message;
  }
  throw new Error('expected a rejection');
}

/** Every file under a folder with its bytes, for byte-for-byte comparison. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f)).toString('base64')]));
}

describe('Hugging Face folders', () => {
  let root: string;
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), 'fpdt-hf-'))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  describe('index', () => {
    it('maps tensors to shard files', () => {
      const m = parseIndex(JSON.stringify({ metadata: { total_size: 48 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }), 'i.json');
      expect([...m]).to.deep.equal([
        ['a', 'model-00001-of-00002.safetensors'],
        ['b', 'model-00002-of-00002.safetensors'],
      ]);
    });
    const broken: [string, string, RegExp][] = [
      ['text that is not JSON', '{"weight_map": ', /^i\.json: is not JSON/],
      ['no weight_map', '{"metadata": {}}', /^i\.json: has no weight_map object; the folder's index is damaged/],
      ['an empty weight_map', '{"weight_map": {}}', /empty weight_map/],
      ['a shard outside the folder', '{"weight_map": {"a": "../x.safetensors"}}', /maps 'a' to "\.\.\/x\.safetensors", not a file name in the folder/],
    ];
    for (const [what, text, message] of broken)
      it(`refuses ${what}`, () => {
        expect(() => parseIndex(text, 'i.json')).to.throw(RuntimeError, message);
      });
  });

  describe('reading', () => {
    it('reads ranges of tensors across several shards', async () => {
      const dir = join(root, 'm');
      await makeFolder(dir, { 'model-00001-of-00003.safetensors': ['a', 'b'], 'model-00002-of-00003.safetensors': ['c'], 'model-00003-of-00003.safetensors': ['d'] });
      const w = await WeightSource.open(dir);
      try {
        expect(w.isFolder).to.equal(true);
        expect(w.names().sort()).to.deep.equal(['a', 'b', 'c', 'd']);
        expect(w.files()).to.deep.equal(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
        expect(w.entry('c')).to.deep.include({ shape: [2, 3], dtype: 'F32', file: 'model-00002-of-00003.safetensors' });
        // a rank's slice of each tensor, hopping between shards and back
        expect([...(await w.readF32('d', 4, 2))]).to.deep.equal([304, 305]);
        expect([...(await w.readF32('a', 1, 3))]).to.deep.equal([1, 2, 3]);
        expect([...(await w.readF32('c', 0, 6))]).to.deep.equal([...ramp(6, 200)]);
        expect([...(await w.readF32('b', 5, 1))]).to.deep.equal([105]);
      } finally {
        await w.close();
      }
    });

    it('reads a folder with one model.safetensors, and a plain file', async () => {
      const dir = join(root, 'one');
      await makeFolder(dir, { 'model.safetensors': ['x', 'y'] }, false);
      writeFileSync(join(dir, 'config.json'), '{"model_type": "llama"}');
      const w = await WeightSource.open(dir);
      expect(await w.config()).to.deep.equal({ model_type: 'llama' });
      expect([...(await w.readF32('y', 2, 2))]).to.deep.equal([102, 103]);
      await w.close();
      const f = await WeightSource.open(join(dir, 'model.safetensors'));
      expect(f.isFolder).to.equal(false);
      expect(await f.config()).to.equal(undefined);
      expect([...(await f.readF32('x'))]).to.deep.equal([...ramp(6)]);
      await f.close();
    });

    it('refuses a folder without weights, a missing shard, a tensor in two shards and an index that disagrees with a shard', async () => {
      mkdirSync(join(root, 'empty'));
      expect(await rejects(WeightSource.open(join(root, 'empty')))).to.match(/empty: holds neither model\.safetensors\.index\.json nor model\.safetensors; pass a Hugging Face folder/);
      expect(await rejects(WeightSource.open(join(root, 'nowhere')))).to.match(/nowhere: does not exist/);

      const missing = join(root, 'missing');
      await makeFolder(missing, { 'model-00001-of-00002.safetensors': ['a'], 'model-00002-of-00002.safetensors': ['b'] });
      rmSync(join(missing, 'model-00002-of-00002.safetensors'));
      expect(await rejects(WeightSource.open(missing))).to.equal(
        `${missing}/model.safetensors.index.json: names shard model-00002-of-00002.safetensors (which holds 'b'), but ${missing}/model-00002-of-00002.safetensors is missing; download the missing shard`,
      );

      const twice = join(root, 'twice');
      await makeFolder(twice, { 'model-00001-of-00002.safetensors': ['a', 'b'], 'model-00002-of-00002.safetensors': ['b'] });
      expect(await rejects(WeightSource.open(twice))).to.match(/tensor 'b' is in both model-00001-of-00002\.safetensors and model-00002-of-00002\.safetensors/);

      const wrong = join(root, 'wrong');
      await makeFolder(wrong, { 'model-00001-of-00002.safetensors': ['a'], 'model-00002-of-00002.safetensors': ['b'] });
      writeFileSync(join(wrong, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-00002-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }));
      expect(await rejects(WeightSource.open(wrong))).to.match(/maps 'a' to model-00002-of-00002\.safetensors, which has no such tensor/);
    });
  });

  describe('writing', () => {
    const tensors = [
      { name: 'model.embed_tokens.weight', shape: [8, 4] },
      { name: 'model.layers.0.mlp.up_proj.weight', shape: [6, 4] },
      { name: 'model.layers.0.input_layernorm.weight', shape: [4] },
      { name: 'model.norm.weight', shape: [4] },
      { name: 'lm_head.weight', shape: [8, 4] },
    ];
    const values = (i: number) => ramp(tensors[i].shape.reduce((a, b) => a * b, 1), 1000 * i);

    it('plans shards up to the limit; a larger tensor gets its own', () => {
      // 128, 96, 16, 16, 128 bytes under a 150-byte limit
      expect(planShards(tensors, 4, 150)).to.deep.equal([[0], [1, 2, 3], [4]]);
      expect(planShards(tensors, 4, 100)).to.deep.equal([[0], [1], [2, 3], [4]]);
      expect(planShards(tensors, 4, 5e9)).to.deep.equal([[0, 1, 2, 3, 4]]);
      expect(shardName(1, 3)).to.equal('model-00002-of-00003.safetensors');
      expect(shardName(0, 1)).to.equal('model.safetensors');
    });

    it('writes several shards with an index whose total_size is the bytes written, asking for each tensor once', async () => {
      const dir = join(root, 'saved');
      const asked: number[] = [];
      const files = await writeHfFolder(dir, tensors, (i) => (asked.push(i), values(i)), { config: { model_type: 'llama' }, maxShardBytes: 150 });
      expect(asked).to.deep.equal([0, 1, 2, 3, 4]);
      expect(files).to.deep.equal(['config.json', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
      expect(readdirSync(dir).sort()).to.deep.equal([...files].sort());
      expect(readdirSync(root)).to.deep.equal(['saved']); // no temporary folder left
      const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
      expect(index.metadata.total_size).to.equal(4 * (32 + 24 + 4 + 4 + 32));
      expect(Object.keys(index.weight_map)).to.deep.equal(tensors.map((t) => t.name).sort());
      expect(index.weight_map['model.norm.weight']).to.equal('model-00002-of-00003.safetensors');
      let dataBytes = 0;
      for (const f of files.filter((f) => f.startsWith('model-'))) {
        const r = await SafetensorsReader.open(join(dir, f));
        expect(r.metadata).to.deep.equal({ format: 'pt' });
        for (const t of r.tensors.values()) dataBytes += t.end - t.begin;
        await r.close();
      }
      expect(dataBytes).to.equal(index.metadata.total_size);
      const w = await WeightSource.open(dir);
      for (const [i, t] of tensors.entries()) expect([...(await w.readF32(t.name))]).to.deep.equal([...values(i)]);
      expect(await w.config()).to.deep.equal({ model_type: 'llama' });
      await w.close();
    });

    it('writes one model.safetensors and no index when one shard holds everything, with the tokenizer files', async () => {
      const src = join(root, 'src');
      mkdirSync(src);
      writeFileSync(join(src, 'tokenizer.json'), '{"t": 1}');
      writeFileSync(join(src, 'generation_config.json'), '{"g": 1}');
      const dir = join(root, 'one');
      const files = await writeHfFolder(dir, tensors, values, { config: {}, companionsFrom: src });
      expect(files).to.deep.equal(['config.json', 'model.safetensors']);
      expect(readdirSync(dir).sort()).to.deep.equal(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json']);
      expect(readFileSync(join(dir, 'tokenizer.json'), 'utf8')).to.equal('{"t": 1}');
    });

    it('replaces an existing folder whole, and a save that fails midway leaves it byte for byte and no temporary folder', async () => {
      const dir = join(root, 'ckpt');
      await writeHfFolder(dir, tensors, values, { config: { v: 1 }, maxShardBytes: 150 });
      const before = snapshot(dir);
      // the second shard's writer fails after its first tensor
      let opened = 0;
      const failing = async (path: string, specs: Parameters<typeof SafetensorsWriter.create>[1], metadata: Record<string, string>): Promise<ShardSink> => {
        const real = await SafetensorsWriter.create(path, specs, metadata);
        const mine = ++opened;
        let writes = 0;
        return {
          write: async (name, data) => {
            if (mine === 2 && ++writes === 2) throw new Error('no space left on device');
            await real.write(name, data);
          },
          close: () => real.close(),
        };
      };
      const message = await rejects(writeHfFolder(dir, tensors, (i) => values(i).map((x) => -x), { config: { v: 2 }, maxShardBytes: 150, openShard: failing }));
      expect(message).to.equal(`${dir}: could not be written (no space left on device); nothing was changed there; check the free space and permissions`);
      expect(snapshot(dir)).to.deep.equal(before);
      expect(readdirSync(dirname(dir))).to.deep.equal(['ckpt']);
      // a save that completes replaces it: one shard now, the old shards gone
      await writeHfFolder(dir, tensors, values, { config: { v: 3 } });
      expect(readdirSync(dir).sort()).to.deep.equal(['config.json', 'model.safetensors']);
      expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))).to.deep.equal({ v: 3 });
      expect(readdirSync(root)).to.deep.equal(['ckpt']);
    });

    it('never replaces a folder that holds something other than a model, nor a file', async () => {
      const docs = join(root, 'docs');
      mkdirSync(docs);
      writeFileSync(join(docs, 'notes.txt'), 'keep me');
      expect(await rejects(writeHfFolder(docs, tensors, values, { config: {} }))).to.equal(
        `${docs}: exists and holds no config.json, model.safetensors.index.json or model.safetensors; pass a new folder or an existing model folder`,
      );
      expect(readFileSync(join(docs, 'notes.txt'), 'utf8')).to.equal('keep me');
      const file = join(root, 'file');
      writeFileSync(file, 'x');
      expect(await rejects(writeHfFolder(file, tensors, values, { config: {} }))).to.match(/file: is a file, not a folder/);
      expect(existsSync(`${file}.tmp-${process.pid}`)).to.equal(false);
    });
  });
});
