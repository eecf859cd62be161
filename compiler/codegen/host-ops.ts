// What each schedule instruction becomes in the host program: a table from op name to the C
// calls (kernel launchers, fpdt_gemm_bf16, cudaMemcpyAsync) that do it on the instruction's
// stream. Operand order is the lowering's (compiler/lower/tokenwise.ts, attention.ts).
import { DTYPE_BYTES, type DType } from '../ir/types.js';
import type { Instr } from '../schedule/types.js';
import { affineC, refBytes, refC, type Arenas } from './host-c.js';

export interface OpCtx {
  readonly instr: Instr;
  readonly ar: Arenas;
  /** model sizes (D, F, Hq, ...) */
  readonly sizes: Readonly<Record<string, number>>;
  /** ranks of the schedule; collectives are local copies only for 1 */
  readonly world: number;
  /** for cross_entropy_bwd: the loss window its forward twin sums into */
  readonly lossRef?: string;
}

/** One C statement per call; each is wrapped in the status check by the caller. */
type Emit = (c: OpCtx) => string[];

const S = (c: OpCtx) => `p->s[${['compute', 'h2d', 'd2h', 'comm'].indexOf(c.instr.stream)}]`;
const rd = (c: OpCtx, k: number, cast = 'const void*') => `(${cast})${refC(c.ar, c.instr.reads[k])}`;
const wr = (c: OpCtx, k: number, cast = 'void*') => `(${cast})${refC(c.ar, c.instr.writes[k])}`;
const dtypeOf = (c: OpCtx, side: 'reads' | 'writes', k: number): DType => c.ar.buffers.get(c.instr[side][k].buf)!.dtype;
const num = (c: OpCtx, k: string): number => {
  const x = c.instr.attrs[k];
  if (typeof x !== 'number') throw new Error(`host codegen: ${c.instr.op} ${c.instr.id} has no numeric attribute '${k}'`);
  return x;
};
const flag = (c: OpCtx, k: string): number => (c.instr.attrs[k] === true ? 1 : 0);
const f32 = (x: number): string => `${Number.isInteger(x) ? x.toFixed(1) : String(x)}f`;

const MEMCPY_KIND: Record<string, string> = { h2d: 'cudaMemcpyHostToDevice', d2h: 'cudaMemcpyDeviceToHost', d2d: 'cudaMemcpyDeviceToDevice', h2h: 'cudaMemcpyHostToHost' };

/** Element bytes of a collective's data (its output's dtype). */
const elemOf = (c: OpCtx): number => DTYPE_BYTES[dtypeOf(c, 'writes', 0)];

/**
 * Collectives go through program_comm.cuh (NCCL or the local world), which returns a status.
 * Counts: all_gather sends its input, reduce_scatter keeps its output, all_reduce its whole window.
 */
const collective =
  (fn: string, count: (c: OpCtx) => number): Emit =>
  (c) => {
    const where = `"${c.instr.id} ${c.instr.op}"`;
    return [`${fn}(p, ${rd(c, 0)}, ${wr(c, 0)}, ${count(c)}LL, ${elemOf(c)}, ${where})`];
  };

/** The all-to-all's geometry (fpdt_a2a_geom: c, P, H, d, hL, G, hqL) as a C compound literal. */
const a2aGeom = (c: OpCtx): string =>
  `fpdt_a2a_geom{${['rows', 'ranks', 'heads', 'headDim', 'localHeads', 'group', 'qHeadsPerRank'].map((k) => num(c, k)).join(', ')}}`;

const allToAll: Emit = (c) => {
  const dir = c.instr.attrs.dir;
  if (dir !== 'seq_to_heads' && dir !== 'heads_to_seq') throw new Error(`host codegen: all_to_all ${c.instr.id} has no direction '${String(dir)}'`);
  const toHeads = dir === 'seq_to_heads' ? 1 : 0;
  return [`fpdt_all_to_all(p, ${toHeads}, ${rd(c, 0)}, ${wr(c, 0)}, ${a2aGeom(c)}, ${elemOf(c)}, "${c.instr.id} all_to_all")`];
};

/** Status-returning calls the body wraps in FPDT_TRY rather than the CUDA check. */
export const STATUS_CALLS = ['fpdt_gemm_call', 'fpdt_unsupported', 'fpdt_all_gather', 'fpdt_all_gather_group', 'fpdt_reduce_scatter', 'fpdt_all_reduce', 'fpdt_all_to_all'];

