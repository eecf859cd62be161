// Per-instruction durations from an instruction's op, flops, bytes and the device profile.
//
// What `bytes` means, by op class (the lowering fills it in this sense):
// - compute kernels: bytes read + written in device memory (roofline against HBM);
// - copy (attrs.dir 'h2d' | 'd2h' | 'd2d'): the size of the transfer;
// - collectives (attrs.ranks = ranks n, default the schedule's world): the full per-rank buffer:
//   all_to_all its input (= output) size, all_gather the gathered output, reduce_scatter the
//   unreduced input, all_reduce the buffer. Each moves (n-1)/n of it (all_reduce twice that).
import { attentionRate } from './calibration.js';
import type { DeviceProfile } from './devices.js';
import { isOpName, type OpName } from './ops.js';
import type { Instr } from './types.js';

export type OpClass = 'gemm' | 'attention' | 'elementwise' | 'copy' | 'collective';

/**
 * How each op of the catalog (ops.ts) is priced: its class (how `inspect` groups it) and the rate
 * it runs at. The attention blocks multiply matrices at the attention kernels' rate; attention's
 * init, finalize and prep are attention by class but stream memory like element-wise kernels.
 */
type Rate = 'copy' | 'collective' | 'gemm' | 'attention' | 'elementwise';
const ew = { cls: 'elementwise', rate: 'elementwise' } as const;
const attnStream = { cls: 'attention', rate: 'elementwise' } as const;
const gemm = { cls: 'gemm', rate: 'gemm' } as const;
const comm = { cls: 'collective', rate: 'collective' } as const;
const OP_COST: { readonly [K in OpName]: { readonly cls: OpClass; readonly rate: Rate } } = {
  fill: ew,
  copy: { cls: 'copy', rate: 'copy' },
  all_gather: comm,
  reduce_scatter: comm,
  all_reduce: comm,
  all_to_all: comm,
  embedding: ew,
  embedding_bwd: ew,
  linear: gemm,
  linear_dx: gemm,
  linear_dx_add: gemm,
  linear_dw: gemm,
  linear_db: ew,
  rmsnorm: ew,
  layernorm: ew,
  rmsnorm_bwd: ew,
  layernorm_bwd: ew,
  rope: ew,
  rope_bwd: ew,
  swiglu: ew,
  swiglu_bwd: ew,
  gelu: ew,
  gelu_bwd: ew,
  add: ew,
  cross_entropy: ew,
  cross_entropy_bwd: ew,
  attn_init: attnStream,
  attn_fwd_block: { cls: 'attention', rate: 'attention' },
  attn_finalize: attnStream,
  attn_bwd_prep: attnStream,
  attn_bwd_block: { cls: 'attention', rate: 'attention' },
  attn_bwd_finalize: attnStream,
  adamw: ew,
  grad_accumulate: ew,
  grad_sumsq: ew,
};

/** The class of an op; a name not in the catalog (from a foreign trace) counts as element-wise. */
export function opClass(op: string): OpClass {
  return isOpName(op) ? OP_COST[op].cls : 'elementwise';
}

/** A kernel on tensor cores: the slower of its math and its memory traffic (roofline). */
export function kernelSeconds(flops: number, bytes: number, rate: number, dev: DeviceProfile): number {
  return Math.max(flops / rate, bytes / dev.hbmBps) + dev.kernelOverheadS;
}

/**
 * Host<->device copies over PCIe. `bothWays` is the fraction (0..1) of this copy's time during
 * which the opposite direction also runs: then both share `bothWaysBps`, in proportion to their
 * one-way rates. d2d copies read and write device memory, so they cost 2*bytes of HBM traffic.
 */
export function copySeconds(bytes: number, dir: string, dev: DeviceProfile, bothWays = 0): number {
  if (dir === 'd2d') return (2 * bytes) / dev.hbmBps + dev.kernelOverheadS;
  const oneWay = dir === 'd2h' ? dev.d2hBps : dev.h2dBps;
  const base = bytes / oneWay;
  // sharing slows a copy by (h2d + d2h) / bothWays (1.11 on the h200) while both run
  const slowdown = Math.max(1, (dev.h2dBps + dev.d2hBps) / dev.bothWaysBps);
  return base * (1 + Math.min(1, Math.max(0, bothWays)) * (slowdown - 1)) + dev.copyOverheadS;
}

