// What each compute or copy instruction of a schedule does, in float64: a pure function from
// the values it reads (and, for accumulating outputs, the values its outputs hold) to the
// values it writes. The math is the reference's (cpu-*.ts); this file only maps the
// instruction's operands and attributes onto it.
import type { RopeScaling } from '../ir/types.js';
import type { Affine, Instr } from '../schedule/types.js';
import { evalAff } from '../schedule/types.js';
import * as M from './cpu-math.js';

export interface OpCall {
  readonly instr: Instr;
  readonly env: Readonly<Record<string, number>>;
  /** values of `instr.reads`, in order */
  readonly ins: readonly Float64Array[];
  /** current value of write k (for outputs that accumulate) */
  current(k: number): Float64Array;
}

type Rule = (c: OpCall) => Float64Array[];

const num = (c: OpCall, k: string): number => {
  const x = c.instr.attrs[k];
  if (typeof x !== 'number') throw new Error(`executor: ${c.instr.op} ${c.instr.id} needs a numeric attribute '${k}'`);
  return x;
};
const arg = (c: OpCall, k: string): number => {
  const a: Affine | undefined = c.instr.args?.[k];
  if (!a) throw new Error(`executor: ${c.instr.op} ${c.instr.id} needs the argument '${k}'`);
  return evalAff(a, c.env);
};
const ints = (x: Float64Array): Int32Array => Int32Array.from(x);
/** Outputs of an instruction that read ids or positions nothing wrote (NaN): NaN, not a lucky number. */
const unwritten = (c: OpCall, ...xs: Float64Array[]): Float64Array[] | undefined =>
  xs.some((x) => x.some(Number.isNaN)) ? c.instr.writes.map((w) => new Float64Array(w.len).fill(NaN)) : undefined;
/** A packed block's (lower/packed.ts) two last operands: the document ids of its query rows and key rows. */
const blockDocs = (c: OpCall): Float64Array[] => (c.instr.attrs.packed === true ? c.ins.slice(-2) : []);
const len = (c: OpCall, k: number) => c.instr.writes[k].len;

/** Adds `x` into a copy of the current value of write k. */
function accumulate(c: OpCall, k: number, x: Float64Array): Float64Array {
  const cur = c.current(k);
  for (let i = 0; i < cur.length; i++) cur[i] += x[i];
  return cur;
}

/** Maps local q head h to its local kv head (GQA with a rank's heads starting at `qHeadBase`). */
function kvHeadOf(h: number, qHeadBase: number, group: number): number {
  return Math.floor((qHeadBase + h) / group) - Math.floor(qHeadBase / group);
}

/** [rows, hkv, d] -> [rows, hq, d]: each q head gets its own copy of its kv head. */
function expandKv(x: Float64Array, rows: number, hq: number, hkv: number, d: number, map: (h: number) => number): Float64Array {
  const out = new Float64Array(rows * hq * d);
  for (let t = 0; t < rows; t++)
    for (let h = 0; h < hq; h++) out.set(x.subarray((t * hkv + map(h)) * d, (t * hkv + map(h) + 1) * d), (t * hq + h) * d);
  return out;
}

/** The inverse of expandKv for gradients: sums the copies back into their kv head. */
function foldKv(x: Float64Array, into: Float64Array, rows: number, hq: number, hkv: number, d: number, map: (h: number) => number): void {
  for (let t = 0; t < rows; t++)
    for (let h = 0; h < hq; h++) {
      const src = (t * hq + h) * d;
      const dst = (t * hkv + map(h)) * d;
      for (let e = 0; e < d; e++) into[dst + e] += x[src + e];
    }
}

interface BlockGeom {
  block: M.AttentionBlock;
  hkv: number;
  map: (h: number) => number;
}

/**
 * The block's shape with kv heads expanded to one per q head (so the reference's GQA rule is the
 * identity). A packed block (lower/packed.ts) reads its query rows' and key rows' document ids as
 * its two last operands.
 */
function blockGeom(c: OpCall): BlockGeom {
  const hq = num(c, 'hq');
  const group = num(c, 'group');
  const base = arg(c, 'qHeadBase');
  const causal = c.instr.attrs.causal === true;
  const [qDoc, kDoc] = blockDocs(c);
  const docs = qDoc ? { qDoc: ints(qDoc), kDoc: ints(kDoc) } : {};
  return {
    block: { lq: num(c, 'lq'), lk: num(c, 'lk'), hq, hkv: hq, d: num(c, 'd'), qPos: 0, kPos: 0, causal, ...docs },
    hkv: num(c, 'hkv'),
    map: (h) => kvHeadOf(h, base, group),
  };
}

