// config.json against the compiled model: every field that can disagree says so in one line,
// every architecture or rope scaling the compiler lacks is refused by name, and the config.json
// of a saved folder says what the model is.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../compiler/errors.js';
import { checkHfConfig, llamaConfigFor, llamaProblem, modelFacts, parseLlamaConfig, readModelFacts, type LlamaRopeScaling, type ModelFacts } from '../../compiler/train/hf-config.js';
import tinyGpt from '../../models/tiny-gpt.js';
import tinyLlama from '../../models/tiny-llama.js';
import { architectureOf, type GraphShape } from '../../compiler/schedule/architecture.js';
import { readScheduleJson, scheduleFromJson, stringifySchedule } from '../../compiler/schedule/export-json.js';
import { docOf, factsOf, writeOutDir, tiedLlama as tied, tinyLlamaConfig as base } from './hf-fixtures.js';

const LLAMA31: LlamaRopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };

/** The graph of tiny-llama with a scaling attr on every rope op, as the DSL writes it. */
function scaledFacts(): ModelFacts {
  const { sizes, doc, names } = docOf(tinyLlama);
  const withScaling = (r: GraphShape['main']): GraphShape['main'] => ({
    nodes: r.nodes.map((n) => ({ ...n, attrs: n.op === 'rope' ? { ...n.attrs, scaling: LLAMA31 } : n.attrs, ...(n.body ? { body: withScaling(n.body) } : {}) })),
  });
  return modelFacts('tiny-llama31', sizes, architectureOf({ ...doc, main: withScaling(doc.main) }), names);
}

const WHERE = 'cfg/config.json';
const lineOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(UserError);
    expect((e as UserError).exitCode).to.equal(1);
    return (e as UserError).line();
  }
  throw new Error('expected a UserError');
};
const check = (facts: ModelFacts, config: Record<string, unknown>) => () => checkHfConfig(facts, config, WHERE, 'cfg');
const advice = 'use a model file made from this folder (fpdtc import-hf cfg) or other weights';

