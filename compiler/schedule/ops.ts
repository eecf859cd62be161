// The catalog of schedule ops: every op an instruction may name, registered once with the
// operands it reads and writes (by name, in the order `reads` and `writes` list them in the
// schedule and in schedule.json) and the attributes it carries. Each stage that does something
// per op keeps its own table keyed by `OpName` (the float64 rules of reference/executor-ops.ts,
// the host calls of codegen/host-ops.ts, the pricing of schedule/cost.ts), so the type checker
// names the table that misses an op; operands are read by name through `readsOf`/`writesOf`,
// and verify.ts checks that every instruction matches its entry (invariant 7).
//
// An operand written `{ name, if: 'packed' }` is there only when the instruction's attribute of
// that name is true (a packed block's document ids, a linear's bias); such operands come last.
// Attributes: 'number' and 'string' are always there; 'flag' (a boolean) and 'span' (which ranks
// a collective spans, with dp groups) may be left out; 'numbers?' is an optional number list.

export type AttrKind = 'number' | 'string' | 'flag' | 'span' | 'numbers?';

/** An operand, or one present only when a boolean attribute is true. */
export type Operand = string | { readonly name: string; readonly if: string };

export interface OpSpec {
  readonly reads: readonly Operand[];
  readonly writes: readonly Operand[];
  readonly attrs: Readonly<Record<string, AttrKind>>;
  /** affine arguments (chunk positions, head offsets): always there, or only when an attribute is true or false */
  readonly args?: readonly (string | { readonly name: string; readonly if?: string; readonly unless?: string })[];
  /** writes whose old value the op adds into (their accumulators are cleared before) */
  readonly accumulates?: readonly string[];
  /** runs across ranks on the comm stream (one read `src`, one write `dst`; every rank reaches it) */
  readonly collective?: true;
}

const DOCS = [
  { name: 'qDocs', if: 'packed' },
  { name: 'kvDocs', if: 'packed' },
] as const;
const COLLECTIVE = { reads: ['src'], writes: ['dst'], attrs: { ranks: 'number', n: 'number', span: 'span' }, collective: true } as const;
const ROPE_ATTRS = { rows: 'number', heads: 'number', headDim: 'number', rotaryDim: 'number', theta: 'number', packed: 'flag', llama3Scaling: 'numbers?' } as const;
const ROPE_ARGS = [{ name: 'pos0', unless: 'packed' }] as const;
const BLOCK_ATTRS = { lq: 'number', lk: 'number', hq: 'number', hkv: 'number', d: 'number', group: 'number', causal: 'flag', packed: 'flag' } as const;
const NORM_ATTRS = { rows: 'number', dim: 'number', eps: 'number' } as const;
const LINEAR_ATTRS = { rows: 'number', in: 'number', out: 'number', bias: 'flag' } as const;

