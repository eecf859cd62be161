// The measured step as a Chrome trace (`fpdtc run --trace FILE`), laid out as the predicted
// trace.json of `fpdtc compile` (../schedule/export-trace.ts): a process per rank named "rank N",
// a thread per stream in STREAMS order, a complete event per instruction named by its op with its
// schedule id and loop indices in args. Opened beside trace.json, the two show where prediction
// and the GPU part.
//
// The program gives each event its instruction's index in its table of instructions (loops not
// unrolled, ../codegen/host-body.ts tracedInstrs) and gives them in issue order: the k-th event is
// the k-th instruction the step issued. Walking the schedule's loops in the same order (as the
// simulator does) pairs each event with its iteration, so the loop indices cost the GPU nothing,
// and checks on the way that the program and schedule.json agree. A step times at most its first
// FPDT_PROF_MAX instructions; the metadata says how many were left out.
import { tracedInstrs } from '../codegen/host-body.js';
import { UserError } from '../errors.js';
import { rankTracks, spanEvent, type ChromeTrace, type TraceEvent } from '../schedule/export-trace.js';
import { walkWindow, type Span } from '../schedule/simulate.js';
import { breakdownSpans } from '../schedule/span-breakdown.js';
import { groupPosition, STREAMS, type Instr, type Schedule } from '../schedule/types.js';

/** One event as the program reports it (runtime/load.ts MeasuredInstr); id and op are checked when given. */
export interface MeasuredEvent {
  readonly instr: number;
  readonly stream: number;
  readonly startMs: number;
  readonly endMs: number;
  readonly id?: string;
  readonly op?: string;
}

export interface RankEvents {
  readonly rank: number;
  readonly events: readonly MeasuredEvent[];
}

export interface MeasuredInfo {
  readonly model: string;
  /** the step the events are of (1-based, as the run prints it) */
  readonly step: number;
  /** when it ran (ISO 8601) */
  readonly date: string;
  /** the step's time as the program measured it */
  readonly stepMs?: number;
}

/** The program times at most this many instructions of a step (FPDT_PROF_MAX of program.cu.njk). */
export const TRACED_PER_STEP = 65536;

const ROLES = ['layer', 'chunk', 'kv', 'q'] as const;

/** The first `n` instructions a rank issues, with their loop indices, and how many it issues in all. */
function issuedInstrs(s: Schedule, rank: number, n: number): { first: { instr: Instr; roles: Partial<Record<(typeof ROLES)[number], number>> }[]; total: number } {
  const first: { instr: Instr; roles: Partial<Record<(typeof ROLES)[number], number>> }[] = [];
  let total = 0;
  walkWindow(s, { rank: groupPosition(s, rank) }, (it, _env, _event, byRole) => {
    if (it.kind !== 'instr') return;
    if (total++ < n) {
      const roles: Partial<Record<(typeof ROLES)[number], number>> = {};
      for (const r of ROLES) if (byRole[r] !== undefined) roles[r] = byRole[r];
      first.push({ instr: it, roles });
    }
  });
  return { first, total };
}

const mismatch = (rank: number, k: number, what: string) =>
  new UserError(`--trace: event ${k} of rank ${rank} ${what}; the build is not of this schedule.json (run 'fpdtc build' again)`);

/** One rank's events as trace events, each paired with the instruction the schedule issues at its place. */
function rankEvents(s: Schedule, index: ReadonlyMap<Instr, number>, r: RankEvents): { events: TraceEvent[]; total: number } {
  const { first, total } = issuedInstrs(s, r.rank, r.events.length);
  if (r.events.length > total) throw mismatch(r.rank, total, `is past the ${total} instructions the schedule issues`);
  const events = r.events.map((e, k): TraceEvent => {
    const { instr, roles } = first[k];
    if (e.instr !== index.get(instr)) throw mismatch(r.rank, k, `is instruction ${e.instr} of the program, where the schedule issues ${instr.id} (instruction ${index.get(instr)})`);
    if ((e.id !== undefined && e.id !== instr.id) || (e.op !== undefined && e.op !== instr.op)) throw mismatch(r.rank, k, `names ${e.id} ${e.op}, where the schedule issues ${instr.id} ${instr.op}`);
    if (STREAMS[e.stream] !== instr.stream) throw mismatch(r.rank, k, `ran on stream ${e.stream}, where ${instr.id} is on ${instr.stream}`);
    const span: Span = { stream: instr.stream, op: instr.op, id: instr.id, start: e.startMs / 1e3, end: e.endMs / 1e3, ...roles };
    return spanEvent(r.rank, span, { op: instr.op, instr: e.instr });
  });
  return { events, total };
}

/** The measured step of each rank as a Chrome trace: the tracks of trace.json, the events of the GPU. */
export function measuredTrace(s: Schedule, ranks: readonly RankEvents[], info: MeasuredInfo): ChromeTrace {
  const index = new Map(tracedInstrs(s.body).map((it, i) => [it, i]));
  const traceEvents: TraceEvent[] = [];
  let issued = 0;
  let timed = 0;
  for (const r of ranks) {
    const { events, total } = rankEvents(s, index, r);
    traceEvents.push(...rankTracks(r.rank), ...events);
    issued += total;
    timed += events.length;
  }
  const dropped = issued - timed;
  const otherData: Record<string, string | number> = {
    model: info.model,
    source: 'measured on GPU',
    step: info.step,
    date: info.date,
    ...(info.stepMs !== undefined ? { measuredStepSeconds: info.stepMs / 1e3 } : {}),
    ranks: ranks.length,
    instructions: issued,
    events: timed,
    dropped,
  };
  if (dropped > 0) otherData.droppedNote = `the program times the first ${TRACED_PER_STEP} instructions of a step on each rank; ${dropped} later ones are not in this trace`;
  return { traceEvents, displayTimeUnit: 'ms', otherData };
}

/** measuredTrace as the text of a .json file. */
export const measuredTraceText = (s: Schedule, ranks: readonly RankEvents[], info: MeasuredInfo): string => JSON.stringify(measuredTrace(s, ranks, info)) + '\n';

/**
 * One line on how much of a rank's copying its compute stream hid in the measured step: copy
 * streams' busy time, the part of it with compute idle (exposed), and the share hidden.
 */
export function copyExposureLine(r: RankEvents): string {
  const spans = r.events.map((e): Span => ({ stream: STREAMS[e.stream] ?? 'compute', op: '', id: '', start: e.startMs / 1e3, end: e.endMs / 1e3 }));
  const b = breakdownSpans(spans);
  const hidden = b.copySeconds > 0 ? ` (${(100 * (1 - b.exposedCopySeconds / b.copySeconds)).toFixed(0)}% hidden)` : '';
  const secs = (x: number): string => (x >= 1 ? `${x.toFixed(2)} s` : `${(x * 1e3).toFixed(1)} ms`);
  return `copies ${secs(b.copySeconds)} on the copy streams, ${secs(b.exposedCopySeconds)} of it with the compute stream idle${hidden}`;
}
