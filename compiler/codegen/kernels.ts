// Renders the CUDA kernels of one model: decides variants and tile shapes from the model's constants
// and hands plain data to the nunjucks templates in codegen-templates/kernels/.
import nunjucks from 'nunjucks';
import { fileURLToPath } from 'node:url';
import type { RopeScaling } from '../ir/types.js';
import { launcherPrototypes } from './kernel-signatures.js';

export interface KernelSpec {
  headDim: number;
  hidden: number;
  kvHeads: number;
  qHeads: number;
  ffn: number;
  vocab: number;
  rotaryDim: number;
  ropeTheta: number;
  /** frequency scaling of RoPE (Llama 3.1's llama3), folded into the frequency table; none when absent */
  ropeScaling?: RopeScaling;
  norm: 'rms' | 'layer';
  mlp: 'swiglu' | 'gelu';
  eps: number;
  /**
   * The GPU family the kernels are rendered for: 'sm90a' (H100/H200: head dims 64 and 128 get the wgmma
   * forward of attention_fwd_sm90.cu.njk, with the mma.sync kernel as its runtime fallback); absent or
   * 'generic': the mma.sync kernels only.
   */
  target?: 'sm90a' | 'generic';
  /**
   * Packed documents: also render the document-masked attention (on sm90a at head dims 64 and 128 the
   * wgmma kernels with ids, attention_{fwd,bwd}_docs_sm90.cu, falling back to the mma.sync ones renamed
   * _docs_mma; elsewhere attention_{fwd,bwd}_docs.cu, mma.sync) and RoPE at per-row positions (rope_pos.cu).
   */
  packed?: boolean;
}

/**
 * Attention tile shapes. Forward: `warps` warps, each `mw` x 16 query rows, against `bc` kv rows per
 * step. Backward: `bwdWarps` x 16 kv rows per CTA, `bwdBq` query rows per step.
 */
export interface AttentionTiling {
  warps: 4 | 8;
  mw: 1 | 2;
  bc: 32 | 64 | 128;
  bwdWarps: 4 | 8;
  bwdBq: 32 | 64;
  /** how dQ reaches global memory: float2 or float4 atomics, or bulk-engine reduction of a staged tile */
  bwdDq: 'atomic2' | 'atomic4' | 'bulk';
}

export interface RenderedKernel {
  file: string;
  text: string;
}

export interface RenderOptions {
  tiling?: AttentionTiling;
  /** extra attention variants, each with launchers `fpdt_attn_fwd<suffix>`, `fpdt_attn_bwd<suffix>` (benchmarks) */
  attentionVariants?: { suffix: string; tiling: AttentionTiling }[];
  /**
   * where the forward is the sm_90a kernel: extra copies with other K/V ring depths, launchers
   * `fpdt_attn_fwd_st<N>` and `fpdt_attn_fwd_st<N>_sm90` (falling back to `fpdt_attn_fwd_mma`) (benchmarks)
   */
  sm90StageVariants?: number[];
  /** Benchmark copy of the head-dim-64 sm_90a forward with two consumer warpgroups, the programs' until 2026-11-30 (attention_fwd_wg2_sm90.cu, fpdt_attn_fwd_wg2). */
  sm90TwoConsumers?: boolean;
  /** Benchmark copy of the head-dim-64 sm_90a backward whose warpgroups sum partial dQ tiles in shared memory, the programs' until 2026-12 (attention_bwd_dqpartial_sm90.cu, fpdt_attn_bwd_dqpartial). */
  sm90PartialDQBackward?: boolean;
  /** Benchmark copy of the head-dim-128 sm_90a backward whose full blocks start every kv tile at the first q tile, the programs' until 2026-12 (attention_bwd_unrotated_sm90.cu, fpdt_attn_bwd_unrotated). */
  sm90UnrotatedBackward?: boolean;
  /**
   * Benchmark copies of the sm_90a forward and backward whose full blocks run with the heads fastest, the backward
   * split over its q tiles only to shorten the last wave, the programs' until 2026-12-01 (attention_fwd_heads_sm90.cu,
   * attention_bwd_heads_sm90.cu, fpdt_attn_fwd_heads, fpdt_attn_bwd_heads).
   */
  sm90HeadsFastestAttention?: boolean;
  /** Benchmark copy of the sm_90a backward whose band of q rows follows FPDT_BAND_MIB (attention_bwd_band_sm90.cu, fpdt_attn_bwd_band; bench sweeps). */
  sm90BandSweepBackward?: boolean;
}