/** Row-major GEMM through cuBLASLt: the output's dtype decides bf16 or fp32 (accumulating) output. */
function gemm(c: OpCtx, ta: number, tb: number, m: number, n: number, k: number, a: string, lda: number, b: string, ldb: number, beta: number, y: string, ldc: number, outDtype: DType): string {
  const out = outDtype === 'fp32' ? 'FPDT_GEMM_OUT_F32' : 'FPDT_GEMM_OUT_BF16';
  return `fpdt_gemm_call(p, fpdt_gemm_bf16(p->gemm, ${S(c)}, ${ta}, ${tb}, ${m}, ${n}, ${k}, 1.0f, ${a}, ${lda}, ${b}, ${ldb}, ${f32(beta)}, ${y}, ${ldc}, ${out}))`;
}

const softmaxScale = (c: OpCtx) => f32(1 / Math.sqrt(num(c, 'd')));

/** Hq, Hkv, q_head_base (the rank's first global q head), group of an attention block. */
const attnHeads = (c: OpCtx): string => {
  const base = c.instr.args?.qHeadBase;
  return `${num(c, 'hq')}, ${num(c, 'hkv')}, ${base ? `(int)${affineC(base, c.ar.rank)}` : '0'}, ${num(c, 'group')}`;
};

/**
 * Packed documents (lower/packed.ts): a block reads its q rows' and kv rows' document ids as two
 * last operands (from `first`) and calls the document-masked launcher; RoPE reads its rows'
 * positions as a second operand instead of pos0 + row.
 */
const isPacked = (c: OpCtx) => c.instr.attrs.packed === true;
const docsSuffix = (c: OpCtx) => (isPacked(c) ? '_docs' : '');
const blockDocsC = (c: OpCtx, first: number) => (isPacked(c) ? `${rd(c, first, 'const int*')}, ${rd(c, first + 1, 'const int*')}, ` : '');
const ropeCall = (c: OpCtx, dir: 'fwd' | 'bwd'): string =>
  isPacked(c)
    ? `fpdt_rope_${dir}_pos(${rd(c, 0)}, ${wr(c, 0)}, ${num(c, 'rows')}, ${num(c, 'heads')}, ${rd(c, 1, 'const int*')}, ${S(c)})`
    : `fpdt_rope_${dir}(${rd(c, 0)}, ${wr(c, 0)}, ${num(c, 'rows')}, ${num(c, 'heads')}, ${affineC(c.instr.args!.pos0, c.ar.rank)}, ${S(c)})`;