const attnFwdBlock: Rule = (c) => {
  const torn = unwritten(c, ...blockDocs(c));
  if (torn) return torn;
  const { block: a, hkv, map } = blockGeom(c);
  const [q, k, v] = c.ins;
  const { o, lse } = M.attentionBlockFwd(q, expandKv(k, a.lk, a.hq, hkv, a.d, map), expandKv(v, a.lk, a.hq, hkv, a.d, map), a);
  const oAcc = c.current(0);
  const lAcc = c.current(1);
  M.mergeAttention(oAcc, lAcc, o, lse, a.lq, a.hq, a.d);
  return [oAcc, lAcc];
};

const attnBwdBlock: Rule = (c) => {
  const torn = unwritten(c, ...blockDocs(c));
  if (torn) return torn;
  const { block: a, hkv, map } = blockGeom(c);
  const [q, k, v, dout, lse, delta] = c.ins;
  const dq = c.current(0);
  const dkE = new Float64Array(a.lk * a.hq * a.d);
  const dvE = new Float64Array(a.lk * a.hq * a.d);
  const kE = expandKv(k, a.lk, a.hq, hkv, a.d, map);
  const vE = expandKv(v, a.lk, a.hq, hkv, a.d, map);
  // o is only needed when delta is not given
  M.attentionBlockBwd(q, kE, vE, new Float64Array(0), lse, dout, dq, dkE, dvE, { ...a, delta });
  const dk = c.current(1);
  const dv = c.current(2);
  foldKv(dkE, dk, a.lk, a.hq, hkv, a.d, map);
  foldKv(dvE, dv, a.lk, a.hq, hkv, a.d, map);
  return [dq, dk, dv];
};

/** Lowering writes a rope node's llama3 scaling as `llama3Scaling: [factor, low, high, originalMaxPositions]`. */
function ropeScaling(c: OpCall): RopeScaling | undefined {
  const x = c.instr.attrs.llama3Scaling;
  if (x === undefined) return undefined;
  if (!Array.isArray(x) || x.length !== 4) throw new Error(`executor: ${c.instr.op} ${c.instr.id}: llama3Scaling must be 4 numbers, got ${JSON.stringify(x)}`);
  const [factor, lowFreqFactor, highFreqFactor, originalMaxPositions] = x as readonly number[];
  return { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositions };
}

/** Contiguous positions from `pos0`, or, packed, each row's position read as the second operand. */
function rope(c: OpCall, bwd: boolean): Float64Array[] {
  const f = bwd ? M.ropeBwd : M.rope;
  if (c.instr.attrs.packed === true) {
    const torn = unwritten(c, c.ins[1]);
    if (torn) return torn;
  }
  const positions = c.instr.attrs.packed === true ? ints(c.ins[1]) : arg(c, 'pos0');
  return [f(c.ins[0], num(c, 'rows'), num(c, 'heads'), num(c, 'headDim'), num(c, 'rotaryDim'), num(c, 'theta'), positions, ropeScaling(c))];
}