export class KernelSpecError extends Error {}

const templateDir = fileURLToPath(new URL('../../codegen-templates/kernels/', import.meta.url));
const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(templateDir), {
  autoescape: false,
  throwOnUndefined: true,
  trimBlocks: false,
  // CUDA inline assembly uses `{%0, %1}`: block tags are `<% %>` instead of `{% %}`
  tags: { blockStart: '<%', blockEnd: '%>', variableStart: '{{', variableEnd: '}}', commentStart: '<#', commentEnd: '#>' },
});

function render(template: string, data: object): string {
  const text: unknown = env.render(template, data);
  if (typeof text !== 'string') throw new Error(`kernel template ${template} rendered nothing`);
  return text;
}

export function verifyKernelSpec(spec: KernelSpec): void {
  const ints: (keyof KernelSpec)[] = ['headDim', 'hidden', 'kvHeads', 'qHeads', 'ffn', 'vocab', 'rotaryDim'];
  for (const key of ints) {
    const v = spec[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
      throw new KernelSpecError(`kernel spec: ${key} must be a positive integer, got ${String(v)}`);
  }
  if (spec.headDim % 32 !== 0 || spec.headDim > 256)
    throw new KernelSpecError(`kernel spec: head dim ${spec.headDim} must be a multiple of 32, at most 256`);
  if (spec.qHeads % spec.kvHeads !== 0)
    throw new KernelSpecError(`kernel spec: ${spec.qHeads} query heads are not a multiple of ${spec.kvHeads} kv heads`);
  if (spec.rotaryDim % 2 !== 0 || spec.rotaryDim > spec.headDim)
    throw new KernelSpecError(`kernel spec: rotary dim ${spec.rotaryDim} must be even and at most ${spec.headDim}`);
  if (spec.hidden % 2 !== 0) throw new KernelSpecError(`kernel spec: hidden ${spec.hidden} must be even`);
  if (!(spec.ropeTheta > 0)) throw new KernelSpecError(`kernel spec: rope theta must be positive`);
  const rs = spec.ropeScaling;
  if (rs) {
    if (rs.type !== 'llama3') throw new KernelSpecError(`kernel spec: rope scaling type '${String(rs.type)}' has no kernel`);
    const finite = [rs.factor, rs.lowFreqFactor, rs.highFreqFactor, rs.originalMaxPositions].every(Number.isFinite);
    if (!(finite && rs.factor >= 1 && rs.lowFreqFactor > 0 && rs.highFreqFactor > rs.lowFreqFactor && rs.originalMaxPositions > 0))
      throw new KernelSpecError(
        `kernel spec: rope scaling needs factor >= 1, highFreqFactor > lowFreqFactor > 0 and originalMaxPositions > 0, got ${JSON.stringify(rs)}`,
      );
  }
  if (!(spec.eps > 0)) throw new KernelSpecError(`kernel spec: eps must be positive`);
}

/** Tile shapes measured fastest on H200 for the head dim (see results/kernels.md). */
export function chooseAttentionTiling(spec: KernelSpec): AttentionTiling {
  if (spec.headDim <= 64) return { warps: 4, mw: 1, bc: 128, bwdWarps: 4, bwdBq: 64, bwdDq: 'atomic2' };
  // H200, d=128, S=128K causal (results/kernels.md): forward 8 warps x 32 rows 327 TFLOP/s
  // (4 x 32: 309, 4 x 16: 222); backward fastest with 8 warps and 64-row q tiles
  if (spec.headDim <= 128) return { warps: 8, mw: 2, bc: 64, bwdWarps: 8, bwdBq: 64, bwdDq: 'atomic2' };
  return { warps: 4, mw: 1, bc: 32, bwdWarps: 4, bwdBq: 32, bwdDq: 'atomic2' };
}

/**
 * Threads per row for the norms: enough that each keeps a few bf16 pairs in registers. The backward takes
 * bwdRows rows at a time a CTA of 256 threads (norm_bwd.cuh), so that a CTA's weight-gradient sums cover
 * more rows before its one atomicAdd a column.
 */
function normThreads(hidden: number): { threads: number; pairs: number; bwdRows: number } {
  const threads = hidden >= 4096 ? 256 : hidden >= 1024 ? 128 : 64;
  return { threads, pairs: Math.ceil(hidden / 2 / threads), bwdRows: 256 / threads };
}

/** The widest access of at most 16 bytes (8 bf16) whose element count divides n: RoPE's adjacent pairs per thread. */
export function bf16VectorWidth(n: number): 8 | 4 | 2 | 1 {
  return n % 8 === 0 ? 8 : n % 4 === 0 ? 4 : n % 2 === 0 ? 2 : 1;
}

/** Exact float literal for CUDA source. */
function cudaFloat(x: number): string {
  const s = x.toPrecision(9);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/**
 * The table the rope kernel multiplies positions by, in double: theta^(-2i/rotaryDim), with
 * llama3 scaling applied by wavelength (kept below originalMaxPositions/highFreqFactor, divided
 * by factor above originalMaxPositions/lowFreqFactor, blended linearly in between).
 */
export function ropeInverseFrequencies(spec: Pick<KernelSpec, 'rotaryDim' | 'ropeTheta' | 'ropeScaling'>): number[] {
  const half = spec.rotaryDim / 2;
  const base: number[] = [];
  for (let i = 0; i < half; i++) base.push(Math.pow(spec.ropeTheta, (-2 * i) / spec.rotaryDim));
  const rs = spec.ropeScaling;
  if (!rs) return base;
  const highWavelen = rs.originalMaxPositions / rs.highFreqFactor;
  const lowWavelen = rs.originalMaxPositions / rs.lowFreqFactor;
  return base.map((inv) => {
    const wavelen = (2 * Math.PI) / inv;
    if (wavelen < highWavelen) return inv;
    if (wavelen > lowWavelen) return inv / rs.factor;
    const smooth = (rs.originalMaxPositions / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
    return (1 - smooth) * (inv / rs.factor) + smooth * inv;
  });
}

/** The rope kernel's header line on its frequency scaling; empty without scaling, so unscaled files do not change. */
function ropeScalingNote(rs: RopeScaling | undefined): string {
  if (!rs) return '';
  const [high, low] = [rs.originalMaxPositions / rs.highFreqFactor, rs.originalMaxPositions / rs.lowFreqFactor];
  return (
    `// RoPE scaling ${rs.type} (factor ${rs.factor}, low ${rs.lowFreqFactor}, high ${rs.highFreqFactor}, original ${rs.originalMaxPositions} positions), ` +
    `folded into inv_freq: wavelengths under ${high} kept, over ${low} divided by ${rs.factor}, blended between.\n`
  );
}

function attentionForward(spec: KernelSpec, t: AttentionTiling, suffix: string, docs = false): string {
  const ns = `fpdt_attn_fwd_${spec.headDim}_${t.warps}w${t.mw}_${t.bc}${suffix}`;
  return render('attention_fwd.cu.njk', { headDim: spec.headDim, warps: t.warps, mw: t.mw, bc: t.bc, ns, suffix, docs });
}

/** Whether the attention forward is the wgmma (sm_90a) kernel: Hopper targets, head dims 64 and 128. */
export function usesSm90Forward(spec: KernelSpec): boolean {
  // packed programs call the document-masked mma.sync kernel (the wgmma one takes no ids)
  return spec.target === 'sm90a' && (spec.headDim === 64 || spec.headDim === 128) && spec.packed !== true;
}

/**
 * K/V ring stages of the sm_90a forward. Head dim 128: 2 (the prototype's, measured within 3% of 3 stages
 * on an H200: results/kernels.md). Head dim 64: a K or V tile is 16 KB and its MMAs take half as long, so
 * 4 stages keep the same bytes (and twice the tiles) in flight ahead of the consumers (144 KB with Q).
 */
export function sm90ForwardStages(headDim: number): number {
  return headDim === 64 ? 4 : 2;
}

/**
 * Consumer warpgroups of the sm_90a forward (64 query rows each). Head dim 64: 3 (192 rows a CTA): its
 * softmax is the larger part of an iteration (53-65% of the cycles with 2, profile_fwd.py), and a third
 * warpgroup's GEMMs fill that time; measured 1.12-1.13x the 2-warpgroup kernel, 1.03-1.04x cuDNN, on one
 * H200 (results/kernels.md). Head dim 128: 2 (its registers do not allow 3).
 */
export function sm90ForwardConsumers(headDim: number): 2 | 3 {
  return headDim === 64 ? 3 : 2;
}

/**
 * The sm_90a forward (launchers fpdt_attn_fwd<suffix>_sm90 and fpdt_attn_fwd<suffix>) and the mma.sync
 * kernel it falls back to, renamed fpdt_attn_fwd<suffix>_mma in attention_fwd<suffix>_mma.cu.
 */
function attentionForwardSm90(spec: KernelSpec, t: AttentionTiling, suffix: string): RenderedKernel[] {
  const fallbackSuffix = `${suffix}_mma`;
  return [
    sm90ForwardFile(spec, { suffix, fallbackSuffix }),
    { file: `attention_fwd${fallbackSuffix}.cu`, text: attentionForward(spec, t, fallbackSuffix) },
  ];
}

/** One rendering of the sm_90a forward: the programs' form at this head dim unless told otherwise. */
interface Sm90Forward {
  suffix: string;
  fallbackSuffix: string;
  stages?: number;
  docs?: boolean;
  consumers?: 2 | 3;
  /** full blocks with the heads fastest (bench copy _heads), not the query blocks */
  headsFastest?: boolean;
}

function sm90ForwardFile(spec: KernelSpec, f: Sm90Forward): RenderedKernel {
  const ns = `fpdt_attn_fwd_sm90_${spec.headDim}${f.suffix}`;
  const text = render('attention_fwd_sm90.cu.njk', {
    headDim: spec.headDim, ns, suffix: f.suffix, fallbackSuffix: f.fallbackSuffix, docs: f.docs ?? false,
    stages: f.stages ?? sm90ForwardStages(spec.headDim), consumers: f.consumers ?? sm90ForwardConsumers(spec.headDim),
    bandFull: !(f.docs ?? false) && !(f.headsFastest ?? false),
  });
  return { file: `attention_fwd${f.suffix}_sm90.cu`, text };
}

function attentionForwardFiles(spec: KernelSpec, t: AttentionTiling): RenderedKernel[] {
  if (usesSm90Forward(spec)) return attentionForwardSm90(spec, t, '');
  return [{ file: 'attention_fwd.cu', text: attentionForward(spec, t, '') }];
}

function attentionBackward(spec: KernelSpec, t: AttentionTiling, suffix: string, docs = false): string {
  const ns = `fpdt_attn_bwd_${spec.headDim}_${t.bwdWarps}w_${t.bwdBq}_${t.bwdDq}${suffix}`;
  const dqMode = { atomic2: 0, atomic4: 1, bulk: 2 }[t.bwdDq];
  return render('attention_bwd.cu.njk', { headDim: spec.headDim, warps: t.bwdWarps, bq: t.bwdBq, dqMode, ns, suffix, docs });
}

/** Whether packed programs' document-masked attention is the wgmma (sm_90a) kernels with ids. */
export function usesSm90Documents(spec: KernelSpec): boolean {
  return spec.packed === true && spec.target === 'sm90a' && (spec.headDim === 64 || spec.headDim === 128);
}

/** Whether the attention backward is the wgmma (sm_90a) kernel: Hopper targets, head dims 64 and 128. */
export function usesSm90Backward(spec: KernelSpec): boolean {
  return spec.target === 'sm90a' && (spec.headDim === 64 || spec.headDim === 128) && spec.packed !== true;
}

/**
 * The sm_90a backward (launchers fpdt_attn_bwd<suffix>_sm90 and fpdt_attn_bwd<suffix>) and the mma.sync
 * kernel it falls back to, renamed fpdt_attn_bwd<suffix>_mma in attention_bwd<suffix>_mma.cu.
 */
function attentionBackwardSm90(spec: KernelSpec, t: AttentionTiling, suffix: string, docs = false): RenderedKernel[] {
  const ns = `fpdt_attn_bwd_sm90_${spec.headDim}${suffix}`;
  const fallbackSuffix = `${suffix}_mma`;
  return [
    // full blocks in bands of q tiles that fit the L2, the CTAs running together on one kv head (results/kernels.md
    // 2026-12-01: a full 64K block's backward 1.22-1.25x at head dim 128, 1.01x at 64); at head dim 64 the
    // warpgroups split dQ by columns (forward+backward 0.98x cuDNN against 0.94-0.95x with partial tiles summed
    // in shared memory, results/kernels.md)
    { file: `attention_bwd${suffix}_sm90.cu`, text: render('attention_bwd_sm90.cu.njk', sm90BackwardData(spec, ns, suffix, fallbackSuffix, docs ? 'docs' : 'bands')) },
    { file: `attention_bwd${fallbackSuffix}.cu`, text: attentionBackward(spec, t, fallbackSuffix, docs) },
  ];
}

/** The share of the L2 a full block's band of Q, dO and dq rows may fill (results/kernels.md: 16-64 MiB alike). */
const backwardBandBytes = 32 << 20;

/**
 * The sm_90a backward template's data at this head dim, by how full blocks are run: 'bands' (the programs'),
 * 'bandSweep' (the same, the band's size from FPDT_BAND_MIB), 'heads' (heads fastest, split over the q tiles only
 * to shorten the last wave; each kv tile from its own q tile at head dim 128) or 'docs' (packed documents).
 */
function sm90BackwardData(spec: KernelSpec, ns: string, suffix: string, fallbackSuffix: string,
                          form: 'bands' | 'bandSweep' | 'heads' | 'docs'): object {
  const band = form === 'bands' || form === 'bandSweep';
  return {
    headDim: spec.headDim, ns, suffix, fallbackSuffix, docs: form === 'docs', stages: 2, dqSplit: spec.headDim === 64,
    rotate: band || (form === 'heads' && spec.headDim === 128), split: form === 'heads',
    band, bandBytes: backwardBandBytes, bandEnv: form === 'bandSweep',
  };
}

function attentionBackwardFiles(spec: KernelSpec, t: AttentionTiling): RenderedKernel[] {
  if (usesSm90Backward(spec)) return attentionBackwardSm90(spec, t, '');
  return [{ file: 'attention_bwd.cu', text: attentionBackward(spec, t, '') }];
}

/**
 * Packed documents: attention masked by document ids (launchers fpdt_attn_{fwd,bwd}_docs) and RoPE at given
 * positions (fpdt_rope_{fwd,bwd}_pos). On sm_90a at head dims 64 and 128 the forward and backward are the
 * wgmma kernels with ids (attention_{fwd,bwd}_docs_sm90.cu), falling back to the mma.sync ones renamed
 * fpdt_attn_{fwd,bwd}_docs_mma; the forward keeps two consumer warpgroups at head dim 64 (the form the packed
 * parity suite and the 512K window ran, results/packed.md).
 */
function packedFiles(spec: KernelSpec, t: AttentionTiling, data: object): RenderedKernel[] {
  const sm90 = usesSm90Documents(spec);
  const forward = sm90
    ? [
        sm90ForwardFile(spec, { suffix: '_docs', fallbackSuffix: '_docs_mma', docs: true, consumers: 2 }),
        { file: 'attention_fwd_docs_mma.cu', text: attentionForward(spec, t, '_docs_mma', true) },
      ]
    : [{ file: 'attention_fwd_docs.cu', text: attentionForward(spec, t, '_docs', true) }];
  const backward = sm90 ? attentionBackwardSm90(spec, t, '_docs', true) : [{ file: 'attention_bwd_docs.cu', text: attentionBackward(spec, t, '_docs', true) }];
  return [
    ...forward,
    ...backward,
    { file: 'rope_pos.cu', text: render('rope.cu.njk', { ...data, positions: true }) },
  ];
}

export function renderKernels(spec: KernelSpec, options: RenderOptions = {}): RenderedKernel[] {
  verifyKernelSpec(spec);
  const tiling = options.tiling ?? chooseAttentionTiling(spec);
  const norm = normThreads(spec.hidden);
  const data = {
    ...spec,
    eps: cudaFloat(spec.eps),
    threads: norm.threads,
    pairs: norm.pairs,
    normBwdRows: norm.bwdRows,
    invFreq: ropeInverseFrequencies(spec).map((x) => x.toPrecision(17)).join(', '),
    ropeScalingNote: ropeScalingNote(spec.ropeScaling),
    ropeVector: bf16VectorWidth(spec.rotaryDim / 2),
    positions: false,
  };
  const normFile = spec.norm === 'rms' ? 'norm_rms.cu' : 'norm_layer.cu';
  const mlpFile = spec.mlp === 'swiglu' ? 'mlp_swiglu.cu' : 'mlp_gelu.cu';
  const files: RenderedKernel[] = [
    ...attentionForwardFiles(spec, tiling),
    ...attentionBackwardFiles(spec, tiling),
  ];
  for (const name of ['attention_util.cu', normFile, 'rope.cu', mlpFile, 'embedding.cu', 'loss.cu', 'optimizer.cu', 'elementwise.cu'])
    files.push({ file: name, text: render(`${name}.njk`, data) });
  if (spec.packed) files.push(...packedFiles(spec, tiling, data));
  for (const v of options.attentionVariants ?? []) {
    // tile-shape variants of the mma.sync kernel (the sm90 kernel has no tiling choice)
    files.push({ file: `attention_fwd${v.suffix}.cu`, text: attentionForward(spec, v.tiling, v.suffix) });
    files.push({ file: `attention_bwd${v.suffix}.cu`, text: attentionBackward(spec, v.tiling, v.suffix) });
  }
  if (usesSm90Forward(spec))
    for (const stages of options.sm90StageVariants ?? []) files.push(sm90ForwardFile(spec, { suffix: `_st${stages}`, fallbackSuffix: '_mma', stages, consumers: 2 }));
  if (options.sm90TwoConsumers && usesSm90Forward(spec) && spec.headDim === 64)
    files.push(sm90ForwardFile(spec, { suffix: '_wg2', fallbackSuffix: '_mma', consumers: 2 }));
  if (options.sm90HeadsFastestAttention && usesSm90Forward(spec)) files.push(sm90ForwardFile(spec, { suffix: '_heads', fallbackSuffix: '_mma', headsFastest: true }));
  if (options.sm90HeadsFastestAttention && usesSm90Backward(spec)) {
    const ns = `fpdt_attn_bwd_sm90_${spec.headDim}_heads`;
    files.push({ file: 'attention_bwd_heads_sm90.cu', text: render('attention_bwd_sm90.cu.njk', sm90BackwardData(spec, ns, '_heads', '_mma', 'heads')) });
  }
  if (options.sm90BandSweepBackward && usesSm90Backward(spec)) {
    const ns = `fpdt_attn_bwd_sm90_${spec.headDim}_band`;
    files.push({ file: 'attention_bwd_band_sm90.cu', text: render('attention_bwd_sm90.cu.njk', sm90BackwardData(spec, ns, '_band', '_mma', 'bandSweep')) });
  }
  if (options.sm90UnrotatedBackward && usesSm90Backward(spec) && spec.headDim === 128) {
    const ns = `fpdt_attn_bwd_sm90_${spec.headDim}_unrotated`;
    files.push({ file: 'attention_bwd_unrotated_sm90.cu', text: render('attention_bwd_sm90.cu.njk', { headDim: spec.headDim, ns, suffix: '_unrotated', fallbackSuffix: '_mma', docs: false, rotate: false, stages: 2, dqSplit: false, split: false }) });
  }
  if (options.sm90PartialDQBackward && usesSm90Backward(spec) && spec.headDim === 64) {
    const ns = `fpdt_attn_bwd_sm90_${spec.headDim}_dqpartial`;
    const data = { ...sm90BackwardData(spec, ns, '_dqpartial', '_mma', 'bands'), dqSplit: false };
    files.push({ file: 'attention_bwd_dqpartial_sm90.cu', text: render('attention_bwd_sm90.cu.njk', data) });
  }
  const prototypes = files.flatMap((f) => launcherPrototypes[f.file] ?? []);
  files.push({ file: 'fpdt_kernels.h', text: render('fpdt_kernels.h.njk', { spec, prototypes }) });
  return files;
}
