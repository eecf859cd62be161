// Device profiles: the few numbers the memory planner and the cost model need about a GPU
// and the host it sits in. Rates are *achievable* rates (what a good kernel or copy reaches),
// not datasheet peaks, except `peakFlops`, which exists only to report MFU by the one
// convention in ANCHORS.md (model FLOPs / (step time * dense bf16 peak)).
//
// Measured rates come from a calibration file (calibration.ts, ./calibration/<file>.json, written
// by test/bench/calibrate.py on the GPU host): where a profile names one, its rates replace the
// hand-written ones below. What is measured and what is assumed:
// - h200: calibration/h200.json measures attention (our kernels: wgmma and the mma.sync fallback,
//   per head dim, direction, block form and length), GEMM, pinned copies each way and both ways,
//   device copies and our element-wise kernels. Still assumed: NVLink and inter-node rates, the
//   fixed costs per kernel, copy and collective.
// - h100 (SXM): the same GH100 chip as the h200, so it takes the h200 file's attention and GEMM
//   rates (an assumption: the H100's lower HBM bandwidth may slow the memory-bound parts of the
//   backward); its HBM (3.35 TB/s datasheet x 0.85) and host links stay hand-written.
// - a100: no calibration; bf16 GEMM ~280 TFLOP/s achievable of 312 peak; HBM 2.0 (80 GB) / 1.5
//   (40 GB) TB/s datasheet x 0.85; PCIe gen4 x16 pinned copies ~25 GB/s each way, ~45 both ways;
//   attention as fractions of the GEMM rate (FlashAttention-2 on an A100 reaches ~0.7 forward,
//   ~0.55 backward; assumed, not measured here).
// - Hand-written h200 rates, used where the file says nothing: ANCHORS.md (cuBLAS bf16 GEMM 8192^3
//   774 TFLOP/s, d2d 4.24 TB/s, pinned h2d/d2h 55.5/55.3 GB/s, 99.4 both ways), and attention at
//   0.42 / 0.30 of the GEMM rate (the mma.sync kernels at 128K, results/kernels.md).
// - NVLink all-to-all bus bandwidth per GPU: NVLink4 (h100/h200) 900 GB/s bidirectional, of which
//   nccl-tests reach ~450 GB/s bus bandwidth one way; NVLink3 (a100) 600 -> ~240.
// - Across nodes, one 400 Gb/s NIC per GPU: ~45 GB/s per GPU achievable (NDR InfiniBand, a100
//   nodes with HDR 200 Gb/s: ~22 GB/s).
// - Host memory per GPU: a DGX H100/H200 node has 2 TiB for 8 GPUs, a DGX A100 640GB 2 TiB
//   (the 320GB model: 1 TiB, our a100-40g); we
//   leave ~10% for the OS and pageable memory. Our single-GPU test host has 125 GiB: pass
//   `hostMemGiB` (the `--host-mem` flag) there.
import { errors } from '../errors.js';
import { loadCalibration, type AttnKernel, type Calibration } from './calibration.js';

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
  /** fraction of `gemmFlops` our attention kernels reach, where no calibration curve covers a block */
  readonly attnEfficiency: number;
  /** the attention backward block's fraction of the GEMM rate, likewise */
  readonly attnBwdEfficiency: number;
  /** the attention kernels a program for this GPU runs (kernels.ts: wgmma on sm_90a, else mma.sync) */
  readonly attnKernel: AttnKernel;
  /** measured rates laid over this profile (attention curves, their source), when a file exists */
  readonly calibration?: Calibration;
  /** our element-wise kernels' bytes per second by op ('default' for the rest); else `hbmBps` */
  readonly elementwiseBps?: Calibration['elementwiseBps'];
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
  attnKernel: 'sm90',
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
  attnKernel: 'mma',
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

/**
 * Which calibration file each profile reads, and which of its rates: 'all', or 'chip' (attention
 * and GEMM only: another board of the same chip, whose memory and host links differ).
 */
const CALIBRATED: Readonly<Record<string, { file: string; rates: 'all' | 'chip' }>> = {
  h200: { file: 'h200.json', rates: 'all' },
  h100: { file: 'h200.json', rates: 'chip' },
};

/** The rates of `c` that apply, laid over a hand-written profile. */
function calibrated(b: BaseProfile, c: Calibration, rates: 'all' | 'chip'): BaseProfile & Pick<DeviceProfile, 'calibration' | 'elementwiseBps'> {
  const chip = { ...b, calibration: c, gemmFlops: c.gemmFlops ?? b.gemmFlops };
  if (rates === 'chip') return chip;
  return {
    ...chip,
    h2dBps: c.h2dBps ?? b.h2dBps,
    d2hBps: c.d2hBps ?? b.d2hBps,
    bothWaysBps: c.bothWaysBps ?? b.bothWaysBps,
    hbmBps: c.d2dBps ?? b.hbmBps,
    ...(c.elementwiseBps ? { elementwiseBps: c.elementwiseBps } : {}),
  };
}

/** Share of the node's host memory one rank may pin: its 1/gpusPerNode, minus 10% for the OS. */
const hostShare = (b: BaseProfile): number => Math.floor((0.9 * b.hostNodeBytes) / b.gpusPerNode);

/**
 * The profile of a named device. `hostMemGiB` overrides the pinned host memory per rank
 * (e.g. 110 on a single-GPU host with 125 GiB). `calibration: false` gives the hand-written rates
 * alone (to see what a calibration changes).
 */
export function deviceProfile(name: string, opts: { hostMemGiB?: number; calibration?: boolean } = {}): DeviceProfile {
  const hand = BASE[name];
  if (!hand) throw errors.unknownDevice(name, DEVICE_NAMES);
  const cal = opts.calibration === false ? undefined : CALIBRATED[name];
  const b = cal ? calibrated(hand, loadCalibration(cal.file), cal.rates) : hand;
  const { hostNodeBytes: _node, ...rest } = b;
  return {
    name,
    ...rest,
    gpuMemBytes: usableGpuBytes(b.gpuMemTotalBytes),
    hostMemBytes: opts.hostMemGiB !== undefined ? opts.hostMemGiB * GiB : hostShare(b),
  };
}
