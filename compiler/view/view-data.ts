// Everything view.html shows, as plain JSON computed from a compiled out dir: the header
// (report.json and schedule.json), the timeline (simulated again for its spans), the memory
// plan (planned again for its placements) and one layer's dataflow. Pure but for reading the dir.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadInspection } from '../cli/inspect.js';
import { deviceProfile } from '../schedule/devices.js';
import { planMemory } from '../schedule/memory.js';
import type { MemorySummary, TimelineSummary } from '../schedule/summary.js';
import type { Schedule } from '../schedule/types.js';
import { dataflowData, type DataflowData } from './dataflow-data.js';
import { memoryData, type MemoryData } from './memory-data.js';
import { indexProgram } from './program-index.js';
import { timelineData, type TimelineData } from './timeline-data.js';

export interface HeaderData {
  readonly model: string;
  readonly params?: number;
  readonly layers: number;
  readonly sizes: Readonly<Record<string, number>>;
  readonly seq: number;
  readonly sp: number;
  readonly dp: number;
  readonly world: number;
  readonly chunk: number;
  readonly chunks: number;
  readonly offload: boolean;
  readonly checkpoint: string;
  readonly zero: number;
  readonly device: string;
  readonly stepSeconds: number;
  readonly mfu?: number;
  readonly exposedCopySeconds: number;
  readonly exposedCommSeconds: number;
  readonly keptLayers: number;
  readonly fits: boolean;
  readonly advice: string;
  readonly gpu: { readonly need: number; readonly budget: number };
  readonly host: { readonly need: number; readonly budget: number };
  readonly windowLayers: number;
  readonly extrapolated: boolean;
}

export interface ViewData {
  readonly header: HeaderData;
  readonly timeline: TimelineData;
  readonly memory: MemoryData;
  readonly dataflow: DataflowData;
}

export function headerData(s: Schedule, memory: MemorySummary, timeline: TimelineSummary, params?: number): HeaderData {
  const c = s.config;
  return {
    model: s.model,
    params,
    layers: s.layers,
    sizes: s.sizes,
    seq: c.seq,
    sp: c.sp,
    dp: c.dp ?? 1,
    world: s.world,
    chunk: s.chunk,
    chunks: s.chunks,
    offload: c.offload,
    checkpoint: String(c.checkpoint),
    zero: c.zero,
    device: memory.device,
    stepSeconds: timeline.stepSeconds,
    mfu: timeline.mfu,
    exposedCopySeconds: timeline.exposedCopySeconds,
    exposedCommSeconds: timeline.exposedCommSeconds,
    keptLayers: s.keptLayers ?? 0,
    fits: memory.fits,
    advice: memory.advice,
    gpu: { need: memory.gpu.need ?? memory.gpu.size, budget: memory.gpu.budget },
    host: { need: memory.host.need ?? memory.host.size, budget: memory.host.budget },
    windowLayers: timeline.windowLayers,
    extrapolated: timeline.extrapolated,
  };
}

/** The view's data for a compiled schedule. */
export function viewDataOf(s: Schedule, memory: MemorySummary, timeline: TimelineSummary, params?: number): ViewData {
  const dev = deviceProfile(s.config.device, { hostMemGiB: s.config.hostMemGiB });
  const index = indexProgram(s);
  return {
    header: headerData(s, memory, timeline, params),
    timeline: timelineData(s, dev, index),
    memory: memoryData(planMemory(s, dev), index),
    dataflow: dataflowData(s, index),
  };
}

/** The view's data for `out/<model>` (report.json and schedule.json, checked as inspect checks them). */
export function loadViewData(dir: string): ViewData {
  const x = loadInspection(dir);
  const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as { params?: number };
  return viewDataOf(x.schedule, x.memory, x.timeline, report.params);
}
