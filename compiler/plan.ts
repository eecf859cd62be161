// From the chunked graph to a verified schedule, its memory plan and its predicted step:
// the part of `compile` after the graph passes. `--chunk auto` tries the chunk sizes that
// divide the sequence and keeps the fastest one that fits.
import { LIMITS } from './config.js';
import { errors } from './errors.js';
import type { Graph, TrainConfig } from './ir/types.js';
import { graphPasses } from './passes/index.js';
import { lower } from './passes/lower.js';
import { lowerStep } from './lower/step.js';
import { PassError, runGraphPasses } from './passes/pipeline.js';
import { countParams } from './report.js';
import { deviceProfile, type DeviceProfile } from './schedule/devices.js';
import { planMemory } from './schedule/memory.js';
import { summarizeSchedule, type ScheduleSummary } from './schedule/summary.js';
import type { Schedule } from './schedule/types.js';
import { ScheduleError, VERIFY_WINDOW, verifySchedule } from './schedule/verify.js';

export interface Planned {
  readonly graph: Graph;
  readonly schedule: Schedule;
  readonly summary: ScheduleSummary;
  readonly device: DeviceProfile;
}

/** Lowers, plans and simulates; the schedule is checked for hazards in the planned arena bytes. */
export function planGraph(g: Graph): Planned {
  const device = deviceProfile(g.config.device, { hostMemGiB: g.config.hostMemGiB });
  try {
    const schedule = lower.run(g);
    const summary = summarizeSchedule(schedule, device, { params: countParams(g), layers: g.sizes.L, seq: g.sizes.S, hidden: g.sizes.D });
    verifySchedule(schedule, { window: VERIFY_WINDOW, placements: summary.plan.placements });
    return { graph: g, schedule, summary, device };
  } catch (e) {
    if (e instanceof ScheduleError || (e instanceof Error && !(e as { exitCode?: number }).exitCode)) throw errors.internal('lower', (e as Error).message);
    throw e;
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
    // memory only: no need to synchronize streams
    const schedule = lowerStep(runGraphPasses(build(c), graphPasses(c)));
    return attentionWorkingSet({ schedule });
  };
  return { on: planFor(true), off: planFor(false) };
}

/**
 * Chunk sizes worth trying: powers of two from 4K that divide seq, are multiples of sp and cut
 * it into no more chunks than the planner takes (LIMITS.chunks), and seq itself.
 */
export function chunkCandidates(seq: number, sp: number): number[] {
  const out: number[] = [];
  for (let c = 4096; c < seq && c <= 1 << 20; c *= 2) if (seq % c === 0 && c % sp === 0 && seq / c <= LIMITS.chunks) out.push(c);
  out.push(seq);
  return out;
}

/** Runs the graph passes and plans for each candidate chunk; keeps the fastest plan that fits. */
export function searchChunk(build: (c: TrainConfig) => Graph, config: TrainConfig): Planned {
  let best: Planned | undefined;
  let smallest: Planned | undefined;
  for (const chunk of chunkCandidates(config.seq, config.sp)) {
    const c = { ...config, chunk };
    let p: Planned;
    try {
      p = planGraph(runGraphPasses(build(c), graphPasses(c)));
    } catch (e) {
      if (e instanceof PassError) continue;
      throw e;
    }
    if (!smallest) smallest = p;
    if (p.summary.memory.fits && (!best || p.summary.timeline.stepSeconds < best.summary.timeline.stepSeconds)) best = p;
  }
  return best ?? smallest!;
}
