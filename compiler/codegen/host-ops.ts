// What each schedule instruction becomes in the host program: a table keyed by every op of the
// catalog (schedule/ops.ts) to the C calls (kernel launchers, fpdt_gemm_bf16, cudaMemcpyAsync)
// that do it on the instruction's stream. Operands are read by the catalog's names (`c.r.x`,
// `c.w.y`), never by position.
import { DTYPE_BYTES, type DType } from '../ir/types.js';
import { readsOf, writesOf, type NamedReads, type NamedWrites, type OpName } from '../schedule/ops.js';
import type { Instr, Ref } from '../schedule/types.js';
import { affineC, refBytes, refC, type Arenas } from './host-c.js';

/** What the program around an instruction gives its calls. */
export interface HostEnv {
  readonly ar: Arenas;
  /** model sizes (D, F, Hq, ...) */
  readonly sizes: Readonly<Record<string, number>>;
  /** ranks of the schedule; collectives are local copies only for 1 */
  readonly world: number;
  /** for cross_entropy_bwd: the loss window its forward twin sums into */
  readonly lossRef?: string;
}

/** An instruction in its program: what the helpers below need. */
interface InstrCtx extends HostEnv {
  readonly instr: Instr;
}

export interface OpCtx<K extends OpName> extends InstrCtx {
  readonly instr: Instr & { readonly op: K };
  /** its reads and writes by operand name */
  readonly r: NamedReads<K, Ref>;
  readonly w: NamedWrites<K, Ref>;
}

/** One C statement per call; each is wrapped in the status check by the caller. */
type Emit<K extends OpName> = (c: OpCtx<K>) => string[];

const S = (c: InstrCtx) => `p->s[${['compute', 'h2d', 'd2h', 'comm'].indexOf(c.instr.stream)}]`;
/** The C pointer of an operand, cast; an operand absent (its flag off) is a compiler bug here. */
const ptr = (c: InstrCtx, ref: Ref | undefined, cast: string) => {
  if (!ref) throw new Error(`host codegen: ${c.instr.op} ${c.instr.id} lacks an operand its call needs`);
  return `(${cast})${refC(c.ar, ref)}`;
};
const rd = (c: InstrCtx, ref: Ref | undefined, cast = 'const void*') => ptr(c, ref, cast);
const wr = (c: InstrCtx, ref: Ref | undefined, cast = 'void*') => ptr(c, ref, cast);
const dtypeOf = (c: InstrCtx, ref: Ref): DType => c.ar.buffers.get(ref.buf)!.dtype;
const num = (c: InstrCtx, k: string): number => {
  const x = c.instr.attrs[k];
  if (typeof x !== 'number') throw new Error(`host codegen: ${c.instr.op} ${c.instr.id} has no numeric attribute '${k}'`);
  return x;
};
const flag = (c: InstrCtx, k: string): number => (c.instr.attrs[k] === true ? 1 : 0);
const f32 = (x: number): string => `${Number.isInteger(x) ? x.toFixed(1) : String(x)}f`;

const MEMCPY_KIND: Record<string, string> = { h2d: 'cudaMemcpyHostToDevice', d2h: 'cudaMemcpyDeviceToHost', d2d: 'cudaMemcpyDeviceToDevice', h2h: 'cudaMemcpyHostToHost' };

type Collective = 'all_gather' | 'reduce_scatter' | 'all_reduce' | 'all_to_all';

/** Element bytes of a collective's data (its output's dtype). */
const elemOf = (c: OpCtx<Collective>): number => DTYPE_BYTES[dtypeOf(c, c.w.dst)];

/**
 * Collectives go through program_comm.cuh (NCCL or the local world), which returns a status.
 * Counts: all_gather sends its input, reduce_scatter keeps its output, all_reduce its whole window.
 */
const collective =
  (fn: string, count: (c: OpCtx<Collective>) => number): Emit<Collective> =>
  (c) => {
    const where = `"${c.instr.id} ${c.instr.op}"`;
    return [`${fn}(p, ${rd(c, c.r.src)}, ${wr(c, c.w.dst)}, ${count(c)}LL, ${elemOf(c)}, ${where})`];
  };

/** The all-to-all's geometry (fpdt_a2a_geom: c, P, H, d, hL, G, hqL) as a C compound literal. */
const a2aGeom = (c: InstrCtx): string =>
  `fpdt_a2a_geom{${['rows', 'ranks', 'heads', 'headDim', 'localHeads', 'group', 'qHeadsPerRank'].map((k) => num(c, k)).join(', ')}}`;