export const SCHEDULE_OPS = {
  // memory
  fill: { reads: [], writes: ['dst'], attrs: { value: 'number' } },
  copy: { reads: ['src'], writes: ['dst'], attrs: { dir: 'string' } },
  // collectives: all_gather sends its input, reduce_scatter keeps its output, all_reduce its whole window
  all_gather: COLLECTIVE,
  reduce_scatter: COLLECTIVE,
  all_reduce: COLLECTIVE,
  all_to_all: {
    reads: ['src'],
    writes: ['dst'],
    attrs: { dir: 'string', rows: 'number', ranks: 'number', heads: 'number', headDim: 'number', localHeads: 'number', group: 'number', qHeadsPerRank: 'number', span: 'span' },
    collective: true,
  },
  // token-wise ops on one chunk of rows (lower/tokenwise.ts): operands in the graph node's order
  embedding: { reads: ['tokens', 'table'], writes: ['y'], attrs: { rows: 'number', dim: 'number' } },
  embedding_bwd: { reads: ['dy', 'tokens'], writes: ['dtable'], attrs: { rows: 'number', dim: 'number' }, accumulates: ['dtable'] },
  linear: { reads: ['x', 'w', { name: 'b', if: 'bias' }], writes: ['y'], attrs: LINEAR_ATTRS },
  linear_dx: { reads: ['dy', 'w'], writes: ['dx'], attrs: LINEAR_ATTRS },
  // dx += dy · w: a sum of gradients whose other term an earlier instruction wrote into dx (lower/step.ts)
  linear_dx_add: { reads: ['dy', 'w'], writes: ['dx'], attrs: LINEAR_ATTRS, accumulates: ['dx'] },
  linear_dw: { reads: ['dy', 'x'], writes: ['dw'], attrs: LINEAR_ATTRS, accumulates: ['dw'] },
  linear_db: { reads: ['dy'], writes: ['db'], attrs: { rows: 'number', out: 'number' }, accumulates: ['db'] },
  rmsnorm: { reads: ['x', 'w'], writes: ['y'], attrs: NORM_ATTRS },
  layernorm: { reads: ['x', 'w', 'b'], writes: ['y'], attrs: NORM_ATTRS },
  rmsnorm_bwd: { reads: ['dy', 'x', 'w'], writes: ['dx', 'dw'], attrs: NORM_ATTRS, accumulates: ['dw'] },
  layernorm_bwd: { reads: ['dy', 'x', 'w'], writes: ['dx', 'dw', 'db'], attrs: NORM_ATTRS, accumulates: ['dw', 'db'] },
  // packed documents: each row's position inside its document instead of pos0 + row
  rope: { reads: ['x', { name: 'positions', if: 'packed' }], writes: ['y'], attrs: ROPE_ATTRS, args: ROPE_ARGS },
  rope_bwd: { reads: ['dy', { name: 'positions', if: 'packed' }], writes: ['dx'], attrs: ROPE_ATTRS, args: ROPE_ARGS },
  swiglu: { reads: ['gate', 'up'], writes: ['y'], attrs: { n: 'number' } },
  swiglu_bwd: { reads: ['dy', 'gate', 'up'], writes: ['dgate', 'dup'], attrs: { n: 'number' } },
  gelu: { reads: ['x'], writes: ['y'], attrs: { n: 'number' } },
  gelu_bwd: { reads: ['dy', 'x'], writes: ['dx'], attrs: { n: 'number' } },
  add: { reads: ['a', 'b'], writes: ['y'], attrs: { n: 'number' } },
  // the loss sums into `loss`, divided by the step's counted labels (`nvalid`)
  cross_entropy: { reads: ['logits', 'labels', 'nvalid'], writes: ['loss'], attrs: { rows: 'number', vocab: 'number' }, accumulates: ['loss'] },
  cross_entropy_bwd: { reads: ['dloss', 'logits', 'labels', 'nvalid'], writes: ['dlogits'], attrs: { rows: 'number', vocab: 'number' } },
  // FPDT attention (lower/attention.ts): blocks fold into fp32 accumulators, finalized per chunk
  attn_init: { reads: [], writes: ['oAcc', 'lseAcc'], attrs: {} },
  attn_fwd_block: { reads: ['q', 'k', 'v', ...DOCS], writes: ['oAcc', 'lseAcc'], attrs: BLOCK_ATTRS, args: ['qHeadBase'], accumulates: ['oAcc', 'lseAcc'] },
  attn_finalize: { reads: ['oAcc', 'lseAcc'], writes: ['o', 'lse'], attrs: { rows: 'number', heads: 'number', d: 'number' } },
  attn_bwd_prep: { reads: ['do', 'o'], writes: ['delta'], attrs: { rows: 'number', heads: 'number', d: 'number' } },
  attn_bwd_block: {
    reads: ['q', 'k', 'v', 'do', 'lse', 'delta', ...DOCS],
    writes: ['dqAcc', 'dkAcc', 'dvAcc'],
    attrs: BLOCK_ATTRS,
    args: ['qHeadBase'],
    accumulates: ['dqAcc', 'dkAcc', 'dvAcc'],
  },
  attn_bwd_finalize: { reads: ['dqAcc', 'dkAcc', 'dvAcc'], writes: ['dq', 'dk', 'dv'], attrs: { rows: 'number', hq: 'number', hkv: 'number', d: 'number' } },
  // the optimizer step: gradients, their summed squares (for clipping) -> fp32 states and the bf16 copy
  adamw: {
    reads: ['grad', 'sqnorm'],
    writes: ['master', 'm', 'v', 'param'],
    attrs: { n: 'number', lr: 'number', beta1: 'number', beta2: 'number', eps: 'number', weightDecay: 'number', maxGradNorm: 'number' },
  },
  grad_accumulate: { reads: ['part', 'into'], writes: ['into'], attrs: { n: 'number' } },
  grad_sumsq: { reads: ['grad', 'sqnorm'], writes: ['sqnorm'], attrs: {}, accumulates: ['sqnorm'] },
} as const satisfies Readonly<Record<string, OpSpec>>;

