// A compiled model against a Hugging Face config.json. `modelFacts` reads what a compiled out
// dir says about the model, from schedule.json alone (sizes, parameter names, and the
// architecture: ops, rope, norm eps, tying; schedule/architecture.ts); `parseLlamaConfig` reads
// a config.json the way transformers' LlamaConfig does (its defaults, both the
// rope_theta/rope_scaling and the rope_parameters spelling);
// `checkHfConfig` compares the two before any weight is read; `llamaConfigFor` writes the
// config.json of a saved folder. All pure but `readModelFacts`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errors } from '../errors.js';
import type { Architecture, LlamaRopeScaling } from '../schedule/architecture.js';
import { readScheduleJson } from '../schedule/export-json.js';

export type { LlamaRopeScaling } from '../schedule/architecture.js';

/** The sizes a Llama config.json fixes, by the model's size names. */
export interface LlamaSizes {
  V: number;
  D: number;
  L: number;
  Hq: number;
  Hkv: number;
  Dh: number;
  F: number;
}

export interface ModelFacts {
  model: string;
  /** every size of the compiled model, S included */
  sizes: Readonly<Record<string, number>>;
  /** distinct values over every rope op */
  ropeThetas: number[];
  rotaryDims: number[];
  ropeScalings: (LlamaRopeScaling | undefined)[];
  /** distinct eps over every rmsnorm op */
  eps: number[];
  /** ops the forward graph uses */
  ops: string[];
  /** parameter names as the schedule's table holds them (`{i}` for the layer) */
  paramNames: string[];
  /** no lm_head.weight: the LM head is the embedding */
  tied: boolean;
}

/** A Llama config.json, read with transformers' defaults. */
export interface HfLlama {
  sizes: LlamaSizes;
  ropeTheta: number;
  ropeScaling?: LlamaRopeScaling;
  eps: number;
  tied: boolean;
  maxPositions?: number;
}

/** What a compiled model says about itself: its schedule's sizes, parameter names and architecture. */
export function modelFacts(model: string, sizes: Readonly<Record<string, number>>, arch: Architecture, paramNames: readonly string[]): ModelFacts {
  return {
    model,
    sizes,
    ropeThetas: [...arch.ropeThetas],
    rotaryDims: [...arch.rotaryDims],
    ropeScalings: arch.ropeScalings.map((x) => x ?? undefined),
    eps: [...arch.normEps],
    ops: [...arch.ops],
    paramNames: [...paramNames],
    tied: arch.tied,
  };
}

/** The facts of a compiled out dir (out/<model>/), from its schedule.json alone. */
export function readModelFacts(outDir: string): ModelFacts {
  const path = join(outDir, 'schedule.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw errors.cannotReadOut(path, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
  }
  const sched = readScheduleJson(text, path);
  if (!sched.architecture) throw errors.outFileInvalid(path, 'it has no architecture (the model\'s ops, RoPE and norm settings)');
  if (!sched.params) throw errors.outFileInvalid(path, 'it has no parameter table');
  return modelFacts(sched.model, sched.sizes, sched.architecture, sched.params.tensors.map((t) => t.name));
}