describe('config.json against the compiled model', () => {
  const llama = factsOf(tinyLlama);

  it('reads the facts of a model: sizes, rope, eps, tying, Llama or not', () => {
    expect(llama).to.deep.include({ model: 'tiny-llama', ropeThetas: [10000], rotaryDims: [4], ropeScalings: [undefined], eps: [1e-5], tied: false });
    expect(llama.sizes).to.include({ V: 64, D: 48, L: 2, Hq: 12, Hkv: 2, Dh: 4, F: 64, S: 96 });
    expect(llamaProblem(llama)).to.equal(undefined);
    expect(factsOf(tied).tied).to.equal(true);
    expect(scaledFacts().ropeScalings).to.deep.equal([LLAMA31]);
    expect(llamaProblem(factsOf(tinyGpt))).to.equal('it has model.layers.0.input_layernorm.bias');
  });

  it('reads the facts from an out dir\'s schedule.json alone, and names what is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fpdt-facts-'));
    try {
      expect(lineOf(() => readModelFacts(dir))).to.equal(`error: cannot read ${dir}/schedule.json (ENOENT); pass the folder 'fpdtc compile' wrote (out/<model>)`);
      writeOutDir(dir, tinyLlama);
      expect(readModelFacts(dir)).to.deep.equal(llama);
      // a schedule written without the architecture (made by hand) says so
      writeFileSync(join(dir, 'schedule.json'), stringifySchedule(scheduleFromJson(readScheduleJson(readFileSync(join(dir, 'schedule.json'), 'utf8')))));
      const line = lineOf(() => readModelFacts(dir));
      expect(line, line).to.match(/schedule\.json: error: it has no architecture \(the model's ops, RoPE and norm settings\); compile the model again/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('accepts a matching config, with transformers defaults for what it leaves out', () => {
    expect(checkHfConfig(llama, base(), WHERE, 'cfg')).to.deep.include({ ropeTheta: 10000, eps: 1e-5, tied: false });
    const { head_dim: _h, tie_word_embeddings: _t, ...implicit } = base();
    expect(checkHfConfig(llama, implicit, WHERE, 'cfg').sizes.Dh).to.equal(4);
    const { rope_theta: _r, ...noTheta } = base();
    expect(parseLlamaConfig(noTheta, WHERE).ropeTheta).to.equal(10000);
    const { rms_norm_eps: _e, num_key_value_heads: _k, ...bare } = base();
    expect(parseLlamaConfig(bare, WHERE)).to.deep.include({ eps: 1e-6 });
    expect(parseLlamaConfig(bare, WHERE).sizes.Hkv).to.equal(12);
    expect(parseLlamaConfig({ ...base(), head_dim: null, rope_scaling: null }, WHERE).sizes.Dh).to.equal(4);
  });

  const mismatches: [string, Record<string, unknown>, string][] = [
    ['vocab_size', { vocab_size: 128 }, 'vocab_size is 128, the model (tiny-llama) has V 64'],
    ['hidden_size', { hidden_size: 96 }, 'hidden_size is 96, the model (tiny-llama) has D 48'],
    ['num_hidden_layers', { num_hidden_layers: 4 }, 'num_hidden_layers is 4, the model (tiny-llama) has L 2'],
    ['num_attention_heads', { num_attention_heads: 6, head_dim: 4 }, 'num_attention_heads is 6, the model (tiny-llama) has Hq 12'],
    ['num_key_value_heads', { num_key_value_heads: 8 }, 'num_key_value_heads is 8, the model (tiny-llama) has Hkv 2'],
    ['num_key_value_heads left out (defaults to the query heads)', { num_key_value_heads: undefined }, 'num_key_value_heads is 12, the model (tiny-llama) has Hkv 2'],
    ['head_dim', { head_dim: 8 }, 'head_dim is 8, the model (tiny-llama) has Dh 4'],
    ['intermediate_size', { intermediate_size: 128 }, 'intermediate_size is 128, the model (tiny-llama) has F 64'],
    ['rope_theta', { rope_theta: 500000 }, 'rope_theta is 500000, the model (tiny-llama) has ropeTheta 10000'],
    ['rope_theta in rope_parameters', { rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 500000 } }, 'rope_theta is 500000, the model (tiny-llama) has ropeTheta 10000'],
    [
      'llama3 rope scaling the model lacks',
      { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } },
      'rope_scaling is llama3 (factor 8), the model (tiny-llama) has no ropeScaling',
    ],
    ['rms_norm_eps', { rms_norm_eps: 1e-6 }, 'rms_norm_eps is 1e-6, the model (tiny-llama) has eps 1e-5'],
    ['tie_word_embeddings', { tie_word_embeddings: true }, 'tie_word_embeddings is true, the model (tiny-llama) has tiedEmbeddings false (its own lm_head.weight)'],
  ];
  for (const [what, change, message] of mismatches)
    it(`a different ${what}: one line naming the field, both values and what to do`, () => {
      expect(lineOf(check(llama, { ...base(), ...change }))).to.equal(`error: ${WHERE}: ${message}; ${advice}`);
    });

  it('compares llama3 scaling field by field, in either spelling, and misses it when the config has none', () => {
    const scaled = scaledFacts();
    const hf = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    expect(checkHfConfig(scaled, { ...base(), rope_scaling: hf }, WHERE, 'cfg').ropeScaling).to.deep.equal(LLAMA31);
    // newer transformers: rope_parameters holds theta and scaling together; the old `type` key
    const { rope_theta: _t, ...noTheta } = base();
    expect(checkHfConfig(scaled, { ...noTheta, rope_parameters: { ...hf, rope_theta: 10000 } }, WHERE, 'cfg').ropeScaling).to.deep.equal(LLAMA31);
    const { rope_type: _r, ...oldKey } = hf;
    expect(checkHfConfig(scaled, { ...base(), rope_scaling: { ...oldKey, type: 'llama3' } }, WHERE, 'cfg').ropeScaling).to.deep.equal(LLAMA31);
    expect(lineOf(check(scaled, { ...base(), rope_scaling: { ...hf, factor: 32 } }))).to.equal(`error: ${WHERE}: rope_scaling.factor is 32, the model (tiny-llama31) has ropeScaling.factor 8; ${advice}`);
    expect(lineOf(check(scaled, { ...base(), rope_scaling: { ...hf, original_max_position_embeddings: 4096 } }))).to.match(/rope_scaling\.original_max_position_embeddings is 4096, the model \(tiny-llama31\) has ropeScaling\.originalMaxPositions 8192/);
    expect(lineOf(check(scaled, base()))).to.equal(`error: ${WHERE}: rope_scaling is none, the model (tiny-llama31) has ropeScaling llama3 (factor 8); ${advice}`);
    expect(lineOf(check(scaled, { ...base(), rope_scaling: { ...hf, low_freq_factor: 'one' } }))).to.match(/rope_scaling\.low_freq_factor is "one", not a positive number/);
  });

  it('a tied model against an untied config, and the other way round', () => {
    expect(checkHfConfig(factsOf(tied), { ...base(), tie_word_embeddings: true }, WHERE, 'cfg').tied).to.equal(true);
    expect(lineOf(check(factsOf(tied), base()))).to.equal(`error: ${WHERE}: tie_word_embeddings is false, the model (tiny-tied) has tiedEmbeddings true (no lm_head.weight); ${advice}`);
  });

  const refusals: [string, Record<string, unknown>, string][] = [
    ['a yarn rope_scaling', { rope_scaling: { rope_type: 'yarn', factor: 4 } }, "rope_scaling type 'yarn' is not implemented; supported: llama3"],
    ['a dynamic rope_scaling (old type key)', { rope_scaling: { type: 'dynamic', factor: 2 } }, "rope_scaling type 'dynamic' is not implemented; supported: llama3"],
    ['a linear rope_parameters', { rope_parameters: { rope_type: 'linear', rope_theta: 10000, factor: 2 } }, "rope_parameters type 'linear' is not implemented; supported: llama3"],
    ['another architecture', { architectures: ['GPTNeoXForCausalLM'], model_type: 'gpt_neox' }, 'architecture GPTNeoXForCausalLM is not supported; supported: LlamaForCausalLM'],
    ['another model_type', { architectures: undefined, model_type: 'mistral' }, 'model_type "mistral" is not supported; supported: "llama"'],
    ['no architecture at all', { architectures: undefined, model_type: undefined }, 'names no architecture (neither architectures nor model_type); fix config.json or re-download the folder'],
    ['another activation', { hidden_act: 'gelu' }, 'hidden_act "gelu" is not supported; supported: "silu"'],
    ['attention biases', { attention_bias: true }, 'attention_bias true is not supported; supported: false'],
    ['a missing size', { hidden_size: undefined }, 'hidden_size is missing; fix config.json or re-download the folder'],
  ];
  for (const [what, change, message] of refusals)
    it(`refuses ${what} by name`, () => {
      expect(lineOf(check(llama, { ...base(), ...change }))).to.equal(`error: ${WHERE}: ${message}`);
    });

  it('refuses to read a Llama folder into a model that is not Llama-family', () => {
    expect(lineOf(check(factsOf(tinyGpt), base()))).to.equal(
      'error: cfg: the model (tiny-gpt) is not a Llama model (it has model.layers.0.input_layernorm.bias), so it cannot be read from or written as a Hugging Face Llama folder; pass a path ending in .safetensors',
    );
  });

  it('writes a config.json for a saved folder, keeping the token ids and context length of the original', () => {
    const c = llamaConfigFor(llama);
    expect(c).to.deep.include({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      vocab_size: 64,
      hidden_size: 48,
      num_hidden_layers: 2,
      num_attention_heads: 12,
      num_key_value_heads: 2,
      head_dim: 4,
      intermediate_size: 64,
      hidden_act: 'silu',
      max_position_embeddings: 96,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      rope_scaling: null,
      tie_word_embeddings: false,
      attention_bias: false,
      mlp_bias: false,
      torch_dtype: 'float32',
      dtype: 'float32',
    });
    expect(c).to.not.have.any.keys('bos_token_id', 'eos_token_id');
    // what it writes, it reads back as the same model
    expect(checkHfConfig(llama, c, WHERE, 'cfg').sizes).to.deep.equal({ V: 64, D: 48, L: 2, Hq: 12, Hkv: 2, Dh: 4, F: 64 });
    const kept = llamaConfigFor(scaledFacts(), { ...base(), bos_token_id: 128000, eos_token_id: [128001, 128009], max_position_embeddings: 131072, pad_token_id: null });
    expect(kept).to.deep.include({ bos_token_id: 128000, eos_token_id: [128001, 128009], max_position_embeddings: 131072 });
    expect(kept).to.not.have.any.keys('pad_token_id');
    expect(kept.rope_scaling).to.deep.equal({ rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expect(checkHfConfig(scaledFacts(), kept, WHERE, 'cfg').ropeScaling).to.deep.equal(LLAMA31);
  });
});
