// What each op of the catalog (schedule/ops.ts) that a rank runs on its own does, in float64: a
// pure function from the values it reads (and, for accumulating outputs, the values its outputs
// hold) to the values it writes, both by operand name. The math is the reference's (cpu-*.ts);
// this file only maps the instruction's operands and attributes onto it. Collectives are
// executor-collectives.ts's table.
import type { RopeScaling } from '../ir/types.js';
import { byName, operandNames, type LocalOp, type NamedReads, type NamedWrites, type WriteName } from '../schedule/ops.js';
import type { Affine, Instr } from '../schedule/types.js';
import { evalAff } from '../schedule/types.js';
import * as M from './cpu-math.js';

/** An instruction as a rule sees it. */
interface InstrCall {
  readonly instr: Instr;
  readonly env: Readonly<Record<string, number>>;
}

export interface OpCall<K extends LocalOp> extends InstrCall {
  readonly instr: Instr & { readonly op: K };
  /** the values it reads, by operand name */
  readonly ins: NamedReads<K, Float64Array>;
  /** the current value of a write (for outputs that accumulate) */
  current(name: WriteName<K>): Float64Array;
  /** AdamW's step number, 1-based */
  readonly step: number;
  /** the step's learning rate when the run sets one (Program.setLearningRate); else the instruction's */
  readonly lr?: number;
  /** the clipping factor AdamW scales the gradients by (default clipScale; tests break it on purpose) */
  readonly clip?: ClipScale;
}

/** The factor of clipping by the global norm: (sum of squares of all gradients, maximum norm) -> scale. */
export type ClipScale = (sqnorm: number | undefined, maxNorm: number) => number;

/** The values an instruction writes, every write by name. */
type Outputs<K extends LocalOp> = { readonly [N in keyof NamedWrites<K, Float64Array>]-?: Float64Array };
type Rule<K extends LocalOp> = (c: OpCall<K>) => Outputs<K>;

const num = (c: InstrCall, k: string): number => {
  const x = c.instr.attrs[k];
  if (typeof x !== 'number') throw new Error(`executor: ${c.instr.op} ${c.instr.id} needs a numeric attribute '${k}'`);
  return x;
};
const arg = (c: InstrCall, k: string): number => {
  const a: Affine | undefined = c.instr.args?.[k];
  if (!a) throw new Error(`executor: ${c.instr.op} ${c.instr.id} needs the argument '${k}'`);
  return evalAff(a, c.env);
};
const ints = (x: Float64Array): Int32Array => Int32Array.from(x);
/** Outputs of an instruction that read ids or positions nothing wrote (NaN): NaN, not a lucky number. */
const unwritten = <K extends LocalOp>(c: OpCall<K>, ...xs: (Float64Array | undefined)[]): Outputs<K> | undefined =>
  xs.some((x) => x?.some(Number.isNaN)) ? (byName(c.instr, 'writes', c.instr.writes.map((w) => new Float64Array(w.len).fill(NaN))) as Outputs<K>) : undefined;
/** The length of a write. */
const len = <K extends LocalOp>(c: OpCall<K>, name: WriteName<K>) => c.instr.writes[operandNames(c.instr, 'writes').indexOf(name)].len;

/** Adds `x` into a copy of the current value of a write. */
function accumulate<K extends LocalOp>(c: OpCall<K>, name: WriteName<K>, x: Float64Array): Float64Array {
  const cur = c.current(name);
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
 * identity). A packed block (lower/packed.ts) reads its query rows' and key rows' document ids
 * (qDocs, kvDocs).
 */
function blockGeom(c: InstrCall & { readonly ins: { readonly qDocs?: Float64Array; readonly kvDocs?: Float64Array } }): BlockGeom {
  const hq = num(c, 'hq');
  const group = num(c, 'group');
  const base = arg(c, 'qHeadBase');
  const causal = c.instr.attrs.causal === true;
  const { qDocs, kvDocs } = c.ins;
  const docs = qDocs && kvDocs ? { qDoc: ints(qDocs), kDoc: ints(kvDocs) } : {};
  return {
    block: { lq: num(c, 'lq'), lk: num(c, 'lk'), hq, hkv: hq, d: num(c, 'd'), qPos: 0, kPos: 0, causal, ...docs },
    hkv: num(c, 'hkv'),
    map: (h) => kvHeadOf(h, base, group),
  };
}

const attnFwdBlock: Rule<'attn_fwd_block'> = (c) => {
  const torn = unwritten(c, c.ins.qDocs, c.ins.kvDocs);
  if (torn) return torn;
  const { block: a, hkv, map } = blockGeom(c);
  const { q, k, v } = c.ins;
  const { o, lse } = M.attentionBlockFwd(q, expandKv(k, a.lk, a.hq, hkv, a.d, map), expandKv(v, a.lk, a.hq, hkv, a.d, map), a);
  const oAcc = c.current('oAcc');
  const lAcc = c.current('lseAcc');
  M.mergeAttention(oAcc, lAcc, o, lse, a.lq, a.hq, a.d);
  return { oAcc, lseAcc: lAcc };
};