export type OpName = keyof typeof SCHEDULE_OPS;
export const OP_NAMES = Object.keys(SCHEDULE_OPS) as readonly OpName[];

export const isOpName = (op: string): op is OpName => Object.hasOwn(SCHEDULE_OPS, op);

/** The ops that run across ranks, and the others (each rank on its own). */
export type CollectiveOp = { [K in OpName]: (typeof SCHEDULE_OPS)[K] extends { readonly collective: true } ? K : never }[OpName];
export type LocalOp = Exclude<OpName, CollectiveOp>;
export const COLLECTIVE_OPS: ReadonlySet<string> = new Set(OP_NAMES.filter((o) => (SCHEDULE_OPS[o] as OpSpec).collective));

/** Narrows an instruction to one op, so that its operands are known by name. */
export const isOp = <K extends OpName, I extends { readonly op: string }>(i: I, op: K): i is I & { readonly op: K } => i.op === op;

export function opSpec(op: string): OpSpec {
  if (!isOpName(op)) throw new Error(`schedule op '${op}' is not in the catalog (schedule/ops.ts)`);
  return SCHEDULE_OPS[op];
}

type Spec<K extends OpName> = (typeof SCHEDULE_OPS)[K];
type Always<O> = O extends string ? O : never;
type Sometimes<O> = O extends { readonly name: infer N extends string } ? N : never;
type ReadOperand<K extends OpName> = Spec<K>['reads'][number];
type WriteOperand<K extends OpName> = Spec<K>['writes'][number];
export type ReadName<K extends OpName> = Always<ReadOperand<K>> | Sometimes<ReadOperand<K>>;
export type WriteName<K extends OpName> = Always<WriteOperand<K>> | Sometimes<WriteOperand<K>>;

/** Values by operand name: always-present operands required, conditional ones optional. */
export type Named<O, T> = { readonly [N in Always<O>]: T } & { readonly [N in Sometimes<O>]?: T };
export type NamedReads<K extends OpName, T> = Named<ReadOperand<K>, T>;
export type NamedWrites<K extends OpName, T> = Named<WriteOperand<K>, T>;

/** The fields of an instruction the catalog needs (its op and attributes). */
interface OpOf {
  readonly op: string;
  readonly attrs: Readonly<Record<string, unknown>>;
}

const nameOf = (o: Operand): string => (typeof o === 'string' ? o : o.name);
const present = (o: Operand, attrs: OpOf['attrs']): boolean => typeof o === 'string' || attrs[o.if] === true;

/** The names of the operands an instruction has on one side, in order (conditional ones by its attributes). */
export function operandNames(i: OpOf, side: 'reads' | 'writes'): string[] {
  return opSpec(i.op)[side].filter((o) => present(o, i.attrs)).map(nameOf);
}

