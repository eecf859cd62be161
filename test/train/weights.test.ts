// Loading and saving weights without a GPU: the folder and file logic of compiler/train/weights.ts
// driven through plain stand-ins for the ranks (a parameter table, a setter that reads ZeRO-3
// slices, a gatherer that hands whole tensors).
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../compiler/errors.js';
import type { RankSet } from '../../compiler/train/ranks.js';
import { checkWeightPaths, loadParams, planSave, saveGathered, writeTensors, type ParamSpec, type ReadRange } from '../../compiler/train/weights.js';
import { readModelFacts } from '../../compiler/train/hf-config.js';
import { WeightSource, writeHfFolder } from '../../runtime/hf-folder.js';
import { SafetensorsReader } from '../../runtime/safetensors.js';
import tinyGpt from '../../models/tiny-gpt.js';
import tinyLlama from '../../models/tiny-llama.js';
import { paramsOf, tiedLlama, tinyLlamaConfig, writeOutDir } from './hf-fixtures.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
/** Distinct values per tensor, so a slice from the wrong tensor or offset shows. */
const valuesOf = (params: readonly ParamSpec[]) => (i: number) => Float32Array.from({ length: numel(params[i].shape) }, (_, k) => i * 10000 + k);

async function userError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(UserError);
    return (e as UserError).line();
  }
  throw new Error('expected a UserError');
}

/** A world of `ranks` ZeRO-3 ranks: each reads its slice of every tensor; returns what they put together. */
async function loadAsRanks(path: string, params: readonly ParamSpec[], ranks: number, outDir?: string): Promise<{ whole: Float32Array[]; order: number[] }> {
  const whole = params.map((p) => new Float32Array(numel(p.shape)));
  const order: number[] = [];
  await loadParams(path, params, async (i: number, read: ReadRange) => {
    order.push(i);
    const n = whole[i].length;
    const shard = Math.ceil(n / ranks);
    for (let r = 0; r < ranks; r++) {
      const offset = r * shard;
      const count = Math.max(0, Math.min(shard, n - offset));
      if (count > 0) whole[i].set(await read(offset, count), offset);
    }
  }, outDir ? readModelFacts(outDir) : undefined);
  return { whole, order };
}

