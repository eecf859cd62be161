// Device profiles: the few numbers the memory planner and the cost model need about a GPU
// and the host it sits in. Rates are *achievable* rates (what a good kernel or copy reaches),
// not datasheet peaks, except `peakFlops`, which exists only to report MFU by the one
// convention in ANCHORS.md (model FLOPs / (step time * dense bf16 peak)).
//
// Sources and assumptions:
// - h200: measured on our test host (ANCHORS.md): cuBLAS bf16 GEMM 8192^3 774 TFLOP/s, d2d copy
//   4.24 TB/s (read + written), pinned h2d/d2h 55.5/55.3 GB/s, 99.4 GB/s both ways at once.
// - h100 (SXM): the same GH100 chip, so the same GEMM rate; HBM3 3.35 TB/s datasheet x 0.85
//   achievable; PCIe gen5 host links like the h200's.
// - a100: bf16 GEMM ~280 TFLOP/s achievable of 312 peak; HBM 2.0 (80 GB) / 1.5 (40 GB) TB/s
//   datasheet x 0.85; PCIe gen4 x16 pinned copies ~25 GB/s each way, ~45 both ways.
// - NVLink all-to-all bus bandwidth per GPU: NVLink4 (h100/h200) 900 GB/s bidirectional, of which
//   nccl-tests reach ~450 GB/s bus bandwidth one way; NVLink3 (a100) 600 -> ~240.
// - Across nodes, one 400 Gb/s NIC per GPU: ~45 GB/s per GPU achievable (NDR InfiniBand, a100
//   nodes with HDR 200 Gb/s: ~22 GB/s).
// - Attention efficiency: our attention kernels (mma.sync, FlashAttention-2 style), measured on the
//   h200 at 128K causal (results/kernels.md): forward 327 TFLOP/s = 0.42 of the GEMM rate; forward
//   + backward 254 TFLOP/s (3.5x the forward FLOPs), so the backward alone runs at ~233 = 0.30.
//   The h100 runs the same code on the same chip. On an A100 (assumed, not measured here) FA2
//   reaches ~0.7 of the GEMM rate forward and ~0.55 backward.
// - Host memory per GPU: a DGX H100/H200 node has 2 TiB for 8 GPUs, a DGX A100 640GB 2 TiB
//   (the 320GB model: 1 TiB, our a100-40g); we
//   leave ~10% for the OS and pageable memory. Our single-GPU test host has 125 GiB: pass
//   `hostMemGiB` (the `--host-mem` flag) there.
import { errors } from '../errors.js';

const GiB = 1024 ** 3;

export interface DeviceProfile {
  readonly name: string;
  /** total GPU memory as the driver reports it */
  readonly gpuMemTotalBytes: number;
  /** what our arena may use: total minus the CUDA context, cuBLAS workspaces and allocator slack */
  readonly gpuMemBytes: number;
  /** pinned host memory this rank may use */
  readonly hostMemBytes: number;
  /** pinned host -> device, device -> host, and both directions at once (total), bytes/s */
  readonly h2dBps: number;
  readonly d2hBps: number;
  readonly bothWaysBps: number;
  /** all-to-all / ring bus bandwidth per GPU inside a node, bytes/s */
  readonly nvlinkBps: number;
  /** per GPU across nodes, bytes/s */
  readonly interNodeBps: number;
  readonly gpusPerNode: number;
  /** device memory bandwidth for streaming kernels (bytes read + written per second) */
  readonly hbmBps: number;
  /** achievable dense bf16 GEMM rate, FLOP/s */
  readonly gemmFlops: number;
  /** fraction of `gemmFlops` our attention kernels reach */
  readonly attnEfficiency: number;
  /** the attention backward block's fraction of the GEMM rate */
  readonly attnBwdEfficiency: number;
  /** datasheet dense bf16 peak, for MFU only */
  readonly peakFlops: number;
  /** fixed cost per kernel (launch, ramp, tail), seconds */
  readonly kernelOverheadS: number;
  /** fixed cost per host<->device copy, seconds */
  readonly copyOverheadS: number;
  /** fixed cost per collective (NCCL launch + latency), seconds; doubled across nodes */
  readonly collectiveLatencyS: number;
}