const LLAMA_PARAM = /^(model\.embed_tokens\.weight|model\.norm\.weight|lm_head\.weight|model\.layers\.\{i\}\.(input_layernorm|post_attention_layernorm|self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight)$/;

/** Why the model cannot be a transformers LlamaForCausalLM, or undefined when it can. */
export function llamaProblem(f: ModelFacts): string | undefined {
  const stranger = f.paramNames.find((n) => !LLAMA_PARAM.test(n));
  if (stranger) return `it has ${stranger.replace('{i}', '0')}`;
  for (const op of ['layernorm', 'gelu']) if (f.ops.includes(op)) return `it uses ${op}`;
  if (!f.ops.includes('rmsnorm') || !f.ops.includes('swiglu') || f.ropeThetas.length === 0) return 'it lacks RMSNorm, SwiGLU or RoPE';
  if (f.rotaryDims.some((d) => d !== f.sizes.Dh)) return `it rotates ${f.rotaryDims.join('/')} of ${f.sizes.Dh} head dims`;
  if (f.ropeThetas.length > 1 || f.ropeScalings.length > 1) return 'its layers use different RoPE settings';
  if (f.eps.length > 1) return `its norms use different eps (${f.eps.join(', ')})`;
  return undefined;
}

// ---- config.json ----

const LLAMA_ARCH = 'LlamaForCausalLM';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads a Llama config.json; other architectures and rope scalings are refused by name. */
export function parseLlamaConfig(c: Json, where: string, tool?: string): HfLlama {
  const by = tool ? ` by ${tool}` : '';
  const archs = c.architectures;
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || archs.length === 0) throw errors.hfBadConfig(where, `architectures is ${JSON.stringify(archs)}, not a list of class names`);
    const other = archs.find((a) => a !== LLAMA_ARCH);
    if (other !== undefined) throw errors.hfUnsupported(where, `architecture ${other} is not supported${by}`, LLAMA_ARCH);
  }
  if (c.model_type !== undefined && c.model_type !== 'llama') throw errors.hfUnsupported(where, `model_type ${JSON.stringify(c.model_type)} is not supported${by}`, '"llama"');
  if (archs == null && c.model_type === undefined) throw errors.hfBadConfig(where, 'names no architecture (neither architectures nor model_type)');
  // settings of LlamaConfig that change the math of a layer beyond what the Llama blocks do
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') throw errors.hfUnsupported(where, `hidden_act ${JSON.stringify(c.hidden_act)} is not supported${by}`, '"silu"');
  for (const k of ['attention_bias', 'mlp_bias']) if (c[k] === true) throw errors.hfUnsupported(where, `${k} true is not supported${by}`, 'false');

  const int = (k: string, fallback?: number): number => {
    const v = c[k] ?? fallback;
    if (v === undefined) throw errors.hfBadConfig(where, `${k} is missing`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw errors.hfBadConfig(where, `${k} is ${JSON.stringify(v)}, not a positive whole number`);
    return v;
  };
  const num = (k: string, v: unknown, fallback: number): number => {
    const x = v ?? fallback;
    if (typeof x !== 'number' || !(x > 0)) throw errors.hfBadConfig(where, `${k} is ${JSON.stringify(x)}, not a positive number`);
    return x;
  };
  const D = int('hidden_size');
  const Hq = int('num_attention_heads');
  const sizes: LlamaSizes = {
    V: int('vocab_size'),
    D,
    L: int('num_hidden_layers'),
    Hq,
    Hkv: int('num_key_value_heads', Hq),
    Dh: int('head_dim', Math.floor(D / Hq)),
    F: int('intermediate_size'),
  };
  if (c.tie_word_embeddings !== undefined && typeof c.tie_word_embeddings !== 'boolean') throw errors.hfBadConfig(where, `tie_word_embeddings is ${JSON.stringify(c.tie_word_embeddings)}, not true or false`);
  const rope = readRope(c, where);
  return {
    sizes,
    ...rope,
    // LlamaConfig's defaults: rms_norm_eps 1e-6, tie_word_embeddings false
    eps: num('rms_norm_eps', c.rms_norm_eps, 1e-6),
    tied: c.tie_word_embeddings === true,
    ...(typeof c.max_position_embeddings === 'number' ? { maxPositions: c.max_position_embeddings } : {}),
  };
}

/** rope_theta and rope_scaling, or the newer rope_parameters that holds both. */
function readRope(c: Json, where: string): { ropeTheta: number; ropeScaling?: LlamaRopeScaling } {
  const params = c.rope_parameters;
  if (params !== undefined && params !== null && !isObject(params)) throw errors.hfBadConfig(where, `rope_parameters is ${JSON.stringify(params)}, not an object`);
  const field = isObject(params) ? 'rope_parameters' : 'rope_scaling';
  const scaling = isObject(params) ? params : c.rope_scaling;
  const theta = (isObject(params) ? params.rope_theta : undefined) ?? c.rope_theta ?? 10000;
  if (typeof theta !== 'number' || !(theta > 0)) throw errors.hfBadConfig(where, `rope_theta is ${JSON.stringify(theta)}, not a positive number`);
  if (scaling === undefined || scaling === null) return { ropeTheta: theta };
  if (!isObject(scaling)) throw errors.hfBadConfig(where, `${field} is ${JSON.stringify(scaling)}, not an object`);
  const type = scaling.rope_type ?? scaling.type ?? 'default';
  if (type === 'default') return { ropeTheta: theta };
  if (type !== 'llama3') throw errors.hfUnsupported(where, `${field} type ${typeof type === 'string' ? `'${type}'` : JSON.stringify(type)} is not implemented`, 'llama3');
  const get = (k: string): number => {
    const v = scaling[k];
    if (typeof v !== 'number' || !(v > 0)) throw errors.hfBadConfig(where, `${field}.${k} is ${JSON.stringify(v)}, not a positive number`);
    return v;
  };
  return {
    ropeTheta: theta,
    ropeScaling: {
      type: 'llama3',
      factor: get('factor'),
      lowFreqFactor: get('low_freq_factor'),
      highFreqFactor: get('high_freq_factor'),
      originalMaxPositions: get('original_max_position_embeddings'),
    },
  };
}

