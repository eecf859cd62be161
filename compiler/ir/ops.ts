// The op catalog: for every op, its arity and how its output types follow from its
// inputs. The DSL uses it to build, the shape pass to re-infer and compare.
import { Dim } from './dim.js';
import type { Attrs, AttrValue, DType, TensorType } from './types.js';

export class ShapeError extends Error {}

type Infer = (ins: readonly TensorType[], attrs: Attrs, sizes: Readonly<Record<string, number>>) => TensorType[];

export interface OpInfo {
  /** number of inputs, or [min, max] */
  readonly arity: number | readonly [number, number];
  readonly infer: Infer;
  /** forward ops have a gradient rule in autodiff; backward ops do not */
  readonly kind: 'forward' | 'backward' | 'region' | 'optimizer' | 'comm';
}

const t = (dtype: DType, shape: readonly Dim[]): TensorType => ({ dtype, shape });
const fmt = (x: TensorType) => `${x.dtype}[${x.shape.join(', ')}]`;

function sameDim(a: Dim, b: Dim, what: string): void {
  if (!a.equals(b)) throw new ShapeError(`${what}: ${a} does not match ${b}`);
}
function rank(x: TensorType, r: number, what: string): void {
  if (x.shape.length !== r) throw new ShapeError(`${what} must have ${r} dimensions, got ${fmt(x)}`);
}
function sameShape(a: TensorType, b: TensorType, what: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => !d.equals(b.shape[i])))
    throw new ShapeError(`${what}: ${fmt(a)} and ${fmt(b)} differ`);
}
const last = (x: TensorType) => x.shape[x.shape.length - 1];
const withLast = (x: TensorType, d: Dim, dtype = x.dtype) => t(dtype, [...x.shape.slice(0, -1), d]);

const same: Infer = ([x]) => [t(x.dtype, x.shape)];

/** What is wrong with a rope op's `scaling` attr, or undefined when it is absent or well-formed. */
export function ropeScalingProblem(s: AttrValue | undefined): string | undefined {
  if (s === undefined) return undefined;
  if (typeof s !== 'object' || Array.isArray(s)) return `expected an object { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositions }, got ${JSON.stringify(s)}`;
  const o = s as unknown as Record<string, unknown>;
  if (o.type !== 'llama3') return `type ${JSON.stringify(o.type)} is not supported; the one scaling is 'llama3'`;
  for (const k of ['factor', 'lowFreqFactor', 'highFreqFactor', 'originalMaxPositions'])
    if (typeof o[k] !== 'number' || !Number.isFinite(o[k])) return `${k} must be a finite number, got ${JSON.stringify(o[k])}`;
  const { factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: orig } = o as unknown as Record<string, number>;
  if (!(factor >= 1)) return `factor ${factor} must be at least 1`;
  if (!(low > 0)) return `lowFreqFactor ${low} must be positive`;
  if (!(high > low)) return `highFreqFactor ${high} must be greater than lowFreqFactor ${low}`;
  if (!(orig > 0)) return `originalMaxPositions ${orig} must be positive`;
  return undefined;
}

function ropeAttrs(a: Attrs): void {
  const rd = a.rotaryDim as number;
  if (!(rd > 0 && rd % 2 === 0)) throw new ShapeError(`rope: rotary dim must be even and positive, got ${rd}`);
  const problem = ropeScalingProblem(a.scaling);
  if (problem) throw new ShapeError(`rope scaling: ${problem}`);
}

