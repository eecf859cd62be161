// What codegen reads of the memory plan: each buffer's place and the arena sizes, as
// schedule.json carries them (`offset` per buffer, `memory`). Codegen never plans memory
// itself, so the program lays out its bytes exactly as the schedule it was built from says.
import { errors } from '../errors.js';
import type { ScheduleJson } from '../schedule/export-json.js';

export interface PlannedPlace {
  readonly buf: string;
  readonly space: 'gpu' | 'host';
  /** bytes from the start of its space's arena, and bytes reserved (all slots, aligned) */
  readonly offset: number;
  readonly size: number;
}

export interface PlannedMemory {
  /** in the schedule's buffer order */
  readonly placements: readonly PlannedPlace[];
  readonly gpuBytes: number;
  readonly hostBytes: number;
  /** the collective scratch the program allocates beside its arena, and NCCL's own buffers */
  readonly commScratchBytes: number;
  readonly commLibraryBytes: number;
}

/** The plan of a checked schedule.json; one that was written without a plan is refused. */
export function plannedMemoryOf(j: ScheduleJson, where: string): PlannedMemory {
  if (!j.memory) throw errors.outFileInvalid(where, 'it has no memory plan (field memory)');
  const placements = j.buffers.map((b): PlannedPlace => {
    if (b.offset === undefined) throw errors.outFileInvalid(where, `buffer '${b.id}' has no planned offset`);
    return { buf: b.id, space: b.space, offset: b.offset, size: b.bytes };
  });
  return { placements, ...j.memory };
}
