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
import type { Instr } from './types.js';

export type OpClass = 'gemm' | 'attention' | 'elementwise' | 'copy' | 'collective';

const GEMM_OPS = new Set(['linear', 'linear_dx', 'linear_dw', 'matmul', 'gemm']);
const ATTENTION_OPS = new Set(['attn_fwd_block', 'attn_bwd_block']);
const COLLECTIVES = new Set(['all_to_all', 'all_gather', 'reduce_scatter', 'all_reduce']);

export function opClass(op: string): OpClass {
  if (op === 'copy') return 'copy';
  if (COLLECTIVES.has(op)) return 'collective';
  if (ATTENTION_OPS.has(op) || op.startsWith('attn_')) return 'attention';
  if (GEMM_OPS.has(op)) return 'gemm';
  return 'elementwise';
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
  if (n <= 1) return 0;
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
  switch (opClass(ins.op)) {
    case 'copy': {
      const dir = typeof ins.attrs.dir === 'string' ? ins.attrs.dir : ins.stream === 'd2h' ? 'd2h' : 'h2d';
      return copySeconds(ins.bytes, dir, dev, ctx.bothWays ?? 0);
    }
    case 'collective': {
      const n = typeof ins.attrs.ranks === 'number' ? ins.attrs.ranks : ctx.world;
      return collectiveSeconds(ins.op, ins.bytes, n, dev);
    }
    case 'attention':
      // the blocks multiply matrices; init, finalize and the backward's prep stream memory
      if (!ATTENTION_OPS.has(ins.op)) return elementwiseSeconds(ins, dev);
      return kernelSeconds(ins.flops, ins.bytes, attentionFlops(ins, dev), dev);
    case 'gemm':
      return kernelSeconds(ins.flops, ins.bytes, dev.gemmFlops, dev);
    case 'elementwise':
      return elementwiseSeconds(ins, dev);
  }
}
