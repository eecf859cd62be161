// The planner's trade between host memory and recomputation: attention is the most expensive
// part of recomputing a layer at long context, and FPDT already writes each chunk's q, k, v, o
// and lse to host memory. Keeping them for the last K layers skips those layers' attention
// recompute. K is the most layers whose kept tensors fit in the memory the plan leaves (host
// memory with offload, GPU memory without), within SLACK of it.
import type { Graph } from '../ir/types.js';
import type { DeviceProfile } from '../schedule/devices.js';
import { planMemory, type MemoryPlan } from '../schedule/memory.js';
import type { Schedule } from '../schedule/types.js';
import { lowerStep } from './step.js';

/** Memory the plan keeps free for what it does not see (the process, the OS, allocator slack). */
const SLACK = 0.9;

export interface KeepChoice {
  readonly schedule: Schedule;
  readonly plan: MemoryPlan;
  readonly keep: number;
}

export function chooseKeptLayers(g: Graph, dev: DeviceProfile): KeepChoice {
  const lowerWith = (keep: number): KeepChoice => {
    const schedule = lowerStep(g, { keepLayers: keep });
    return { schedule, plan: planMemory(schedule, dev), keep: schedule.keptLayers ?? 0 };
  };
  const want = g.config.keepAttention ?? 'auto';
  if (want !== 'auto') return lowerWith(want);
  const none = lowerWith(0);
  if (!none.plan.fits) return none;
  // kept tensors go where the stream of chunks goes: host memory with offload, else the GPU
  const arena = g.config.offload && g.config.fpdt ? 'host' : 'gpu';
  const fits = (c: KeepChoice) => c.plan.fits && c.plan[arena].size <= SLACK * c.plan[arena].budget;
  // the most layers that fit: memory grows with the count, so a binary search over 0..L (the plan may
  // place the first kept layers in room it has anyway, so the count does not follow from one layer's size)
  let best = none;
  let lo = 0;
  let hi = g.sizes.L;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    const c = lowerWith(mid);
    if (c.keep === 0) break; // the model keeps nothing (no attention to keep)
    if (fits(c)) {
      best = c;
      lo = mid;
    } else hi = mid - 1;
  }
  return best;
}
