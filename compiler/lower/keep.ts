// The planner's trade between host memory and recomputation: attention is the most expensive
// part of recomputing a layer at long context, and FPDT already writes each chunk's q, k, v, o
// and lse to host memory. Keeping them for the last K layers skips those layers' attention
// recompute. K is the most layers whose kept tensors fit in the host memory the plan leaves.
import type { Graph } from '../ir/types.js';
import type { DeviceProfile } from '../schedule/devices.js';
import { planMemory, type MemoryPlan } from '../schedule/memory.js';
import type { Schedule } from '../schedule/types.js';
import { lowerStep } from './step.js';

/** Host memory the plan keeps free, so that the process and the OS have room. */
const HOST_SLACK = 0.9;

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
  if (!none.plan.fits || !g.config.fpdt || !g.config.offload) return none;
  const one = lowerWith(1);
  const perLayer = one.plan.host.size - none.plan.host.size;
  if (one.keep === 0 || perLayer <= 0) return none;
  let k = Math.min(g.sizes.L, Math.floor((HOST_SLACK * none.plan.host.budget - none.plan.host.size) / perLayer));
  while (k > 0) {
    const c = lowerWith(k);
    if (c.plan.fits && c.plan.host.size <= HOST_SLACK * c.plan.host.budget) return c;
    k = Math.floor(k / 2);
  }
  return none;
}