describe('weights: folders and files, without a GPU', () => {
  let root: string;
  let out: string;
  const params = paramsOf(tinyLlama);
  const values = valuesOf(params);
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'fpdt-weights-'));
    out = writeOutDir(join(root, 'out', 'tiny-llama'), tinyLlama);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** A Hugging Face folder of tiny-llama's weights in shards of about 12 KB. */
  const makeFolder = async (dir: string, config: Record<string, unknown> | undefined = tinyLlamaConfig(), list: readonly ParamSpec[] = params) => {
    await writeHfFolder(dir, list, valuesOf(list), { config: config ?? {}, maxShardBytes: 12_000 });
    if (!config) rmSync(join(dir, 'config.json'));
    return dir;
  };

  it('loads a sharded folder: every rank reads only its slice, shard file by shard file', async () => {
    const dir = await makeFolder(join(root, 'hf'));
    expect(readdirSync(dir).filter((f) => f.startsWith('model-')).length).to.be.greaterThan(3);
    const { whole, order } = await loadAsRanks(dir, params, 3, out);
    for (const [i] of params.entries()) expect(whole[i], params[i].name).to.deep.equal(values(i));
    const w = await WeightSource.open(dir);
    const fileOf = order.map((i) => w.files().indexOf(w.entry(params[i].name).file));
    await w.close();
    expect(fileOf).to.deep.equal([...fileOf].sort((a, b) => a - b));
  });

  it('checks config.json before reading any tensor', async () => {
    const dir = await makeFolder(join(root, 'hf'), { ...tinyLlamaConfig(), num_key_value_heads: 4 });
    let set = 0;
    const line = await userError(loadParams(dir, params, async () => void set++, readModelFacts(out)));
    expect(line).to.equal(`error: ${dir}/config.json: num_key_value_heads is 4, the model (tiny-llama) has Hkv 2; use a model file made from this folder (fpdtc import-hf ${dir}) or other weights`);
    expect(set).to.equal(0);
  });

  it('an untied model needs lm_head.weight and says so; a tied one ignores a folder\'s copy', async () => {
    const noHead = params.filter((p) => p.name !== 'lm_head.weight');
    const dir = await makeFolder(join(root, 'nohead'), tinyLlamaConfig(), noHead);
    expect(await userError(loadParams(dir, params, async () => {}, readModelFacts(out)))).to.equal(
      `error: ${dir}: no tensor 'lm_head.weight', and the model (tiny-llama) has its own LM head; use weights that hold one, or a model with tiedEmbeddings: true`,
    );
    const tiedOut = writeOutDir(join(root, 'out', 'tiny-tied'), tiedLlama);
    const tiedParams = paramsOf(tiedLlama);
    expect(tiedParams.map((p) => p.name)).to.not.include('lm_head.weight');
    const withHead = await makeFolder(join(root, 'tied'), { ...tinyLlamaConfig(), tie_word_embeddings: true });
    const { whole } = await loadAsRanks(withHead, tiedParams, 2, tiedOut);
    expect(whole[tiedParams.findIndex((p) => p.name === 'model.embed_tokens.weight')]).to.deep.equal(values(params.findIndex((p) => p.name === 'model.embed_tokens.weight')));
  });

  it('names a tensor of the wrong shape, and a missing one', async () => {
    const wrong = params.map((p) => (p.name === 'model.norm.weight' ? { ...p, shape: [p.shape[0] / 2, 2] } : p));
    const dir = await makeFolder(join(root, 'wrong'), undefined, wrong);
    expect(await userError(loadParams(dir, params, async () => {}))).to.equal(`error: ${dir}: 'model.norm.weight' has shape [24, 2], the model needs [48]`);
    const few = await makeFolder(join(root, 'few'), undefined, params.slice(1));
    expect(await userError(loadAsRanks(few, params, 1))).to.equal(`error: ${few}: no tensor '${params[0].name}' (the model needs ${params.length} tensors)`);
  });

  it('loads a folder without config.json, and a plain .safetensors file', async () => {
    const dir = await makeFolder(join(root, 'bare'), undefined);
    expect((await loadAsRanks(dir, params, 2, out)).whole[5]).to.deep.equal(values(5));
    const file = join(root, 'w.safetensors');
    await writeTensors(file, params, values);
    expect(readdirSync(root).sort()).to.deep.equal(['bare', 'out', 'w.safetensors']); // no temporary file
    expect((await loadAsRanks(file, params, 4, out)).whole[7]).to.deep.equal(values(7));
  });

  it('a folder save needs a Llama-family model; a .safetensors save takes any model', async () => {
    const gptOut = writeOutDir(join(root, 'out', 'tiny-gpt'), tinyGpt);
    expect(await planSave(join(root, 'x.safetensors'), { outDir: gptOut })).to.equal(undefined);
    expect(await userError(planSave(join(root, 'ckpt'), { outDir: gptOut }))).to.equal(
      `error: ${root}/ckpt: the model (tiny-gpt) is not a Llama model (it has model.layers.0.input_layernorm.bias), so it cannot be read from or written as a Hugging Face Llama folder; pass a path ending in .safetensors`,
    );
    // `fpdtc run` checks this (and the weights' config.json) before it starts any rank
    expect(await userError(checkWeightPaths(gptOut, { save: join(root, 'ckpt') }))).to.match(/not a Llama model/);
    const mismatched = await makeFolder(join(root, 'hf'), { ...tinyLlamaConfig(), vocab_size: 32000 });
    expect(await userError(checkWeightPaths(out, { weights: mismatched }))).to.match(/config\.json: vocab_size is 32000, the model \(tiny-llama\) has V 64;/);
    writeFileSync(join(root, 'afile'), 'x');
    expect(await userError(checkWeightPaths(out, { dumpGrads: join(root, 'afile') }))).to.equal(`error: cannot write ${root}/afile: it is a file; pass a path ending in .safetensors, or a folder`);
    await checkWeightPaths(out, { weights: await makeFolder(join(root, 'good')), save: join(root, 'new'), dumpGrads: join(root, 'g.safetensors') });
  });

  it('saves gathered weights as a folder transformers loads, with the original config\'s token ids and tokenizer files', async () => {
    const src = await makeFolder(join(root, 'hf'), { ...tinyLlamaConfig(), bos_token_id: 1, eos_token_id: 2, max_position_embeddings: 4096 });
    writeFileSync(join(src, 'tokenizer.json'), '{}');
    writeFileSync(join(src, 'special_tokens_map.json'), '{}');
    // one process holding every rank: tensors are gathered one at a time
    const gathered: number[] = [];
    const ranks = {
      params: () => params.map((p, index) => ({ ...p, index, shardOffset: 0, shardLength: numel(p.shape) })),
      holdsEveryShard: () => true,
      gather: (i: number, what: string) => (gathered.push(i), what === 'params' ? values(i) : values(i).map((x) => -x)),
    } as unknown as RankSet;
    const save = join(root, 'saved');
    const grads = join(root, 'grads.safetensors');
    expect(await saveGathered(ranks, undefined, { params: save, grads }, { outDir: out, weights: src })).to.equal(true);
    expect(gathered).to.deep.equal([...params.keys(), ...params.keys()]);
    const config = JSON.parse(readFileSync(join(save, 'config.json'), 'utf8'));
    expect(config).to.deep.include({ architectures: ['LlamaForCausalLM'], bos_token_id: 1, eos_token_id: 2, max_position_embeddings: 4096, num_key_value_heads: 2, tie_word_embeddings: false });
    expect(readdirSync(save).sort()).to.deep.equal(['config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json']);
    const back = await loadAsRanks(save, params, 2, out);
    for (const [i] of params.entries()) expect(back.whole[i]).to.deep.equal(values(i));
    const g = await SafetensorsReader.open(grads);
    expect([...(await g.readF32(params[3].name, 0, 2))]).to.deep.equal([-30000, -30001]);
    await g.close();
    expect(existsSync(`${save}.tmp-${process.pid}`)).to.equal(false);
  });

  it('refuses a folder save of a GPT-style model before gathering anything', async () => {
    const gptOut = writeOutDir(join(root, 'out', 'tiny-gpt'), tinyGpt);
    let gathered = 0;
    const ranks = { params: () => [], holdsEveryShard: () => true, gather: () => (gathered++, new Float32Array(0)) } as unknown as RankSet;
    mkdirSync(join(root, 'keep'));
    expect(await userError(saveGathered(ranks, undefined, { params: join(root, 'keep') }, { outDir: gptOut }))).to.match(/the model \(tiny-gpt\) is not a Llama model/);
    expect(gathered).to.equal(0);
  });
});
