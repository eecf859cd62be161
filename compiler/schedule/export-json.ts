// schedule.json: the schedule IR as data, loops kept, plus what the memory plan decided for
// each buffer. The schema is documented in docs/schedule-json.md; bump SCHEDULE_JSON_VERSION
// when a field changes meaning.
import { UserError } from '../errors.js';
import type { MemoryPlan } from './memory.js';
import { bufferBytes } from './memory.js';
import { STREAMS, type Buffer, type Schedule } from './types.js';

export const SCHEDULE_JSON_FORMAT = 'fpdtc.schedule';
export const SCHEDULE_JSON_VERSION = 1;

export interface BufferJson extends Buffer {
  /** elems * slots * dtype bytes, 256-byte aligned */
  readonly bytes: number;
  /** from the memory plan, when one was given */
  readonly offset?: number;
  readonly live?: readonly [number, number];
}

export interface ScheduleJson extends Omit<Schedule, 'buffers'> {
  readonly format: typeof SCHEDULE_JSON_FORMAT;
  readonly version: number;
  readonly streams: readonly string[];
  readonly buffers: readonly BufferJson[];
}

export function scheduleToJson(s: Schedule, plan?: MemoryPlan): ScheduleJson {
  const placed = new Map(plan?.placements.map((p) => [p.buf, p]));
  const buffers = s.buffers.map((b): BufferJson => {
    const p = placed.get(b.id);
    return { ...b, bytes: bufferBytes(b), ...(p ? { offset: p.offset, live: p.live } : {}) };
  });
  const { buffers: _b, ...rest } = s;
  return { format: SCHEDULE_JSON_FORMAT, version: SCHEDULE_JSON_VERSION, ...rest, streams: STREAMS, buffers };
}

export const stringifySchedule = (s: Schedule, plan?: MemoryPlan): string => JSON.stringify(scheduleToJson(s, plan), null, 1) + '\n';

/** Reads schedule.json back into the IR (plan fields dropped); `where` names the file in errors. */
export function parseScheduleJson(text: string, where = 'schedule.json'): Schedule {
  let j: Partial<ScheduleJson>;
  try {
    j = JSON.parse(text) as Partial<ScheduleJson>;
  } catch (e) {
    throw new UserError(`not JSON: ${(e as Error).message}`, 1, where);
  }
  if (j.format !== SCHEDULE_JSON_FORMAT) throw new UserError(`not a schedule (format '${String(j.format)}', expected '${SCHEDULE_JSON_FORMAT}')`, 1, where);
  if (j.version !== SCHEDULE_JSON_VERSION) throw new UserError(`schedule format version ${String(j.version)}; this fpdtc reads version ${SCHEDULE_JSON_VERSION}: compile again`, 1, where);
  const { format: _f, version: _v, streams: _s, buffers, ...rest } = j as ScheduleJson;
  return {
    ...rest,
    buffers: buffers.map(({ bytes: _bytes, offset: _o, live: _l, ...b }) => b),
  };
}
