// Writes the inspectable outputs of a compiled schedule beside each other in out/<name>/.
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import type { Architecture } from './architecture.js';
import { scheduleToDot } from './export-dot.js';
import { stringifySchedule } from './export-json.js';
import { chromeTrace } from './export-trace.js';
import type { MemoryPlan } from './memory.js';
import type { Timeline } from './simulate.js';
import type { Schedule } from './types.js';

export interface ScheduleOutputs {
  readonly schedule: Schedule;
  readonly plan?: MemoryPlan;
  readonly timeline?: Timeline;
  readonly architecture?: Architecture;
}

/** The texts of schedule.json, schedule.dot and (with a timeline) trace.json, by file name. */
export function scheduleOutputs(o: ScheduleOutputs): { name: string; text: string }[] {
  const out = [
    { name: 'schedule.json', text: stringifySchedule(o.schedule, o.plan, o.architecture) },
    { name: 'schedule.dot', text: scheduleToDot(o.schedule) },
  ];
  if (o.timeline) {
    const t = o.timeline;
    // the simulator keeps spans of one forward and one backward layer (see simulate.ts)
    const trace = chromeTrace([{ rank: 0, spans: t.spans }], { model: o.schedule.model, windowLayers: 1, predictedStepSeconds: t.stepSeconds });
    out.push({ name: 'trace.json', text: JSON.stringify(trace) + '\n' });
  }
  return out;
}

/** Writes scheduleOutputs into `dir`, each file atomically; returns the paths written. */
export function writeScheduleOutputs(dir: string, o: ScheduleOutputs): string[] {
  return scheduleOutputs(o).map(({ name, text }) => {
    const p = join(dir, name);
    writeFileAtomic(p, text);
    return p;
  });
}