const RULES: Readonly<Record<string, Rule>> = {
  fill: (c) => [new Float64Array(len(c, 0)).fill(num(c, 'value'))],
  copy: (c) => [c.ins[0].slice()],
  embedding: (c) => [M.embeddingFwd(ints(c.ins[0]), c.ins[1], num(c, 'dim'))],
  embedding_bwd: (c) => [M.embeddingBwd(c.ins[0], ints(c.ins[1]), len(c, 0) / num(c, 'dim'), num(c, 'dim'), c.current(0))],
  linear: (c) => [M.linearFwd(c.ins[0], c.ins[1], c.instr.attrs.bias === true ? c.ins[2] : undefined, num(c, 'rows'), num(c, 'in'), num(c, 'out'))],
  linear_dx: (c) => [M.linearDx(c.ins[0], c.ins[1], num(c, 'rows'), num(c, 'in'), num(c, 'out'))],
  linear_dw: (c) => [M.linearDw(c.ins[0], c.ins[1], num(c, 'rows'), num(c, 'in'), num(c, 'out'), c.current(0))],
  linear_db: (c) => [M.linearDb(c.ins[0], num(c, 'rows'), num(c, 'out'), c.current(0))],
  rmsnorm: (c) => [M.rmsnormFwd(c.ins[0], c.ins[1], num(c, 'rows'), num(c, 'dim'), num(c, 'eps'))],
  layernorm: (c) => [M.layernormFwd(c.ins[0], c.ins[1], c.ins[2], num(c, 'rows'), num(c, 'dim'), num(c, 'eps'))],
  rmsnorm_bwd: (c) => {
    const { dx, dw } = M.rmsnormBwd(c.ins[0], c.ins[1], c.ins[2], num(c, 'rows'), num(c, 'dim'), num(c, 'eps'), c.current(1));
    return [dx, dw];
  },
  layernorm_bwd: (c) => {
    const { dx, dw, db } = M.layernormBwd(c.ins[0], c.ins[1], c.ins[2], num(c, 'rows'), num(c, 'dim'), num(c, 'eps'), c.current(1), c.current(2));
    return [dx, dw, db];
  },
  rope: (c) => rope(c, false),
  rope_bwd: (c) => rope(c, true),
  swiglu: (c) => [M.swigluFwd(c.ins[0], c.ins[1])],
  gelu: (c) => [M.geluFwd(c.ins[0])],
  add: (c) => [M.addFwd(c.ins[0], c.ins[1])],
  swiglu_bwd: (c) => {
    const { dg, du } = M.swigluBwd(c.ins[0], c.ins[1], c.ins[2]);
    return [dg, du];
  },
  gelu_bwd: (c) => [M.geluBwd(c.ins[0], c.ins[1])],
  cross_entropy: (c) => [accumulate(c, 0, Float64Array.of(M.crossEntropyFwd(c.ins[0], ints(c.ins[1]), num(c, 'rows'), num(c, 'vocab'), c.ins[2][0])))],
  cross_entropy_bwd: (c) => [M.crossEntropyBwd(c.ins[0][0], c.ins[1], ints(c.ins[2]), num(c, 'rows'), num(c, 'vocab'), c.ins[3][0])],
  attn_init: (c) => [new Float64Array(len(c, 0)), new Float64Array(len(c, 1)).fill(-Infinity)],
  attn_fwd_block: attnFwdBlock,
  attn_finalize: (c) => [c.ins[0].slice(), c.ins[1].slice()],
  attn_bwd_prep: (c) => [M.attentionDelta(c.ins[1], c.ins[0], num(c, 'rows'), num(c, 'heads'), num(c, 'd'))],
  attn_bwd_block: attnBwdBlock,
  attn_bwd_finalize: (c) => [c.ins[0].slice(), c.ins[1].slice(), c.ins[2].slice()],
  grad_sumsq: (c) => [Float64Array.of(c.ins[1][0] + c.ins[0].reduce((a, x) => a + x * x, 0))],
  // a micro step's reduced gradient (first operand) added to the shard's sum so far (second)
  grad_accumulate: (c) => [c.ins[1].map((x, i) => x + c.ins[0][i])],
};

/** Runs one non-collective, non-optimizer instruction. */
export function runOp(c: OpCall): Float64Array[] {
  const rule = RULES[c.instr.op];
  if (!rule) throw new Error(`executor: no float64 rule for instruction ${c.instr.op} (${c.instr.id})`);
  const out = rule(c);
  if (out.length !== c.instr.writes.length) throw new Error(`executor: ${c.instr.op} gave ${out.length} outputs for ${c.instr.writes.length} writes`);
  return out;
}

/** One AdamW step on fp32 master weights; the bf16 parameters become a copy of them. */
export function runAdamW(c: OpCall, step: number): Float64Array[] {
  const [raw, sqnorm] = c.ins;
  const grad = clipped(raw, sqnorm?.[0], num(c, 'maxGradNorm'));
  const master = c.current(0);
  const m = c.current(1);
  const v = c.current(2);
  M.adamwStep(master, grad, m, v, {
    lr: num(c, 'lr'),
    step,
    beta1: num(c, 'beta1'),
    beta2: num(c, 'beta2'),
    eps: num(c, 'eps'),
    weightDecay: num(c, 'weightDecay'),
  });
  return [master, m, v, master.slice()];
}

/** torch.nn.utils.clip_grad_norm_: gradients times max / (norm + 1e-6) when that is below 1. */
export function clipScale(sqnorm: number | undefined, maxNorm: number): number {
  if (!(maxNorm > 0) || sqnorm === undefined) return 1;
  return Math.min(1, maxNorm / (Math.sqrt(sqnorm) + 1e-6));
}

function clipped(g: Float64Array, sqnorm: number | undefined, maxNorm: number): Float64Array {
  const k = clipScale(sqnorm, maxNorm);
  return k === 1 ? g : g.map((x) => x * k);
}

export const hasRule = (op: string): boolean => op in RULES || op === 'adamw';