export const OPS: Readonly<Record<string, OpInfo>> = {
  // ---- forward ----
  embedding: {
    arity: 2, kind: 'forward',
    infer: ([tok, table]) => {
      rank(tok, 1, 'embedding tokens');
      rank(table, 2, 'embedding table');
      if (tok.dtype !== 'int32') throw new ShapeError(`embedding tokens must be int32, got ${tok.dtype}`);
      return [t(table.dtype, [tok.shape[0], table.shape[1]])];
    },
  },
  linear: {
    arity: [2, 3], kind: 'forward',
    infer: ([x, w, b]) => {
      rank(w, 2, 'linear weight [out, in]');
      sameDim(last(x), w.shape[1], 'linear: input features vs weight in-features');
      if (b) sameDim(b.shape[0], w.shape[0], 'linear: bias vs weight out-features');
      return [withLast(x, w.shape[0])];
    },
  },
  rmsnorm: {
    arity: 2, kind: 'forward',
    infer: ([x, w]) => {
      sameDim(last(x), w.shape[0], 'rmsnorm: features vs weight');
      return [t(x.dtype, x.shape)];
    },
  },
  layernorm: {
    arity: 3, kind: 'forward',
    infer: ([x, w, b]) => {
      sameDim(last(x), w.shape[0], 'layernorm: features vs weight');
      sameDim(last(x), b.shape[0], 'layernorm: features vs bias');
      return [t(x.dtype, x.shape)];
    },
  },
  view: {
    arity: 1, kind: 'forward',
    infer: ([x], a) => {
      const shape = (a.shape as readonly string[]).map((s) => Dim.parse(s));
      const n0 = x.shape.reduce((p, d) => p.mul(d), Dim.of(1));
      const n1 = shape.reduce((p, d) => p.mul(d), Dim.of(1));
      if (!n0.equals(n1)) throw new ShapeError(`view: ${fmt(x)} has ${n0} elements, [${shape.join(', ')}] has ${n1}`);
      return [t(x.dtype, shape)];
    },
  },
  rope: {
    arity: 1, kind: 'forward',
    infer: ([x], a) => {
      rank(x, 3, 'rope input [tokens, heads, head_dim]');
      ropeAttrs(a);
      return [t(x.dtype, x.shape)];
    },
  },
  attention: {
    arity: 3, kind: 'forward',
    infer: ([q, k, v], _a, sizes) => {
      rank(q, 3, 'attention q [tokens, heads, head_dim]');
      rank(k, 3, 'attention k');
      sameShape(k, v, 'attention k vs v');
      sameDim(q.shape[0], k.shape[0], 'attention: q tokens vs k tokens');
      sameDim(q.shape[2], k.shape[2], 'attention: q head_dim vs k head_dim');
      const hq = q.shape[1], hk = k.shape[1];
      const groups = hq.eval(sizes) / hk.eval(sizes);
      if (!Number.isInteger(groups)) throw new ShapeError(`attention: ${hq} query heads are not a multiple of ${hk} kv heads`);
      return [t(q.dtype, q.shape), t('fp32', [hq, q.shape[0]])];
    },
  },
  swiglu: {
    arity: 2, kind: 'forward',
    infer: ([g, u]) => {
      sameShape(g, u, 'swiglu gate vs up');
      return [t(g.dtype, g.shape)];
    },
  },
  gelu: { arity: 1, kind: 'forward', infer: same },
  add: {
    arity: 2, kind: 'forward',
    infer: ([a, b]) => {
      sameShape(a, b, 'add');
      return [t(a.dtype, a.shape)];
    },
  },
  cross_entropy: {
    arity: 2, kind: 'forward',
    infer: ([logits, labels]) => {
      rank(logits, 2, 'cross_entropy logits [tokens, vocab]');
      rank(labels, 1, 'cross_entropy labels');
      sameDim(logits.shape[0], labels.shape[0], 'cross_entropy: logits tokens vs labels');
      return [t('fp32', [])];
    },
  },

  // ---- backward (emitted by autodiff) ----
  embedding_bwd: { arity: 2, kind: 'backward', infer: ([dy, tok], a) => [t('fp32', [Dim.parse(a.vocab as string), last(dy)])] },
  linear_dx: { arity: 2, kind: 'backward', infer: ([dy, w]) => [withLast(dy, w.shape[1])] },
  linear_dw: { arity: 2, kind: 'backward', infer: ([dy, x]) => [t('fp32', [last(dy), last(x)])] },
  linear_db: { arity: 1, kind: 'backward', infer: ([dy]) => [t('fp32', [last(dy)])] },
  rmsnorm_bwd: { arity: 3, kind: 'backward', infer: ([dy, x, w]) => [t(x.dtype, x.shape), t('fp32', w.shape)] },
  layernorm_bwd: { arity: 3, kind: 'backward', infer: ([dy, x, w]) => [t(x.dtype, x.shape), t('fp32', w.shape), t('fp32', w.shape)] },
  rope_bwd: {
    arity: 1, kind: 'backward',
    infer: ([dy], a) => {
      ropeAttrs(a);
      return [t(dy.dtype, dy.shape)];
    },
  },
  attention_bwd: {
    arity: 6, kind: 'backward',
    infer: ([dout, q, k, v]) => [t(q.dtype, q.shape), t(k.dtype, k.shape), t(v.dtype, v.shape)],
  },
  swiglu_bwd: { arity: 3, kind: 'backward', infer: ([dy, g, u]) => [t(g.dtype, g.shape), t(u.dtype, u.shape)] },
  gelu_bwd: { arity: 2, kind: 'backward', infer: ([dy, x]) => [t(x.dtype, x.shape)] },
  cross_entropy_bwd: { arity: 3, kind: 'backward', infer: ([dl, logits]) => [t(logits.dtype, logits.shape)] },
  grad_add: { arity: 2, kind: 'backward', infer: ([a]) => [t(a.dtype, a.shape)] },
  ones: { arity: 0, kind: 'backward', infer: () => [t('fp32', [])] },

  // ---- communication (inserted by the shard pass; identity on values, change the layout) ----
  /** Ulysses all-to-all: [tokens/P, heads] per rank -> [tokens, heads/P] (scatter heads, gather sequence) */
  seq_to_heads: { arity: 1, kind: 'comm', infer: same },
  /** the reverse all-to-all; for replicated kv heads it sums the replicas' gradients */
  heads_to_seq: { arity: 1, kind: 'comm', infer: same },

  // ---- optimizer ----
  adamw: { arity: 4, kind: 'optimizer', infer: ([p, g, m, v]) => [t(p.dtype, p.shape), t(m.dtype, m.shape), t(v.dtype, v.shape)] },

  // ---- regions: types come from the body ----
  repeat: { arity: [1, 1000], kind: 'region', infer: () => [] },
  repeat_bwd: { arity: [1, 1000], kind: 'region', infer: () => [] },
};

export function opInfo(op: string): OpInfo {
  const info = OPS[op];
  if (!info) throw new ShapeError(`unknown op '${op}'`);
  return info;
}

export function inferTypes(op: string, ins: readonly TensorType[], attrs: Attrs, sizes: Readonly<Record<string, number>>): TensorType[] {
  const info = opInfo(op);
  const [lo, hi] = typeof info.arity === 'number' ? [info.arity, info.arity] : info.arity;
  if (ins.length < lo || ins.length > hi) throw new ShapeError(`${op} takes ${lo === hi ? lo : `${lo} to ${hi}`} inputs, got ${ins.length}`);
  return info.infer(ins, attrs, sizes);
}
