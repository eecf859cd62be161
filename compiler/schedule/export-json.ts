// schedule.json: the schedule IR as data, loops kept, plus what the memory plan decided for
// each buffer and a hash of the whole content. The schema is documented in
// docs/schedule-json.md and checked on every read (./json.ts); bump SCHEDULE_JSON_VERSION
// when a field changes meaning.
import type { Architecture } from './architecture.js';
import type { MemoryPlan } from './memory.js';
import { bufferBytes } from './memory.js';
import { checkScheduleDoc, parseJsonText, scheduleHash, SCHEDULE_JSON_FORMAT, SCHEDULE_JSON_VERSION } from './json.js';
import { STREAMS, type Buffer, type Schedule } from './types.js';

export { SCHEDULE_JSON_FORMAT, SCHEDULE_JSON_VERSION } from './json.js';

export interface BufferJson extends Buffer {
  /** elems * slots * dtype bytes, 256-byte aligned */
  readonly bytes: number;
  /** from the memory plan, when one was given */
  readonly offset?: number;
  readonly live?: readonly [number, number];
}

/** The memory plan's arena sizes, and what the collectives take on the GPU beside the arena. */
export interface MemoryJson {
  readonly gpuBytes: number;
  readonly hostBytes: number;
  readonly commScratchBytes: number;
  readonly commLibraryBytes: number;
}

export interface ScheduleJson extends Omit<Schedule, 'buffers'> {
  readonly format: typeof SCHEDULE_JSON_FORMAT;
  readonly version: number;
  /** sha256 of the canonical content (every other field); see docs/schedule-json.md */
  readonly hash: string;
  readonly streams: readonly string[];
  readonly buffers: readonly BufferJson[];
  /** from the memory plan, when one was given (with every buffer's `offset`) */
  readonly memory?: MemoryJson;
  /** what the model computes beyond its sizes (./architecture.ts); compile always writes it */
  readonly architecture?: Architecture;
}

export function scheduleToJson(s: Schedule, plan?: MemoryPlan, architecture?: Architecture): ScheduleJson {
  const placed = new Map(plan?.placements.map((p) => [p.buf, p]));
  const buffers = s.buffers.map((b): BufferJson => {
    const p = placed.get(b.id);
    return { ...b, bytes: bufferBytes(b), ...(p ? { offset: p.offset, live: p.live } : {}) };
  });
  const { buffers: _b, ...rest } = s;
  const memory: MemoryJson | undefined = plan && { gpuBytes: plan.gpu.size, hostBytes: plan.host.size, commScratchBytes: plan.comm.scratch, commLibraryBytes: plan.comm.library };
  const content = { ...rest, streams: STREAMS, buffers, ...(memory ? { memory } : {}), ...(architecture ? { architecture } : {}) };
  const head = { format: SCHEDULE_JSON_FORMAT, version: SCHEDULE_JSON_VERSION } as const;
  // the hash sits near the top, where people look; it covers every other field
  return { ...head, hash: scheduleHash({ ...head, ...content }), ...content };
}

export const stringifySchedule = (s: Schedule, plan?: MemoryPlan, architecture?: Architecture): string => JSON.stringify(scheduleToJson(s, plan, architecture), null, 1) + '\n';

/** Reads schedule.json, checked (./json.ts), keeping the plan fields and the hash. */
export function readScheduleJson(text: string, where = 'schedule.json'): ScheduleJson {
  return checkScheduleDoc(parseJsonText(text, where), where);
}

/** Reads schedule.json back into the IR (plan fields and hash dropped); `where` names the file in errors. */
export function parseScheduleJson(text: string, where = 'schedule.json'): Schedule {
  return scheduleFromJson(readScheduleJson(text, where));
}

/** The IR of a checked schedule.json document. */
export function scheduleFromJson(j: ScheduleJson): Schedule {
  const { format: _f, version: _v, hash: _h, streams: _s, buffers, memory: _m, architecture: _a, ...rest } = j;
  return {
    ...rest,
    buffers: buffers.map(({ bytes: _bytes, offset: _o, live: _l, ...b }) => b),
  };
}