const SIZE_FIELDS: [keyof LlamaSizes, string][] = [
  ['V', 'vocab_size'],
  ['D', 'hidden_size'],
  ['L', 'num_hidden_layers'],
  ['Hq', 'num_attention_heads'],
  ['Hkv', 'num_key_value_heads'],
  ['Dh', 'head_dim'],
  ['F', 'intermediate_size'],
];

/** Small numbers as configs write them: 1e-5, not 0.00001. */
const show = (v: unknown) => (typeof v === 'number' && v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential() : String(v));

/** Equal up to the rounding of a number printed in JSON. */
const same = (a: number, b: number) => a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));

const SCALING_FIELDS: [Exclude<keyof LlamaRopeScaling, 'type'>, string][] = [
  ['factor', 'factor'],
  ['lowFreqFactor', 'low_freq_factor'],
  ['highFreqFactor', 'high_freq_factor'],
  ['originalMaxPositions', 'original_max_position_embeddings'],
];

/**
 * Throws one UserError naming the first config.json field that disagrees with the model (or
 * that the compiler cannot do); returns the parsed config when all agree. `folder` is the path
 * the advice's `fpdtc import-hf` takes.
 */
export function checkHfConfig(f: ModelFacts, config: Json, where: string, folder: string): HfLlama {
  const hf = parseLlamaConfig(config, where);
  const problem = llamaProblem(f);
  if (problem) throw errors.hfModelNotLlama(folder, f.model, problem);
  const mismatch = (field: string, theirs: unknown, ours: string) => errors.hfMismatch(where, field, show(theirs), f.model, ours, folder);
  for (const [sym, field] of SIZE_FIELDS) if (hf.sizes[sym] !== f.sizes[sym]) throw mismatch(field, hf.sizes[sym], `${sym} ${f.sizes[sym]}`);
  const theta = f.ropeThetas[0];
  if (!same(hf.ropeTheta, theta)) throw mismatch('rope_theta', hf.ropeTheta, `ropeTheta ${theta}`);
  const ours = f.ropeScalings[0];
  const theirs = hf.ropeScaling;
  if (!theirs && ours) throw mismatch('rope_scaling', 'none', `ropeScaling llama3 (factor ${ours.factor})`);
  if (theirs && !ours) throw mismatch('rope_scaling', `llama3 (factor ${theirs.factor})`, 'no ropeScaling');
  if (theirs && ours) {
    for (const [k, field] of SCALING_FIELDS) if (!same(theirs[k], ours[k])) throw mismatch(`rope_scaling.${field}`, theirs[k], `ropeScaling.${k} ${ours[k]}`);
  }
  if (!same(hf.eps, f.eps[0])) throw mismatch('rms_norm_eps', hf.eps, `eps ${show(f.eps[0])}`);
  if (hf.tied !== f.tied) throw mismatch('tie_word_embeddings', hf.tied, f.tied ? 'tiedEmbeddings true (no lm_head.weight)' : 'tiedEmbeddings false (its own lm_head.weight)');
  return hf;
}

/** Fields of the original config.json that a saved folder keeps (token ids, context length). */
const KEPT_FIELDS = ['bos_token_id', 'eos_token_id', 'pad_token_id', 'max_position_embeddings'];

/**
 * The config.json of a folder saved from a Llama-family model, which transformers loads as
 * LlamaForCausalLM. `original` is the config.json the weights came from, if any.
 */
export function llamaConfigFor(f: ModelFacts, original?: Json): Json {
  const s = f.sizes;
  const scaling = f.ropeScalings[0];
  const kept = Object.fromEntries(KEPT_FIELDS.filter((k) => original?.[k] !== undefined && original[k] !== null).map((k) => [k, original![k]]));
  return {
    architectures: [LLAMA_ARCH],
    model_type: 'llama',
    vocab_size: s.V,
    hidden_size: s.D,
    intermediate_size: s.F,
    num_hidden_layers: s.L,
    num_attention_heads: s.Hq,
    num_key_value_heads: s.Hkv,
    head_dim: s.Dh,
    hidden_act: 'silu',
    max_position_embeddings: s.S,
    rms_norm_eps: f.eps[0],
    rope_theta: f.ropeThetas[0],
    rope_scaling: scaling
      ? {
          rope_type: 'llama3',
          factor: scaling.factor,
          low_freq_factor: scaling.lowFreqFactor,
          high_freq_factor: scaling.highFreqFactor,
          original_max_position_embeddings: scaling.originalMaxPositions,
        }
      : null,
    tie_word_embeddings: f.tied,
    attention_bias: false,
    attention_dropout: 0,
    mlp_bias: false,
    initializer_range: 0.02,
    // the saved values are the fp32 master weights
    torch_dtype: 'float32',
    dtype: 'float32',
    ...kept,
  };
}
