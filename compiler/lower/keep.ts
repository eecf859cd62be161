// The planner's trade between host memory and recomputation: attention is the most expensive
// part of recomputing a layer at long context, and FPDT already writes each chunk's q, k, v, o
// and lse to host memory. Keeping them for the last K layers skips those layers' attention
// recompute. K is the most layers whose kept tensors fit in the memory the plan leaves (host
// memory with offload, GPU memory without), within SLACK of it. Where activations stay on the GPU
// (no offload), the GPU memory still left keeps activations too (kept-activations.ts).
import type { Graph } from '../ir/types.js';
import type { DeviceProfile } from '../schedule/devices.js';
import { planMemory, type MemoryPlan } from '../schedule/memory.js';
import type { Schedule } from '../schedule/types.js';
import { lowerStep, type KeepForm } from './step.js';

/** Memory the plan keeps free for what it does not see (the process, the OS, allocator slack). */
const SLACK = 0.9;

export interface KeepChoice {
  readonly schedule: Schedule;
  readonly plan: MemoryPlan;
  readonly keep: number;
}

interface Trial extends KeepChoice {
  readonly form: KeepForm;
  readonly acts: number;
}

/**
 * The kept layers and what they keep. A count given by the user is taken as given, keeping all of
 * q, k, v, o, lse where that fits and the outputs o, lse where only those do. With auto: the most
 * layers that fit keeping all; where that is not every layer, the most that fit keeping the outputs,
 * if more (each layer kept that way skips its attention forward for a few percent of it in projections).
 * Then, without offload, the most layers whose activations (the GEMM outputs the backward would
 * recompute) fit on the GPU beside that.
 */
export function chooseKeptLayers(g: Graph, dev: DeviceProfile): KeepChoice {
  const gpuCheckpointLayers = chooseGpuCheckpoints(g, dev);
  const gpuStashes = chooseGpuStashes(g, dev, gpuCheckpointLayers);
  const lowerWith = (keep: number, form: KeepForm, acts = 0): Trial => {
    const schedule = lowerStep(g, { keepLayers: keep, keepForm: form, keepActivations: acts, gpuCheckpointLayers, gpuStashes });
    return { schedule, plan: planMemory(schedule, dev), keep: schedule.keptLayers ?? 0, form, acts: schedule.keptActivationLayers ?? 0 };
  };
  // kept tensors go where the stream of chunks goes: host memory with offload, else the GPU
  const arena = g.config.offload && g.config.fpdt ? 'host' : 'gpu';
  const fits = (c: KeepChoice, where: 'host' | 'gpu' = arena) => c.plan.fits && c.plan[where].size <= SLACK * c.plan[where].budget;
  const attention = chooseAttention(g, lowerWith, fits);
  const wantActs = g.config.keepActivations ?? 'auto';
  if (wantActs !== 'auto') return wantActs === 0 ? attention : lowerWith(attention.keep, attention.form, wantActs);
  if (arena !== 'gpu' || !fits(attention, 'gpu')) return attention;
  // the most layers that also keep their activations on the GPU (a binary search, as for attention)
  let best = attention;
  let lo = 0;
  let hi = g.sizes.L;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    const c = lowerWith(attention.keep, attention.form, mid);
    if (c.acts === 0) break; // the model has no activations to keep
    if (fits(c, 'gpu')) {
      best = c;
      lo = mid;
    } else hi = mid - 1;
  }
  return best;
}

function chooseAttention(g: Graph, lowerWith: (keep: number, form: KeepForm) => Trial, fits: (c: KeepChoice) => boolean): Trial {
  const want = g.config.keepAttention ?? 'auto';
  const form = g.config.keepForm;
  if (want !== 'auto' && form) return lowerWith(want, form);
  if (want !== 'auto') {
    const all = lowerWith(want, 'all');
    if (fits(all) || all.keep === 0) return all;
    const outputs = lowerWith(want, 'outputs');
    return fits(outputs) ? outputs : all;
  }
  const none = lowerWith(0, 'all');
  if (!none.plan.fits) return none;
  // the most layers that fit: memory grows with the count, so a binary search over 0..L (the plan may
  // place the first kept layers in room it has anyway, so the count does not follow from one layer's size)
  const most = (form: KeepForm, from: Trial): Trial => {
    let best = from;
    let lo = from.keep;
    let hi = g.sizes.L;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      const c = lowerWith(mid, form);
      if (c.keep === 0) break; // the model keeps nothing (no attention to keep)
      if (fits(c)) {
        best = c;
        lo = mid;
      } else hi = mid - 1;
    }
    return best;
  };
  if (form) return most(form, none);
  const all = most('all', none);
  return all.keep === g.sizes.L ? all : most('outputs', all);
}

/**
 * With checkpoints on the host, the last layers whose checkpoints stay on the GPU: none where the host
 * holds every layer's; else the fewest that make the plan fit (a binary search: host memory falls and
 * GPU memory grows with the count), or none where no count does (the plan then says what is over).
 */
function chooseGpuCheckpoints(g: Graph, dev: DeviceProfile): number {
  const want = g.config.gpuCheckpoints ?? 'auto';
  if (want !== 'auto') return want;
  if (g.config.checkpoint !== 'host') return 0;
  const planWith = (n: number) => planMemory(lowerStep(g, { gpuCheckpointLayers: n }), dev);
  const none = planWith(0);
  // the host holds every layer's checkpoint (or what is over is not the host)
  if (none.fits || none.host.size <= none.host.budget) return 0;
  let found = 0;
  let lo = 1;
  let hi = g.sizes.L;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const p = planWith(mid);
    if (p.fits) {
      found = mid;
      hi = mid - 1;
    } else if (p.host.size > p.host.budget) lo = mid + 1; // the host is still over: more on the GPU
    else hi = mid - 1; // the GPU is over: fewer
  }
  return found;
}

/**
 * With offload, whether a layer's working stashes go to the GPU. They are reused by every layer, so they
 * cost a layer's worth of GPU memory; the blocks then read their operands without copies and the host
 * keeps its room for what grows with the layers (llama1b at 512K: a sixth of the copy stream's time,
 * 167.1 s against 167.9 s a step, results/step.md). `--stashes gpu` or `host` is taken as given; auto puts
 * them on the GPU where that plan fits within SLACK of the GPU, else leaves them on the host (FPDT's
 * own placement, which the longest sequences need).
 */
function chooseGpuStashes(g: Graph, dev: DeviceProfile, gpuCheckpointLayers: number): boolean {
  if (!(g.config.offload && g.config.fpdt) || g.config.stashes === 'host') return false;
  if (g.config.stashes === 'gpu') return true;
  const plan = planMemory(lowerStep(g, { gpuCheckpointLayers, gpuStashes: true }), dev);
  return plan.fits && plan.gpu.size <= SLACK * plan.gpu.budget;
}