/** Usable memory: leave 5% of the card, and at least 2 GiB, to the CUDA context and allocator. */
export const usableGpuBytes = (total: number): number => total - Math.max(0.05 * total, 2 * GiB);

interface BaseProfile extends Omit<DeviceProfile, 'gpuMemBytes' | 'hostMemBytes' | 'name'> {
  readonly hostNodeBytes: number;
}

const H200: BaseProfile = {
  gpuMemTotalBytes: 143771 * 1024 ** 2, // 141 GB HBM3e as nvidia-smi reports it
  hostNodeBytes: 2048 * GiB,
  gpusPerNode: 8,
  h2dBps: 55.5e9,
  d2hBps: 55.3e9,
  bothWaysBps: 99.4e9,
  nvlinkBps: 450e9,
  interNodeBps: 45e9,
  hbmBps: 4.24e12,
  gemmFlops: 774e12,
  attnEfficiency: 0.42,
  attnBwdEfficiency: 0.3,
  peakFlops: 989e12,
  kernelOverheadS: 4e-6,
  copyOverheadS: 8e-6,
  collectiveLatencyS: 20e-6,
};

const A100_80G: BaseProfile = {
  gpuMemTotalBytes: 81920 * 1024 ** 2,
  hostNodeBytes: 2048 * GiB, // DGX A100 640GB: 2 TB system memory for 8 GPUs
  gpusPerNode: 8,
  h2dBps: 25e9,
  d2hBps: 25e9,
  bothWaysBps: 45e9,
  nvlinkBps: 240e9,
  interNodeBps: 22e9,
  hbmBps: 2.0e12 * 0.85,
  gemmFlops: 280e12,
  attnEfficiency: 0.7,
  attnBwdEfficiency: 0.55,
  peakFlops: 312e12,
  kernelOverheadS: 5e-6,
  copyOverheadS: 10e-6,
  collectiveLatencyS: 25e-6,
};

const BASE: Record<string, BaseProfile> = {
  h200: H200,
  // the same GH100 chip and host links as the h200: less and slower HBM
  h100: { ...H200, gpuMemTotalBytes: 81559 * 1024 ** 2, hbmBps: 3.35e12 * 0.85 },
  'a100-80g': A100_80G,
  // DGX A100 320GB: 1 TB of system memory, HBM2 at 1.5 TB/s
  'a100-40g': { ...A100_80G, gpuMemTotalBytes: 40960 * 1024 ** 2, hostNodeBytes: 1024 * GiB, hbmBps: 1.5e12 * 0.85 },
};

export const DEVICE_NAMES: readonly string[] = Object.keys(BASE);

/** Share of the node's host memory one rank may pin: its 1/gpusPerNode, minus 10% for the OS. */
const hostShare = (b: BaseProfile): number => Math.floor((0.9 * b.hostNodeBytes) / b.gpusPerNode);

/**
 * The profile of a named device. `hostMemGiB` overrides the pinned host memory per rank
 * (e.g. 110 on a single-GPU host with 125 GiB).
 */
export function deviceProfile(name: string, opts: { hostMemGiB?: number } = {}): DeviceProfile {
  const b = BASE[name];
  if (!b) throw errors.unknownDevice(name, DEVICE_NAMES);
  const { hostNodeBytes: _node, ...rest } = b;
  return {
    name,
    ...rest,
    gpuMemBytes: usableGpuBytes(b.gpuMemTotalBytes),
    hostMemBytes: opts.hostMemGiB !== undefined ? opts.hostMemGiB * GiB : hostShare(b),
  };
}