const attnBwdBlock: Rule<'attn_bwd_block'> = (c) => {
  const torn = unwritten(c, c.ins.qDocs, c.ins.kvDocs);
  if (torn) return torn;
  const { block: a, hkv, map } = blockGeom(c);
  const { q, k, v, do: dout, lse, delta } = c.ins;
  const dq = c.current('dqAcc');
  const dkE = new Float64Array(a.lk * a.hq * a.d);
  const dvE = new Float64Array(a.lk * a.hq * a.d);
  const kE = expandKv(k, a.lk, a.hq, hkv, a.d, map);
  const vE = expandKv(v, a.lk, a.hq, hkv, a.d, map);
  // o is only needed when delta is not given
  M.attentionBlockBwd(q, kE, vE, new Float64Array(0), lse, dout, dq, dkE, dvE, { ...a, delta });
  const dk = c.current('dkAcc');
  const dv = c.current('dvAcc');
  foldKv(dkE, dk, a.lk, a.hq, hkv, a.d, map);
  foldKv(dvE, dv, a.lk, a.hq, hkv, a.d, map);
  return { dqAcc: dq, dkAcc: dk, dvAcc: dv };
};

/** Lowering writes a rope node's llama3 scaling as `llama3Scaling: [factor, low, high, originalMaxPositions]`. */
function ropeScaling(c: InstrCall): RopeScaling | undefined {
  const x = c.instr.attrs.llama3Scaling;
  if (x === undefined) return undefined;
  if (!Array.isArray(x) || x.length !== 4) throw new Error(`executor: ${c.instr.op} ${c.instr.id}: llama3Scaling must be 4 numbers, got ${JSON.stringify(x)}`);
  const [factor, lowFreqFactor, highFreqFactor, originalMaxPositions] = x as readonly number[];
  return { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositions };
}

/** Contiguous positions from `pos0`, or, packed, each row's position read from `positions`. */
function rope(c: InstrCall, x: Float64Array, positionsIn: Float64Array | undefined, bwd: boolean): Float64Array {
  const f = bwd ? M.ropeBwd : M.rope;
  const positions = c.instr.attrs.packed === true ? ints(positionsIn!) : arg(c, 'pos0');
  return f(x, num(c, 'rows'), num(c, 'heads'), num(c, 'headDim'), num(c, 'rotaryDim'), num(c, 'theta'), positions, ropeScaling(c));
}

/** One AdamW step on fp32 master weights; the bf16 parameters become a copy of them. */
const adamw: Rule<'adamw'> = (c) => {
  const grad = clipped(c.ins.grad, c.ins.sqnorm?.[0], num(c, 'maxGradNorm'), c.clip ?? clipScale);
  const master = c.current('master');
  const m = c.current('m');
  const v = c.current('v');
  M.adamwStep(master, grad, m, v, {
    lr: c.lr ?? num(c, 'lr'),
    step: c.step,
    beta1: num(c, 'beta1'),
    beta2: num(c, 'beta2'),
    eps: num(c, 'eps'),
    weightDecay: num(c, 'weightDecay'),
  });
  return { master, m, v, param: master.slice() };
};