export const HOST_OPS: Readonly<Record<string, Emit>> = {
  fill: (c) => {
    const v = num(c, 'value');
    const bytes = refBytes(c.ar, c.instr.writes[0]);
    if (v === 0) return [`cudaMemsetAsync(${wr(c, 0)}, 0, ${bytes}LL, ${S(c)})`];
    const t = dtypeOf(c, 'writes', 0);
    if (t === 'fp32') return [`fpdt_fill_f32(${wr(c, 0, 'float*')}, ${f32(v)}, ${c.instr.writes[0].len}LL, ${S(c)})`];
    if (t === 'bf16') return [`fpdt_fill_bf16(${wr(c, 0)}, ${f32(v)}, ${c.instr.writes[0].len}LL, ${S(c)})`];
    throw new Error(`host codegen: fill of ${t} with ${v}`);
  },
  copy: (c) => [`cudaMemcpyAsync(${wr(c, 0)}, ${rd(c, 0)}, ${refBytes(c.ar, c.instr.writes[0])}LL, ${MEMCPY_KIND[String(c.instr.attrs.dir)]}, ${S(c)})`],
  // with dp groups, a gather that spans the sequence-parallel group only (packed documents' ids)
  all_gather: (c) => collective(c.instr.attrs.span === 'sp' ? 'fpdt_all_gather_group' : 'fpdt_all_gather', (x) => x.instr.reads[0].len)(c),
  reduce_scatter: collective('fpdt_reduce_scatter', (x) => x.instr.writes[0].len),
  all_reduce: collective('fpdt_all_reduce', (x) => x.instr.writes[0].len),
  all_to_all: allToAll,
  embedding: (c) => [`fpdt_embedding_fwd(${rd(c, 0, 'const int*')}, ${rd(c, 1)}, ${wr(c, 0)}, ${num(c, 'rows')}, ${S(c)})`],
  embedding_bwd: (c) => [`fpdt_embedding_bwd(${rd(c, 1, 'const int*')}, ${rd(c, 0)}, ${wr(c, 0, 'float*')}, ${num(c, 'rows')}, ${S(c)})`],
  // y[rows, out] = x[rows, in] · w[out, in]ᵀ (+ b)
  linear: (c) => {
    const [rows, inF, outF] = [num(c, 'rows'), num(c, 'in'), num(c, 'out')];
    const calls = [gemm(c, 0, 1, rows, outF, inF, rd(c, 0), inF, rd(c, 1), inF, 0, wr(c, 0), outF, dtypeOf(c, 'writes', 0))];
    if (flag(c, 'bias')) calls.push(`fpdt_host_bias_add(${wr(c, 0)}, ${rd(c, 2)}, ${rows}, ${outF}, ${S(c)})`);
    return calls;
  },
  // dx[rows, in] = dy[rows, out] · w[out, in]
  linear_dx: (c) => {
    const [rows, inF, outF] = [num(c, 'rows'), num(c, 'in'), num(c, 'out')];
    return [gemm(c, 0, 0, rows, inF, outF, rd(c, 0), outF, rd(c, 1), inF, 0, wr(c, 0), inF, dtypeOf(c, 'writes', 0))];
  },
  // dw[out, in] += dy[rows, out]ᵀ · x[rows, in], fp32
  linear_dw: (c) => {
    const [rows, inF, outF] = [num(c, 'rows'), num(c, 'in'), num(c, 'out')];
    return [gemm(c, 1, 0, outF, inF, rows, rd(c, 0), outF, rd(c, 1), inF, 1, wr(c, 0), inF, dtypeOf(c, 'writes', 0))];
  },
  linear_db: (c) => [`fpdt_host_bias_grad(${rd(c, 0)}, ${wr(c, 0, 'float*')}, ${num(c, 'rows')}, ${num(c, 'out')}, ${S(c)})`],
  rmsnorm: (c) => [`fpdt_rmsnorm_fwd(${rd(c, 0)}, ${rd(c, 1)}, ${wr(c, 0)}, p->stat_rstd, ${num(c, 'rows')}, ${S(c)})`],
  layernorm: (c) => [`fpdt_layernorm_fwd(${rd(c, 0)}, ${rd(c, 1)}, ${rd(c, 2)}, ${wr(c, 0)}, p->stat_mean, p->stat_rstd, ${num(c, 'rows')}, ${S(c)})`],
  // The schedule keeps no statistics: they are recomputed from x (one cheap pass) before the backward.
  rmsnorm_bwd: (c) => [
    `fpdt_host_rms_stats(${rd(c, 1)}, p->stat_rstd, ${num(c, 'rows')}, ${num(c, 'dim')}, ${f32(num(c, 'eps'))}, ${S(c)})`,
    `fpdt_rmsnorm_bwd(${rd(c, 1)}, ${rd(c, 2)}, ${rd(c, 0)}, p->stat_rstd, ${wr(c, 0)}, ${wr(c, 1, 'float*')}, ${num(c, 'rows')}, ${S(c)})`,
  ],
  layernorm_bwd: (c) => [
    `fpdt_host_ln_stats(${rd(c, 1)}, p->stat_mean, p->stat_rstd, ${num(c, 'rows')}, ${num(c, 'dim')}, ${f32(num(c, 'eps'))}, ${S(c)})`,
    `fpdt_layernorm_bwd(${rd(c, 1)}, ${rd(c, 2)}, ${rd(c, 0)}, p->stat_mean, p->stat_rstd, ${wr(c, 0)}, ${wr(c, 1, 'float*')}, ${wr(c, 2, 'float*')}, ${num(c, 'rows')}, ${S(c)})`,
  ],
  rope: (c) => [ropeCall(c, 'fwd')],
  rope_bwd: (c) => [ropeCall(c, 'bwd')],
  swiglu: (c) => [`fpdt_swiglu_fwd(${rd(c, 0)}, ${rd(c, 1)}, ${wr(c, 0)}, ${num(c, 'n') / c.sizes.F}, ${c.sizes.F}LL, ${S(c)})`],
  swiglu_bwd: (c) => [`fpdt_swiglu_bwd(${rd(c, 1)}, ${rd(c, 2)}, ${rd(c, 0)}, ${wr(c, 0)}, ${wr(c, 1)}, ${num(c, 'n') / c.sizes.F}, ${c.sizes.F}LL, ${S(c)})`],
  gelu: (c) => [`fpdt_gelu_fwd(${rd(c, 0)}, ${wr(c, 0)}, ${num(c, 'n')}LL, ${S(c)})`],
  gelu_bwd: (c) => [`fpdt_gelu_bwd(${rd(c, 1)}, ${rd(c, 0)}, ${wr(c, 0)}, ${num(c, 'n')}LL, ${S(c)})`],
  add: (c) => {
    if (dtypeOf(c, 'writes', 0) !== 'bf16') throw new Error(`host codegen: add ${c.instr.id} of ${dtypeOf(c, 'writes', 0)}`);
    return [`fpdt_add_bf16(${rd(c, 0)}, ${rd(c, 1)}, ${wr(c, 0)}, ${num(c, 'n')}LL, ${S(c)})`];
  },
  // The loss kernel computes the loss sum and dlogits in one pass: the forward instruction is
  // folded into its backward twin of the same chunk (see pairLossInstrs).
  cross_entropy: () => [],
  cross_entropy_bwd: (c) => {
    if (!c.lossRef) throw new Error(`host codegen: cross_entropy_bwd ${c.instr.id} has no forward twin in its chunk`);
    const fn = dtypeOf(c, 'reads', 1) === 'fp32' ? 'fpdt_xent_f32' : 'fpdt_xent_bf16';
    const logits = dtypeOf(c, 'reads', 1) === 'fp32' ? rd(c, 1, 'const float*') : rd(c, 1);
    return [`${fn}(${logits}, ${rd(c, 2, 'const int*')}, (float*)${c.lossRef}, ${wr(c, 0)}, ${num(c, 'rows')}, p->inv_nvalid, ${S(c)})`];
  },
  attn_init: (c) => {
    const [L, H] = c.ar.buffers.get(c.instr.writes[0].buf)!.shape;
    return [`fpdt_attn_acc_init(${wr(c, 0, 'float*')}, ${wr(c, 1, 'float*')}, ${L}, ${H}, ${S(c)})`];
  },
  // mode 1: every block folds into the accumulators attn_init prepared
  attn_fwd_block: (c) => [
    `fpdt_attn_fwd${docsSuffix(c)}(${rd(c, 0)}, ${rd(c, 1)}, ${rd(c, 2)}, ${wr(c, 0, 'float*')}, ${wr(c, 1, 'float*')}, NULL, ${num(c, 'lq')}, ${num(c, 'lk')}, ${attnHeads(c)}, ${softmaxScale(c)}, ${flag(c, 'causal')}, 1, ${blockDocsC(c, 3)}${S(c)})`,
  ],
  attn_finalize: (c) => [
    `fpdt_attn_finalize(${rd(c, 0, 'const float*')}, ${wr(c, 0)}, ${num(c, 'rows')}, ${num(c, 'heads')}, ${S(c)})`,
    `cudaMemcpyAsync(${wr(c, 1)}, ${rd(c, 1)}, ${refBytes(c.ar, c.instr.writes[1])}LL, cudaMemcpyDeviceToDevice, ${S(c)})`,
  ],
  attn_bwd_prep: (c) => [`fpdt_attn_bwd_delta(${rd(c, 1)}, ${rd(c, 0)}, ${wr(c, 0, 'float*')}, ${num(c, 'rows')}, ${num(c, 'heads')}, ${S(c)})`],
  attn_bwd_block: (c) => [
    `fpdt_attn_bwd${docsSuffix(c)}(${rd(c, 0)}, ${rd(c, 1)}, ${rd(c, 2)}, ${rd(c, 3)}, ${rd(c, 4, 'const float*')}, ${rd(c, 5, 'const float*')}, ${wr(c, 0, 'float*')}, ${wr(c, 1, 'float*')}, ${wr(c, 2, 'float*')}, ${num(c, 'lq')}, ${num(c, 'lk')}, ${attnHeads(c)}, ${softmaxScale(c)}, ${flag(c, 'causal')}, ${blockDocsC(c, 6)}${S(c)})`,
  ],
  attn_bwd_finalize: (c) => [0, 1, 2].map((k) => `fpdt_cast_f32_bf16(${rd(c, k, 'const float*')}, ${wr(c, k)}, ${c.instr.writes[k].len}LL, ${S(c)})`),
  adamw: (c) => [
    `fpdt_adamw(${wr(c, 0, 'float*')}, ${rd(c, 0, 'const float*')}, ${wr(c, 1, 'float*')}, ${wr(c, 2, 'float*')}, ${wr(c, 3)}, ${num(c, 'n')}LL, p->lr, p->beta1, p->beta2, p->eps, p->weight_decay, ${rd(c, 1, 'const float*')}, p->max_grad_norm, p->step, ${S(c)})`,
  ],
  grad_accumulate: (c) => [`fpdt_host_add_f32(${wr(c, 0, 'float*')}, ${rd(c, 0, 'const float*')}, ${c.instr.writes[0].len}LL, ${S(c)})`],
  grad_sumsq: (c) => [`fpdt_sqnorm_acc(${rd(c, 0, 'const float*')}, ${c.instr.reads[0].len}LL, ${wr(c, 0, 'float*')}, ${S(c)})`],
};