/**
 * Collectives over n ranks: each rank moves (n-1)/n of the buffer (all_reduce: 2(n-1)/n, a
 * reduce-scatter then an all-gather). Within a node the bus is NVLink; past `gpusPerNode` ranks
 * an all-to-all sends (n-g)/n of the buffer off-node and a ring is held to the slowest link.
 */
export function collectiveSeconds(op: string, bytes: number, n: number, dev: DeviceProfile): number {
  // one rank: an all-to-all is still the layout change between token rows and heads, a device copy
  // (llama1b at 64K, sp 1: 128 of them, 27 ms a step measured); the others move nothing
  if (n <= 1) return op === 'all_to_all' ? (2 * bytes) / (dev.elementwiseBps?.default ?? dev.hbmBps) + dev.kernelOverheadS : 0;
  const g = dev.gpusPerNode;
  const multiNode = n > g;
  const latency = dev.collectiveLatencyS * (multiNode ? 2 : 1);
  if (op === 'all_to_all') {
    if (!multiNode) return ((n - 1) / n) * (bytes / dev.nvlinkBps) + latency;
    const inside = ((g - 1) / n) * (bytes / dev.nvlinkBps);
    const outside = ((n - g) / n) * (bytes / dev.interNodeBps);
    return Math.max(inside, outside) + latency;
  }
  const bw = multiNode ? Math.min(dev.nvlinkBps, dev.interNodeBps) : dev.nvlinkBps;
  const factor = op === 'all_reduce' ? 2 : 1;
  return factor * ((n - 1) / n) * (bytes / bw) + latency;
}

export interface CostContext {
  /** ranks of a collective when the instruction does not say (attrs.group) */
  readonly world: number;
  /** fraction of a copy's time the opposite copy direction also runs */
  readonly bothWays?: number;
}

/** Streaming kernels: memory-bound (their flops are negligible next to their bytes), at our kernels' measured rate where calibrated. */
function elementwiseSeconds(ins: Instr, dev: DeviceProfile): number {
  const bps = dev.elementwiseBps?.[ins.op] ?? dev.elementwiseBps?.default ?? dev.hbmBps;
  return ins.bytes / bps + dev.kernelOverheadS;
}

/**
 * The rate of an attention block: the calibration's measured curve for the kernel the program
 * runs (kernels.ts: Hopper programs run wgmma kernels at head dims 64 and 128, except for packed
 * documents or q lengths not a multiple of 64, where the mma.sync kernel runs), else the
 * profile's fraction of the GEMM rate. Other attention kernels (init, finalize) are priced as
 * blocks at the forward rate by their flops (none) and bytes.
 */
function attentionFlops(ins: Instr, dev: DeviceProfile): number {
  const dir = ins.op === 'attn_bwd_block' ? 'bwd' : 'fwd';
  const fallback = dev.gemmFlops * (dir === 'bwd' ? dev.attnBwdEfficiency : dev.attnEfficiency);
  const a = ins.attrs;
  if (!dev.calibration || typeof a.d !== 'number' || typeof a.lq !== 'number' || typeof a.lk !== 'number') return fallback;
  const wgmma = dev.attnKernel === 'sm90' && (a.d === 64 || a.d === 128) && a.packed !== true && a.lq % 64 === 0;
  const len = Math.sqrt(a.lq * a.lk);
  return attentionRate(dev.calibration.attention, { kernel: wgmma ? 'sm90' : 'mma', headDim: a.d, dir, causal: a.causal === true, len }) ?? fallback;
}

/** Seconds one instruction takes on its stream, once it starts. */
export function instrSeconds(ins: Instr, dev: DeviceProfile, ctx: CostContext): number {
  switch (OP_COST[ins.op].rate) {
    case 'copy': {
      const dir = typeof ins.attrs.dir === 'string' ? ins.attrs.dir : ins.stream === 'd2h' ? 'd2h' : 'h2d';
      // an instruction's bytes count its reads and its writes: a copy moves half of them
      return copySeconds(ins.bytes / 2, dir, dev, ctx.bothWays ?? 0);
    }
    case 'collective': {
      const n = typeof ins.attrs.ranks === 'number' ? ins.attrs.ranks : ctx.world;
      return collectiveSeconds(ins.op, ins.bytes, n, dev);
    }
    case 'attention':
      return kernelSeconds(ins.flops, ins.bytes, attentionFlops(ins, dev), dev);
    case 'gemm':
      return kernelSeconds(ins.flops, ins.bytes, dev.gemmFlops, dev);
    case 'elementwise':
      return elementwiseSeconds(ins, dev);
  }
}