const RULES: { readonly [K in LocalOp]: Rule<K> } = {
  fill: (c) => ({ dst: new Float64Array(len(c, 'dst')).fill(num(c, 'value')) }),
  copy: (c) => ({ dst: c.ins.src.slice() }),
  embedding: (c) => ({ y: M.embeddingFwd(ints(c.ins.tokens), c.ins.table, num(c, 'dim')) }),
  embedding_bwd: (c) => ({ dtable: M.embeddingBwd(c.ins.dy, ints(c.ins.tokens), len(c, 'dtable') / num(c, 'dim'), num(c, 'dim'), c.current('dtable')) }),
  linear: (c) => ({ y: M.linearFwd(c.ins.x, c.ins.w, c.instr.attrs.bias === true ? c.ins.b : undefined, num(c, 'rows'), num(c, 'in'), num(c, 'out')) }),
  linear_dx: (c) => ({ dx: M.linearDx(c.ins.dy, c.ins.w, num(c, 'rows'), num(c, 'in'), num(c, 'out')) }),
  linear_dx_add: (c) => ({ dx: accumulate(c, 'dx', M.linearDx(c.ins.dy, c.ins.w, num(c, 'rows'), num(c, 'in'), num(c, 'out'))) }),
  linear_dw: (c) => ({ dw: M.linearDw(c.ins.dy, c.ins.x, num(c, 'rows'), num(c, 'in'), num(c, 'out'), c.current('dw')) }),
  linear_db: (c) => ({ db: M.linearDb(c.ins.dy, num(c, 'rows'), num(c, 'out'), c.current('db')) }),
  rmsnorm: (c) => ({ y: M.rmsnormFwd(c.ins.x, c.ins.w, num(c, 'rows'), num(c, 'dim'), num(c, 'eps')) }),
  layernorm: (c) => ({ y: M.layernormFwd(c.ins.x, c.ins.w, c.ins.b, num(c, 'rows'), num(c, 'dim'), num(c, 'eps')) }),
  rmsnorm_bwd: (c) => M.rmsnormBwd(c.ins.dy, c.ins.x, c.ins.w, num(c, 'rows'), num(c, 'dim'), num(c, 'eps'), c.current('dw')),
  layernorm_bwd: (c) => M.layernormBwd(c.ins.dy, c.ins.x, c.ins.w, num(c, 'rows'), num(c, 'dim'), num(c, 'eps'), c.current('dw'), c.current('db')),
  rope: (c) => unwritten(c, c.ins.positions) ?? { y: rope(c, c.ins.x, c.ins.positions, false) },
  rope_bwd: (c) => unwritten(c, c.ins.positions) ?? { dx: rope(c, c.ins.dy, c.ins.positions, true) },
  swiglu: (c) => ({ y: M.swigluFwd(c.ins.gate, c.ins.up) }),
  gelu: (c) => ({ y: M.geluFwd(c.ins.x) }),
  add: (c) => ({ y: M.addFwd(c.ins.a, c.ins.b) }),
  swiglu_bwd: (c) => {
    const { dg, du } = M.swigluBwd(c.ins.dy, c.ins.gate, c.ins.up);
    return { dgate: dg, dup: du };
  },
  gelu_bwd: (c) => ({ dx: M.geluBwd(c.ins.dy, c.ins.x) }),
  cross_entropy: (c) => ({ loss: accumulate(c, 'loss', Float64Array.of(M.crossEntropyFwd(c.ins.logits, ints(c.ins.labels), num(c, 'rows'), num(c, 'vocab'), c.ins.nvalid[0]))) }),
  cross_entropy_bwd: (c) => ({ dlogits: M.crossEntropyBwd(c.ins.dloss[0], c.ins.logits, ints(c.ins.labels), num(c, 'rows'), num(c, 'vocab'), c.ins.nvalid[0]) }),
  attn_init: (c) => ({ oAcc: new Float64Array(len(c, 'oAcc')), lseAcc: new Float64Array(len(c, 'lseAcc')).fill(-Infinity) }),
  attn_fwd_block: attnFwdBlock,
  attn_finalize: (c) => ({ o: c.ins.oAcc.slice(), lse: c.ins.lseAcc.slice() }),
  attn_bwd_prep: (c) => ({ delta: M.attentionDelta(c.ins.o, c.ins.do, num(c, 'rows'), num(c, 'heads'), num(c, 'd')) }),
  attn_bwd_block: attnBwdBlock,
  attn_bwd_finalize: (c) => ({ dq: c.ins.dqAcc.slice(), dk: c.ins.dkAcc.slice(), dv: c.ins.dvAcc.slice() }),
  adamw,
  grad_sumsq: (c) => ({ sqnorm: Float64Array.of(c.ins.sqnorm[0] + c.ins.grad.reduce((a, x) => a + x * x, 0)) }),
  // a micro step's reduced gradient added to the shard's sum so far
  grad_accumulate: (c) => ({ into: c.ins.into.map((x, i) => x + c.ins.part[i]) }),
};

/**
 * Runs one instruction a rank runs on its own: `ins` are the values of its reads in order,
 * `current(k)` the value write k holds; returns the values of its writes in order.
 */
export function runOp(instr: Instr, env: Readonly<Record<string, number>>, ins: readonly Float64Array[], current: (k: number) => Float64Array, optimizer: { readonly step: number; readonly lr?: number; readonly clip?: ClipScale }): Float64Array[] {
  const rule = RULES[instr.op as LocalOp] as Rule<LocalOp> | undefined;
  if (!rule) throw new Error(`executor: ${instr.op} (${instr.id}) runs across ranks, not on one`);
  const writes = operandNames(instr, 'writes');
  const call = { instr, env, step: optimizer.step, lr: optimizer.lr, clip: optimizer.clip, ins: byName(instr, 'reads', ins), current: (name: string) => current(writes.indexOf(name)) } as unknown as OpCall<LocalOp>;
  const out = rule(call) as Readonly<Record<string, Float64Array>>;
  return writes.map((name) => {
    const x = out[name];
    if (!x) throw new Error(`executor: ${instr.op} ${instr.id} gave no value for its write '${name}'`);
    return x;
  });
}

/** torch.nn.utils.clip_grad_norm_: gradients times max / (norm + 1e-6) when that is below 1. */
export function clipScale(sqnorm: number | undefined, maxNorm: number): number {
  if (!(maxNorm > 0) || sqnorm === undefined) return 1;
  return Math.min(1, maxNorm / (Math.sqrt(sqnorm) + 1e-6));
}

function clipped(g: Float64Array, sqnorm: number | undefined, maxNorm: number, clip: ClipScale): Float64Array {
  const k = clip(sqnorm, maxNorm);
  return k === 1 ? g : g.map((x) => x * k);
}
