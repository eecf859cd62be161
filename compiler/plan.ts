// From the chunked graph to a verified schedule, its memory plan and its predicted step: the
// schedule stages (lower/pipeline.ts) for compile and check alike. `--chunk auto` is resolved
// here: the chunk policy (schedule/chunk-policy.ts) says which chunks to try and which to
// keep; this file plans them with the same stages.
import { errors } from './errors.js';
import type { Graph, TrainConfig } from './ir/types.js';
import { runScheduleStages, scheduleSummary, StageError, type ScheduleStageOptions } from './lower/pipeline.js';
import { graphPasses } from './passes/index.js';
import { PassError, runGraphPasses } from './passes/pipeline.js';
import { deviceProfile, type DeviceProfile } from './schedule/devices.js';
import { chooseChunk } from './schedule/chunk-policy.js';
import { planMemory } from './schedule/memory.js';
import type { ScheduleSummary } from './schedule/summary.js';
import type { Schedule } from './schedule/types.js';

export interface Planned {
  readonly graph: Graph;
  readonly schedule: Schedule;
  readonly summary: ScheduleSummary;
  readonly device: DeviceProfile;
}

/** Runs every schedule stage: lowered, synchronized, planned, checked for hazards, simulated. */
export function planGraph(g: Graph, opts: Pick<ScheduleStageOptions, 'dumpAfter' | 'dump' | 'firstIndex' | 'timer'> = {}): Planned {
  try {
    const s = runScheduleStages(g, opts);
    return { graph: g, schedule: s.schedule!, summary: scheduleSummary(s), device: s.device };
  } catch (e) {
    if (!(e instanceof StageError)) throw e;
    const out = errors.internal(e.stage, e.cause.message);
    out.cause = e;
    throw out;
  }
}

/** GPU bytes of attention's streamed state (stashes, slots, accumulators) in a plan. */
export function attentionWorkingSet(p: { schedule: Schedule }, plan = planMemory(p.schedule, deviceProfile(p.schedule.config.device, { hostMemGiB: p.schedule.config.hostMemGiB }))): { gpu: number; host: number } {
  const attn = new Set(p.schedule.buffers.filter((b) => b.kind === 'stash' || b.kind === 'attn').map((b) => b.id));
  let gpu = 0;
  let host = 0;
  for (const pl of plan.placements) if (attn.has(pl.buf)) pl.space === 'gpu' ? (gpu += pl.size) : (host += pl.size);
  return { gpu, host };
}

/** The same graph planned with offload flipped: what offloading saves, from the plan itself. */
export function offloadComparison(build: (c: TrainConfig) => Graph, config: TrainConfig): { on: { gpu: number; host: number }; off: { gpu: number; host: number } } {
  const planFor = (offload: boolean) => {
    // the same layers keep attention in both, so only the streamed state differs
    const c = { ...config, offload, keepAttention: 0 };
    // memory only: lowering's own plan, no need to synchronize streams
    const { schedule, loweredPlan } = runScheduleStages(runGraphPasses(build(c), graphPasses(c)), { until: 'lower' });
    return attentionWorkingSet({ schedule: schedule! }, loweredPlan);
  };
  return { on: planFor(true), off: planFor(false) };
}

// the candidates `auto` tries; the policy owns them
export { chunkCandidates } from './schedule/chunk-policy.js';

/**
 * The configuration with `--chunk auto` replaced by the chunk the policy chooses, each
 * candidate planned in full; any other configuration as it is. `compile` and `check` both
 * call it, so that check proves the step compile writes.
 */
export function resolveAutoChunk(build: (c: TrainConfig) => Graph, config: TrainConfig): TrainConfig {
  if (config.chunk !== 'auto' || !config.fpdt) return config;
  const chunk = chooseChunk(config.seq, config.sp, (chunk) => {
    const c = { ...config, chunk };
    try {
      const { summary } = planGraph(runGraphPasses(build(c), graphPasses(c)));
      return { fits: summary.memory.fits, stepSeconds: summary.timeline.stepSeconds };
    } catch (e) {
      if (e instanceof PassError) return undefined;
      throw e;
    }
  });
  return { ...config, chunk };
}
