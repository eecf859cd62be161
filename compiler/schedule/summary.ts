// What report.json says about a schedule: its memory plan and predicted timeline, as plain data
// (no per-buffer placements, no spans), so that `fpdtc inspect` can print it without redoing it.
import type { DeviceProfile } from './devices.js';
import { planMemory, type ArenaSummary, type MemoryPlan } from './memory.js';
import { simulateStreams, type ModelSize, type Timeline } from './simulate.js';
import type { StreamName, Schedule } from './types.js';

export interface MemorySummary {
  readonly device: string;
  readonly fits: boolean;
  readonly advice: string;
  readonly gpu: ArenaSummary;
  readonly host: ArenaSummary;
  readonly buffers: number;
}

export interface TimelineSummary {
  readonly stepSeconds: number;
  readonly mfu?: number;
  readonly modelFlops?: number;
  readonly peakFlops: number;
  readonly exposedCopySeconds: number;
  readonly exposedCommSeconds: number;
  readonly busySeconds: Readonly<Record<StreamName, number>>;
  readonly utilization: Readonly<Record<StreamName, number>>;
  readonly windowLayers: number;
  readonly layers: number;
  readonly extrapolated: boolean;
  readonly simulatedItems: number;
}

export interface ScheduleSummary {
  readonly memory: MemorySummary;
  readonly timeline: TimelineSummary;
  /** the full results, for writing schedule.json and trace.json */
  readonly plan: MemoryPlan;
  readonly full: Timeline;
}

/** Plans memory and simulates the step; `memory` and `timeline` go into report.json. */
export function summarizeSchedule(s: Schedule, dev: DeviceProfile, model?: ModelSize): ScheduleSummary {
  const plan = planMemory(s, dev);
  const full = simulateStreams(s, dev, { model });
  const memory: MemorySummary = { device: dev.name, fits: plan.fits, advice: plan.advice, gpu: plan.gpu, host: plan.host, buffers: s.buffers.length };
  // per-op totals stay out of report.json (inspect prints them)
  const { spans: _spans, ops: _ops, skipped: _skipped, ...t } = full;
  return { memory, timeline: { ...t, peakFlops: dev.peakFlops, layers: s.layers }, plan, full };
}
