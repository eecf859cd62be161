// `fpdtc import-hf`: the model file written from a config.json compiles, says what the config
// says (llama3 scaling only when the config has it), refuses other architectures by name and
// does not overwrite a file unless told to.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importHf, llamaModelFile, modelNameFor } from '../../compiler/cli/import-hf.js';
import { compile } from '../../compiler/compile.js';
import { UserError } from '../../compiler/errors.js';
import { checkHfConfig, parseLlamaConfig, readModelFacts } from '../../compiler/train/hf-config.js';
import { runCli } from './run-cli.js';
import { tinyLlamaConfig } from '../train/hf-fixtures.js';

// tiny-llama's sizes with a context length and Llama 3's theta (the generated file must carry both)
const tinyConfig = (extra: Record<string, unknown> = {}) => ({ ...tinyLlamaConfig(), rope_theta: 500000.0, max_position_embeddings: 96, ...extra });
const LLAMA3 = { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };

describe('fpdtc import-hf', () => {
  let root: string;
  const folder = (name: string, config: Record<string, unknown>) => {
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  };
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'fpdt-import-'));
    // model files outside the repository are ES modules only inside a "type": "module" package
    writeFileSync(join(root, 'package.json'), '{"type": "module"}');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('writes a model file that compiles to the config it came from (llama3 scaling, untied)', async () => {
    const dir = folder('Tiny-Llama-3.1', tinyConfig({ rope_scaling: LLAMA3 }));
    const { path, name } = await importHf(dir, { out: join(root, 'models', 'tiny31.ts'), sp: '2' });
    expect(name).to.equal('tiny31');
    const text = readFileSync(path, 'utf8');
    expect(text).to.include("sizes: { V: 64, D: 48, L: 2, Hq: 12, Hkv: 2, Dh: 4, F: 64 },");
    expect(text).to.include("train: { seq: 96, sp: 2, chunk: 'auto',");
    expect(text).to.include("layer: (x, l) => llamaLayer(x, l, { ropeTheta: 500000, eps: 1e-5, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } }),");
    expect(text).to.include('tiedEmbeddings: false,');
    // evaluated without the ts-morph type check (2 s); the round trip below catches an option the DSL ignores
    const r = await compile(path, {}, { outDir: join(root, 'out'), typeCheck: false });
    expect(r.graph.name).to.equal('tiny31');
    // the compiled model takes that folder's config.json as it is
    const hf = checkHfConfig(readModelFacts(join(root, 'out', 'tiny31')), JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), join(dir, 'config.json'), dir);
    expect(hf.ropeScaling?.factor).to.equal(8);
  });

  it('writes no ropeScaling without scaling, ties embeddings when the config does, takes --seq', () => {
    const hf = parseLlamaConfig(tinyConfig({ tie_word_embeddings: true, rope_scaling: null }), 'c');
    const text = llamaModelFile(hf, { name: 'tiny', source: 'hf/tiny', dslImport: '../compiler/dsl/index.js', seq: 256 * 1024, sp: 1 });
    expect(text).to.not.include('ropeScaling');
    expect(text).to.include("import { causalLM, defineModel, llamaLayer } from '../compiler/dsl/index.js';");
    expect(text).to.include("train: { seq: '256K', sp: 1,");
    expect(text).to.include('tiedEmbeddings: true,');
    expect(text).to.include('layer: (x, l) => llamaLayer(x, l, { ropeTheta: 500000, eps: 1e-5 }),');
    expect(modelNameFor('/data/Meta-Llama-3.1-8B/')).to.equal('meta-llama-3.1-8b');
  });

  it('refuses another architecture by name, and an existing file without --force', async () => {
    const neox = folder('neox', { architectures: ['GPTNeoXForCausalLM'], model_type: 'gpt_neox', hidden_size: 64 });
    const r = runCli(['import-hf', neox]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal(`error: ${neox}/config.json: architecture GPTNeoXForCausalLM is not supported by import-hf; supported: LlamaForCausalLM\n`);

    const dir = folder('tiny', tinyConfig());
    const out = join(root, 'm.ts');
    writeFileSync(out, '// mine\n');
    try {
      await importHf(dir, { out });
      expect.fail('overwrote the file');
    } catch (e) {
      expect((e as UserError).line()).to.equal(`error: ${out} exists; pass --force to overwrite it, or another --out`);
    }
    expect(readFileSync(out, 'utf8')).to.equal('// mine\n');
    await importHf(dir, { out, force: true });
    expect(readFileSync(out, 'utf8')).to.include("name: 'm',");
    try {
      await importHf(join(root, 'nothing'), {});
      expect.fail('imported a folder without config.json');
    } catch (e) {
      expect((e as UserError).line()).to.equal(`error: ${root}/nothing: no config.json; pass a Hugging Face model folder`);
    }
  });
});