const allToAll: Emit<'all_to_all'> = (c) => {
  const dir = c.instr.attrs.dir;
  if (dir !== 'seq_to_heads' && dir !== 'heads_to_seq') throw new Error(`host codegen: all_to_all ${c.instr.id} has no direction '${String(dir)}'`);
  const toHeads = dir === 'seq_to_heads' ? 1 : 0;
  return [`fpdt_all_to_all(p, ${toHeads}, ${rd(c, c.r.src)}, ${wr(c, c.w.dst)}, ${a2aGeom(c)}, ${elemOf(c)}, "${c.instr.id} all_to_all")`];
};

/** Status-returning calls the body wraps in FPDT_TRY rather than the CUDA check. */
export const STATUS_CALLS = ['fpdt_gemm_call', 'fpdt_unsupported', 'fpdt_all_gather', 'fpdt_all_gather_group', 'fpdt_reduce_scatter', 'fpdt_all_reduce', 'fpdt_all_to_all'];

/** Row-major GEMM through cuBLASLt: the output's dtype decides bf16 or fp32 (accumulating) output. */
function gemm(c: InstrCtx, ta: number, tb: number, m: number, n: number, k: number, a: string, lda: number, b: string, ldb: number, beta: number, y: string, ldc: number, outDtype: DType): string {
  const out = outDtype === 'fp32' ? 'FPDT_GEMM_OUT_F32' : 'FPDT_GEMM_OUT_BF16';
  return `fpdt_gemm_call(p, fpdt_gemm_bf16(p->gemm, ${S(c)}, ${ta}, ${tb}, ${m}, ${n}, ${k}, 1.0f, ${a}, ${lda}, ${b}, ${ldb}, ${f32(beta)}, ${y}, ${ldc}, ${out}))`;
}

const softmaxScale = (c: InstrCtx) => f32(1 / Math.sqrt(num(c, 'd')));

/** Hq, Hkv, q_head_base (the rank's first global q head), group of an attention block. */
const attnHeads = (c: InstrCtx): string => {
  const base = c.instr.args?.qHeadBase;
  return `${num(c, 'hq')}, ${num(c, 'hkv')}, ${base ? `(int)${affineC(base, c.ar.rank)}` : '0'}, ${num(c, 'group')}`;
};

/**
 * Packed documents (lower/packed.ts): a block reads its q rows' and kv rows' document ids as two
 * last operands (from `first`) and calls the document-masked launcher; RoPE reads its rows'
 * positions as a second operand instead of pos0 + row.
 */
const isPacked = (c: InstrCtx) => c.instr.attrs.packed === true;
const docsSuffix = (c: InstrCtx) => (isPacked(c) ? '_docs' : '');
const blockDocsC = (c: InstrCtx & { readonly r: { readonly qDocs?: Ref; readonly kvDocs?: Ref } }) =>
  isPacked(c) ? `${rd(c, c.r.qDocs, 'const int*')}, ${rd(c, c.r.kvDocs, 'const int*')}, ` : '';
const ropeCall = (c: InstrCtx, x: Ref, y: Ref, positions: Ref | undefined, dir: 'fwd' | 'bwd'): string =>
  isPacked(c)
    ? `fpdt_rope_${dir}_pos(${rd(c, x)}, ${wr(c, y)}, ${num(c, 'rows')}, ${num(c, 'heads')}, ${rd(c, positions, 'const int*')}, ${S(c)})`
    : `fpdt_rope_${dir}(${rd(c, x)}, ${wr(c, y)}, ${num(c, 'rows')}, ${num(c, 'heads')}, ${affineC(c.instr.args!.pos0, c.ar.rank)}, ${S(c)})`;

