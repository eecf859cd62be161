// Checks what a model file says about itself (its sizes and its default run) right after it
// loads, so that a bad value is reported at its line in the file, by its field name, and not
// later as a flag the user never passed or as a plan that cannot be built. The type check
// cannot catch these: -48, 1.5, NaN and Infinity are all numbers.
import { formatSize, LIMITS, parseSize } from '../config.js';
import type { ModelDefinition } from '../dsl/index.js';
import { errors, isUserError } from '../errors.js';
import { DEVICE_NAMES } from '../schedule/devices.js';
import { locateField } from './field-location.js';
import { displayPath } from './resolve.js';

type Problem = { group: 'sizes' | 'train'; key: string; value: unknown; rule: string };

export async function validateModelDefinition(def: ModelDefinition, path: string): Promise<void> {
  const problem = firstProblem(def);
  if (!problem) return;
  const where = (await locateField(path, problem.group, problem.key)) ?? displayPath(path);
  throw errors.modelField(where, `${problem.group}.${problem.key}`, problem.value, problem.rule);
}

function firstProblem(def: ModelDefinition): Problem | undefined {
  const sizes = (def.sizes ?? {}) as Record<string, unknown>;
  for (const [key, value] of Object.entries(sizes)) {
    const rule = sizeRule(value);
    if (rule) return { group: 'sizes', key, value, rule };
  }
  const train = (def.train ?? {}) as Record<string, unknown>;
  const layers = typeof sizes.L === 'number' ? sizes.L : undefined;
  for (const [key, value] of Object.entries(train)) {
    if (value === undefined) continue;
    const check = Object.hasOwn(TRAIN_RULES, key) ? TRAIN_RULES[key] : undefined;
    const rule = check ? check(value, layers) : `not a setting of train; the settings are ${Object.keys(TRAIN_RULES).join(', ')}`;
    if (rule) return { group: 'train', key, value, rule };
  }
  return undefined;
}

function sizeRule(v: unknown): string | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) return 'a size must be a whole number of at least 1 (a count of features, heads, layers or tokens)';
  if (v > LIMITS.size) return `a size must be at most ${LIMITS.size}`;
  return undefined;
}

const wholeBetween = (min: number, max = Number.MAX_SAFE_INTEGER) => (v: unknown) =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? undefined : `must be a whole number from ${min} to ${max}`;

const oneOf = (...allowed: readonly unknown[]) => (v: unknown) =>
  allowed.includes(v) ? undefined : `must be ${allowed.map((a) => (typeof a === 'string' ? `'${a}'` : String(a))).join(' or ')}`;

/** A token count as `train` writes it: 65536, '64K' or '2M'. */
function tokens(what: string, max: number) {
  return (v: unknown): string | undefined => {
    if (typeof v !== 'number' && typeof v !== 'string') return `must be a whole number of tokens, or a string such as '64K' or '2M'`;
    let n: number;
    try {
      n = parseSize(v, what);
    } catch (e) {
      if (isUserError(e)) return `must be a whole number of tokens of at least 1, optionally with K or M (e.g. 65536, '64K', '2M')`;
      throw e;
    }
    return n > max ? `must be at most ${formatSize(max)} (${max}), the longest the planner supports` : undefined;
  };
}

type Rule = (v: unknown, layers: number | undefined) => string | undefined;

// Keyed by TrainDefaults' fields; a key not here is not a setting.
const TRAIN_RULES: Record<string, Rule> = {
  seq: tokens('seq', LIMITS.seq),
  sp: wholeBetween(1, LIMITS.ranks),
  dp: wholeBetween(1, LIMITS.ranks),
  chunk: (v) => (v === 'auto' ? undefined : tokens('chunk', LIMITS.seq)(v)),
  offload: oneOf(true, false),
  checkpoint: oneOf('off', 'gpu', 'host'),
  zero: oneOf(0, 3),
  fpdt: oneOf(true, false),
  device: (v) =>
    typeof v === 'string' && DEVICE_NAMES.includes(v.toLowerCase()) ? undefined : `unknown device; known: ${DEVICE_NAMES.join(', ')} (in any case)`,
  keepAttention: (v, layers) => {
    if (v === 'auto' || wholeBetween(0, layers ?? Number.MAX_SAFE_INTEGER)(v) === undefined) return undefined;
    return `must be 'auto' or a whole number of layers from 0 to ${layers ?? 'the layer count'}`;
  },
  optimizer: oneOf('gpu', 'host'),
  packed: oneOf(true, false),
  lr: (v) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? undefined : 'the learning rate must be a finite number of at least 0'),
  seed: wholeBetween(0),
};