/** `values` (an instruction's reads or writes, or what they hold) by operand name. */
export function byName<T>(i: OpOf, side: 'reads' | 'writes', values: readonly T[]): Record<string, T> {
  const names = operandNames(i, side);
  if (names.length !== values.length) throw new Error(`${i.op} ${(i as { id?: string }).id ?? ''}: ${values.length} ${side}, but the catalog names ${names.length} (${names.join(', ')})`);
  const out: Record<string, T> = {};
  names.forEach((n, k) => (out[n] = values[k]));
  return out;
}

/** An instruction's (or an unrolled instance's) reads by name. */
export const readsOf = <K extends OpName, T>(i: OpOf & { readonly op: K; readonly reads: readonly T[] }): NamedReads<K, T> =>
  byName(i, 'reads', i.reads) as NamedReads<K, T>;
export const writesOf = <K extends OpName, T>(i: OpOf & { readonly op: K; readonly writes: readonly T[] }): NamedWrites<K, T> =>
  byName(i, 'writes', i.writes) as NamedWrites<K, T>;

/** Named operands in the catalog's order, as an instruction lists them: the inverse of byName. */
export function inOrder<T>(op: OpName, attrs: OpOf['attrs'], side: 'reads' | 'writes', named: Readonly<Record<string, T | undefined>>): T[] {
  const spec = SCHEDULE_OPS[op] as OpSpec;
  const out: T[] = [];
  for (const o of spec[side]) {
    const x = named[nameOf(o)];
    if (present(o, attrs)) {
      if (x === undefined) throw new Error(`${op}: operand '${nameOf(o)}' (${side}) is missing`);
      out.push(x);
    } else if (x !== undefined) throw new Error(`${op}: operand '${nameOf(o)}' (${side}) is given but attribute '${(o as { if: string }).if}' is not true`);
  }
  for (const k of Object.keys(named)) if (named[k] !== undefined && !spec[side].some((o) => nameOf(o) === k)) throw new Error(`${op} has no operand '${k}' (${side})`);
  return out;
}

/** Why an instruction does not match its catalog entry (its op, operand counts, attributes, arguments), or undefined. */
export function opProblem(i: OpOf & { readonly reads: readonly unknown[]; readonly writes: readonly unknown[]; readonly args?: Readonly<Record<string, unknown>> }): string | undefined {
  if (!isOpName(i.op)) return `op '${i.op}' is not in the catalog`;
  const spec: OpSpec = SCHEDULE_OPS[i.op];
  for (const side of ['reads', 'writes'] as const) {
    const names = operandNames(i, side);
    if (names.length !== i[side].length) return `${i.op} has ${i[side].length} ${side}, the catalog ${names.length} (${names.join(', ') || 'none'})`;
  }
  for (const [k, kind] of Object.entries(spec.attrs)) {
    const x = i.attrs[k];
    const ok =
      kind === 'number' ? typeof x === 'number' :
      kind === 'string' ? typeof x === 'string' :
      kind === 'flag' ? x === undefined || typeof x === 'boolean' :
      kind === 'span' ? x === undefined || x === 'sp' || x === 'world' :
      x === undefined || (Array.isArray(x) && x.every((e) => typeof e === 'number'));
    if (!ok) return `${i.op} attribute '${k}' must be ${kind === 'span' ? "'sp' or 'world'" : kind.replace('?', '')}${kind === 'number' || kind === 'string' ? '' : ' or absent'}, got ${JSON.stringify(x)}`;
  }
  for (const a of spec.args ?? []) {
    const want = typeof a === 'string' ? true : a.if !== undefined ? i.attrs[a.if] === true : i.attrs[a.unless!] !== true;
    const name = typeof a === 'string' ? a : a.name;
    if (want && i.args?.[name] === undefined) return `${i.op} needs the argument '${name}'`;
  }
  return undefined;
}