export const HOST_OPS: { readonly [K in OpName]: Emit<K> } = {
  fill: (c) => {
    const v = num(c, 'value');
    const bytes = refBytes(c.ar, c.w.dst);
    if (v === 0) return [`cudaMemsetAsync(${wr(c, c.w.dst)}, 0, ${bytes}LL, ${S(c)})`];
    const t = dtypeOf(c, c.w.dst);
    if (t === 'fp32') return [`fpdt_fill_f32(${wr(c, c.w.dst, 'float*')}, ${f32(v)}, ${c.w.dst.len}LL, ${S(c)})`];
    if (t === 'bf16') return [`fpdt_fill_bf16(${wr(c, c.w.dst)}, ${f32(v)}, ${c.w.dst.len}LL, ${S(c)})`];
    throw new Error(`host codegen: fill of ${t} with ${v}`);
  },
  copy: (c) => [`cudaMemcpyAsync(${wr(c, c.w.dst)}, ${rd(c, c.r.src)}, ${refBytes(c.ar, c.w.dst)}LL, ${MEMCPY_KIND[String(c.instr.attrs.dir)]}, ${S(c)})`],
  // with dp groups, a gather that spans the sequence-parallel group only (packed documents' ids)
  all_gather: (c) => collective(c.instr.attrs.span === 'sp' ? 'fpdt_all_gather_group' : 'fpdt_all_gather', (x) => x.r.src.len)(c),
  reduce_scatter: collective('fpdt_reduce_scatter', (x) => x.w.dst.len),
  all_reduce: collective('fpdt_all_reduce', (x) => x.w.dst.len),
  all_to_all: allToAll,
  embedding: (c) => [`fpdt_embedding_fwd(${rd(c, c.r.tokens, 'const int*')}, ${rd(c, c.r.table)}, ${wr(c, c.w.y)}, ${num(c, 'rows')}, ${S(c)})`],
  embedding_bwd: (c) => [`fpdt_embedding_bwd(${rd(c, c.r.tokens, 'const int*')}, ${rd(c, c.r.dy)}, ${wr(c, c.w.dtable, 'float*')}, ${num(c, 'rows')}, ${S(c)})`],
  // y[rows, out] = x[rows, in] · w[out, in]ᵀ (+ b)
  linear: (c) => {
    const [rows, inF, outF] = [num(c, 'rows'), num(c, 'in'), num(c, 'out')];
    const calls = [gemm(c, 0, 1, rows, outF, inF, rd(c, c.r.x), inF, rd(c, c.r.w), inF, 0, wr(c, c.w.y), outF, dtypeOf(c, c.w.y))];
    if (flag(c, 'bias')) calls.push(`fpdt_host_bias_add(${wr(c, c.w.y)}, ${rd(c, c.r.b)}, ${rows}, ${outF}, ${S(c)})`);
    return calls;
  },
  // dx[rows, in] = dy[rows, out] · w[out, in]
  linear_dx: (c) => {
    const [rows, inF, outF] = [num(c, 'rows'), num(c, 'in'), num(c, 'out')];
    return [gemm(c, 0, 0, rows, inF, outF, rd(c, c.r.dy), outF, rd(c, c.r.w), inF, 0, wr(c, c.w.dx), inF, dtypeOf(c, c.w.dx))];
  },
  // dx[rows, in] += dy[rows, out] · w[out, in] (the sum in fp32, rounded once)
  linear_dx_add: (c) => {
    const [rows, inF, outF] = [num(c, 'rows'), num(c, 'in'), num(c, 'out')];
    return [gemm(c, 0, 0, rows, inF, outF, rd(c, c.r.dy), outF, rd(c, c.r.w), inF, 1, wr(c, c.w.dx), inF, dtypeOf(c, c.w.dx))];
  },
  // dw[out, in] += dy[rows, out]ᵀ · x[rows, in], fp32
  linear_dw: (c) => {
    const [rows, inF, outF] = [num(c, 'rows'), num(c, 'in'), num(c, 'out')];
    return [gemm(c, 1, 0, outF, inF, rows, rd(c, c.r.dy), outF, rd(c, c.r.x), inF, 1, wr(c, c.w.dw), inF, dtypeOf(c, c.w.dw))];
  },
  linear_db: (c) => [`fpdt_host_bias_grad(${rd(c, c.r.dy)}, ${wr(c, c.w.db, 'float*')}, ${num(c, 'rows')}, ${num(c, 'out')}, ${S(c)})`],
  rmsnorm: (c) => [`fpdt_rmsnorm_fwd(${rd(c, c.r.x)}, ${rd(c, c.r.w)}, ${wr(c, c.w.y)}, p->stat_rstd, ${num(c, 'rows')}, ${S(c)})`],
  layernorm: (c) => [`fpdt_layernorm_fwd(${rd(c, c.r.x)}, ${rd(c, c.r.w)}, ${rd(c, c.r.b)}, ${wr(c, c.w.y)}, p->stat_mean, p->stat_rstd, ${num(c, 'rows')}, ${S(c)})`],
  // The schedule keeps no statistics: they are recomputed from x (one cheap pass) before the backward.
  rmsnorm_bwd: (c) => [
    `fpdt_host_rms_stats(${rd(c, c.r.x)}, p->stat_rstd, ${num(c, 'rows')}, ${num(c, 'dim')}, ${f32(num(c, 'eps'))}, ${S(c)})`,
    `fpdt_rmsnorm_bwd(${rd(c, c.r.x)}, ${rd(c, c.r.w)}, ${rd(c, c.r.dy)}, p->stat_rstd, ${wr(c, c.w.dx)}, ${wr(c, c.w.dw, 'float*')}, ${num(c, 'rows')}, ${S(c)})`,
  ],
  layernorm_bwd: (c) => [
    `fpdt_host_ln_stats(${rd(c, c.r.x)}, p->stat_mean, p->stat_rstd, ${num(c, 'rows')}, ${num(c, 'dim')}, ${f32(num(c, 'eps'))}, ${S(c)})`,
    `fpdt_layernorm_bwd(${rd(c, c.r.x)}, ${rd(c, c.r.w)}, ${rd(c, c.r.dy)}, p->stat_mean, p->stat_rstd, ${wr(c, c.w.dx)}, ${wr(c, c.w.dw, 'float*')}, ${wr(c, c.w.db, 'float*')}, ${num(c, 'rows')}, ${S(c)})`,
  ],
  rope: (c) => [ropeCall(c, c.r.x, c.w.y, c.r.positions, 'fwd')],
  rope_bwd: (c) => [ropeCall(c, c.r.dy, c.w.dx, c.r.positions, 'bwd')],
  swiglu: (c) => [`fpdt_swiglu_fwd(${rd(c, c.r.gate)}, ${rd(c, c.r.up)}, ${wr(c, c.w.y)}, ${num(c, 'n') / c.sizes.F}, ${c.sizes.F}LL, ${S(c)})`],
  swiglu_bwd: (c) => [`fpdt_swiglu_bwd(${rd(c, c.r.gate)}, ${rd(c, c.r.up)}, ${rd(c, c.r.dy)}, ${wr(c, c.w.dgate)}, ${wr(c, c.w.dup)}, ${num(c, 'n') / c.sizes.F}, ${c.sizes.F}LL, ${S(c)})`],
  gelu: (c) => [`fpdt_gelu_fwd(${rd(c, c.r.x)}, ${wr(c, c.w.y)}, ${num(c, 'n')}LL, ${S(c)})`],
  gelu_bwd: (c) => [`fpdt_gelu_bwd(${rd(c, c.r.x)}, ${rd(c, c.r.dy)}, ${wr(c, c.w.dx)}, ${num(c, 'n')}LL, ${S(c)})`],
  add: (c) => {
    if (dtypeOf(c, c.w.y) !== 'bf16') throw new Error(`host codegen: add ${c.instr.id} of ${dtypeOf(c, c.w.y)}`);
    return [`fpdt_add_bf16(${rd(c, c.r.a)}, ${rd(c, c.r.b)}, ${wr(c, c.w.y)}, ${num(c, 'n')}LL, ${S(c)})`];
  },
  // The loss kernel computes the loss sum and dlogits in one pass: the forward instruction is
  // folded into its backward twin of the same chunk (see pairLossInstrs).
  cross_entropy: () => [],
  cross_entropy_bwd: (c) => {
    if (!c.lossRef) throw new Error(`host codegen: cross_entropy_bwd ${c.instr.id} has no forward twin in its chunk`);
    const fp32 = dtypeOf(c, c.r.logits) === 'fp32';
    const fn = fp32 ? 'fpdt_xent_f32' : 'fpdt_xent_bf16';
    const logits = fp32 ? rd(c, c.r.logits, 'const float*') : rd(c, c.r.logits);
    return [`${fn}(${logits}, ${rd(c, c.r.labels, 'const int*')}, (float*)${c.lossRef}, ${wr(c, c.w.dlogits)}, ${num(c, 'rows')}, p->inv_nvalid, ${S(c)})`];
  },
  attn_init: (c) => {
    const [L, H] = c.ar.buffers.get(c.w.oAcc.buf)!.shape;
    return [`fpdt_attn_acc_init(${wr(c, c.w.oAcc, 'float*')}, ${wr(c, c.w.lseAcc, 'float*')}, ${L}, ${H}, ${S(c)})`];
  },
  // mode 1: every block folds into the accumulators attn_init prepared
  attn_fwd_block: (c) => [
    `fpdt_attn_fwd${docsSuffix(c)}(${rd(c, c.r.q)}, ${rd(c, c.r.k)}, ${rd(c, c.r.v)}, ${wr(c, c.w.oAcc, 'float*')}, ${wr(c, c.w.lseAcc, 'float*')}, NULL, ${num(c, 'lq')}, ${num(c, 'lk')}, ${attnHeads(c)}, ${softmaxScale(c)}, ${flag(c, 'causal')}, 1, ${blockDocsC(c)}${S(c)})`,
  ],
  attn_finalize: (c) => [
    `fpdt_attn_finalize(${rd(c, c.r.oAcc, 'const float*')}, ${wr(c, c.w.o)}, ${num(c, 'rows')}, ${num(c, 'heads')}, ${S(c)})`,
    `cudaMemcpyAsync(${wr(c, c.w.lse)}, ${rd(c, c.r.lseAcc)}, ${refBytes(c.ar, c.w.lse)}LL, cudaMemcpyDeviceToDevice, ${S(c)})`,
  ],
  attn_bwd_prep: (c) => [`fpdt_attn_bwd_delta(${rd(c, c.r.o)}, ${rd(c, c.r.do)}, ${wr(c, c.w.delta, 'float*')}, ${num(c, 'rows')}, ${num(c, 'heads')}, ${S(c)})`],
  attn_bwd_block: (c) => [
    `fpdt_attn_bwd${docsSuffix(c)}(${rd(c, c.r.q)}, ${rd(c, c.r.k)}, ${rd(c, c.r.v)}, ${rd(c, c.r.do)}, ${rd(c, c.r.lse, 'const float*')}, ${rd(c, c.r.delta, 'const float*')}, ${wr(c, c.w.dqAcc, 'float*')}, ${wr(c, c.w.dkAcc, 'float*')}, ${wr(c, c.w.dvAcc, 'float*')}, ${num(c, 'lq')}, ${num(c, 'lk')}, ${attnHeads(c)}, ${softmaxScale(c)}, ${flag(c, 'causal')}, ${blockDocsC(c)}${S(c)})`,
  ],
  attn_bwd_finalize: (c) =>
    ([[c.r.dqAcc, c.w.dq], [c.r.dkAcc, c.w.dk], [c.r.dvAcc, c.w.dv]] as const).map(([acc, out]) => `fpdt_cast_f32_bf16(${rd(c, acc, 'const float*')}, ${wr(c, out)}, ${out.len}LL, ${S(c)})`),
  adamw: (c) => [
    `fpdt_adamw(${wr(c, c.w.master, 'float*')}, ${rd(c, c.r.grad, 'const float*')}, ${wr(c, c.w.m, 'float*')}, ${wr(c, c.w.v, 'float*')}, ${wr(c, c.w.param)}, ${num(c, 'n')}LL, p->lr, p->beta1, p->beta2, p->eps, p->weight_decay, ${rd(c, c.r.sqnorm, 'const float*')}, p->max_grad_norm, p->step, ${S(c)})`,
  ],
  grad_accumulate: (c) => [`fpdt_host_add_f32(${wr(c, c.w.into, 'float*')}, ${rd(c, c.r.part, 'const float*')}, ${c.w.into.len}LL, ${S(c)})`],
  grad_sumsq: (c) => [`fpdt_sqnorm_acc(${rd(c, c.r.grad, 'const float*')}, ${c.r.grad.len}LL, ${wr(c, c.w.sqnorm, 'float*')}, ${S(c)})`],
};

/** The C calls of one instruction: its op's entry of HOST_OPS, given its operands by name. */
export function hostCalls<K extends OpName>(instr: Instr & { readonly op: K }, env: HostEnv): string[] {
  // one table entry per op: the entry of the instruction's own op takes its own named operands
  const emit = HOST_OPS[instr.op] as Emit<K>;
  return emit({ ...env, instr, r: readsOf(instr), w: writesOf(instr) });
}
