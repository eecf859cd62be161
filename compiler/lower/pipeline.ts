// The schedule stages: what `compile` does after the graph passes, as one list that one runner
// verifies after every stage, dumps by name (`--dump-after sync`) and times (`--timings`).
// compile, check, the `--chunk auto` search and the offload comparison all run this list.
//
//   lower     the chunked graph becomes one rank's schedule, without events; the kept-attention
//             trade (keep.ts) decides how many layers keep attention, planning memory for each try
//   sync      events derived from the accesses (schedule/sync.ts), told by lowering's plan which
//             buffers share bytes, so that a buffer's first write waits for the last users of them
//   plan      the memory plan of the synced schedule (schedule/memory.ts); only instructions take
//             positions, so it is the plan sync was told about, unless a test rewrote the schedule
//   hazards   the happens-before check (schedule/verify.ts) in the plan's arena bytes (its
//             invariant 5), which is why it follows the plan
//   simulate  the predicted step on the device (schedule/simulate.ts)
//
// Verified after each run:
//   1. lower: its memory plan passes verifyPlan, every instruction matches its op's catalog
//      entry (verifyOps), and the schedule has no events yet;
//   2. sync: the instructions and loops are lowering's, in the same order (sync only adds
//      records and waits), and every record and wait names a declared event;
//   3. plan: verifyPlan (no two live buffers share a byte; inside the arena; aligned);
//   4. hazards: is itself the check;
//   5. simulate: the step, the exposed copy and comm times are finite and not negative.
import type { Graph } from '../ir/types.js';
import { countParams } from '../report.js';
import { deviceProfile, type DeviceProfile } from '../schedule/devices.js';
import { listSchedule } from '../schedule/listing.js';
import { planMemory, sharedBytes, verifyPlan, type MemoryPlan } from '../schedule/memory.js';
import { listPlan } from '../schedule/plan-listing.js';
import { simulateStreams, type Timeline } from '../schedule/simulate.js';
import type { ScheduleSummary } from '../schedule/summary.js';
import { syncStreams } from '../schedule/sync.js';
import type { EventOp, Item, Schedule } from '../schedule/types.js';
import { VERIFY_WINDOW, verifyOps, verifySchedule } from '../schedule/verify.js';
import type { StageTimer } from '../timings.js';
import { chooseKeptLayers } from './keep.js';

/** What the stages have made so far; each stage adds its part. */
export interface ScheduleState {
  readonly graph: Graph;
  readonly device: DeviceProfile;
  /** after lower: without events; after sync: with them */
  readonly schedule?: Schedule;
  /** the plan the kept-attention trade chose the lowered schedule by */
  readonly loweredPlan?: MemoryPlan;
  readonly plan?: MemoryPlan;
  readonly timeline?: Timeline;
}

export type ScheduleStageName = 'lower' | 'sync' | 'plan' | 'hazards' | 'simulate';

export interface ScheduleStage {
  readonly name: ScheduleStageName;
  run(s: ScheduleState): ScheduleState;
  /** throws when the stage's output breaks its invariants (the header's list) */
  verify?(out: ScheduleState, input: ScheduleState): void;
  /** the stage's output as text, for --dump-after; absent for a stage that only checks */
  dump?(s: ScheduleState): string;
}

/** A stage threw, or its output failed verification. */
export class StageError extends Error {
  constructor(
    readonly stage: ScheduleStageName,
    readonly cause: Error,
  ) {
    super(`failed after ${stage}: ${cause.message}`);
  }
}

function need<K extends 'schedule' | 'loweredPlan' | 'plan' | 'timeline'>(s: ScheduleState, key: K, stage: ScheduleStageName): NonNullable<ScheduleState[K]> {
  const x = s[key];
  if (x === undefined) throw new Error(`${stage} needs the ${key} of an earlier stage`);
  return x as NonNullable<ScheduleState[K]>;
}

const lower: ScheduleStage = {
  name: 'lower',
  run: (s) => {
    const { schedule, plan } = chooseKeptLayers(s.graph, s.device);
    return { ...s, schedule, loweredPlan: plan };
  },
  verify: (s) => {
    checkPlan(need(s, 'loweredPlan', 'lower'));
    const schedule = need(s, 'schedule', 'lower');
    verifyOps(schedule);
    const events = eventOps(schedule.body);
    if (events.length || Object.keys(schedule.events).length) throw new Error(`lowering placed events (${events[0]?.id ?? Object.keys(schedule.events)[0]}); the sync stage derives them`);
  },
  dump: (s) => listSchedule(need(s, 'schedule', 'lower')),
};

const sync: ScheduleStage = {
  name: 'sync',
  run: (s) => ({ ...s, schedule: syncStreams(need(s, 'schedule', 'sync'), sharedBytes(need(s, 'loweredPlan', 'sync'))) }),
  verify: (out, input) => checkOnlyEventsAdded(need(input, 'schedule', 'sync'), need(out, 'schedule', 'sync')),
  dump: (s) => listSchedule(need(s, 'schedule', 'sync')),
};

const plan: ScheduleStage = {
  name: 'plan',
  run: (s) => ({ ...s, plan: planMemory(need(s, 'schedule', 'plan'), s.device) }),
  verify: (s) => checkPlan(need(s, 'plan', 'plan')),
  dump: (s) => listPlan(need(s, 'schedule', 'plan'), need(s, 'plan', 'plan')),
};

const hazards: ScheduleStage = {
  name: 'hazards',
  run: (s) => {
    verifySchedule(need(s, 'schedule', 'hazards'), { window: VERIFY_WINDOW, placements: need(s, 'plan', 'hazards').placements });
    return s;
  },
};

const simulate: ScheduleStage = {
  name: 'simulate',
  run: (s) => {
    const g = s.graph;
    const model = { params: countParams(g), layers: g.sizes.L, seq: g.sizes.S, hidden: g.sizes.D };
    return { ...s, timeline: simulateStreams(need(s, 'schedule', 'simulate'), s.device, { model }) };
  },
  verify: (s) => {
    const t = need(s, 'timeline', 'simulate');
    for (const [what, x] of [['step', t.stepSeconds], ['exposed copy', t.exposedCopySeconds], ['exposed comm', t.exposedCommSeconds]] as const)
      if (!(Number.isFinite(x) && x >= 0)) throw new Error(`the predicted ${what} time is ${x} s`);
  },
  dump: (s) => {
    const { spans: _spans, ...t } = need(s, 'timeline', 'simulate');
    return JSON.stringify(t, null, 2) + '\n';
  },
};

/** The stages in the order they run. */
export const scheduleStages: readonly ScheduleStage[] = [lower, sync, plan, hazards, simulate];

/** Stages whose output --dump-after can write. */
export const dumpableStages: readonly ScheduleStageName[] = scheduleStages.filter((s) => s.dump).map((s) => s.name);

export interface ScheduleStageOptions {
  /** the last stage to run (default: the last of the list) */
  readonly until?: ScheduleStageName;
  /** stages not to run (check without the hazard check) */
  readonly skip?: readonly ScheduleStageName[];
  /** rewrites the state after a stage has run and passed verification (tests break schedules on purpose) */
  readonly after?: (stage: ScheduleStageName, s: ScheduleState) => ScheduleState;
  /** stage names whose output goes to `dump` ('all' for every stage that has one) */
  readonly dumpAfter?: readonly string[];
  /** receives each dump with its number: the stage's place in the list plus `firstIndex` */
  readonly dump?: (index: number, stage: ScheduleStageName, text: string) => void;
  readonly firstIndex?: number;
  readonly timer?: StageTimer;
}

/** Runs the stages from the chunked graph on, verifying after each. */
export function runScheduleStages(graph: Graph, opts: ScheduleStageOptions = {}): ScheduleState {
  const last = opts.until === undefined ? scheduleStages.length - 1 : scheduleStages.findIndex((s) => s.name === opts.until);
  const wantDump = (name: string) => !!opts.dump && (opts.dumpAfter?.includes(name) || opts.dumpAfter?.includes('all'));
  let state: ScheduleState = { graph, device: deviceProfile(graph.config.device, { hostMemGiB: graph.config.hostMemGiB }) };
  scheduleStages.slice(0, last + 1).forEach((stage, i) => {
    if (opts.skip?.includes(stage.name)) return;
    const input = state;
    const step = () => {
      const out = guard(stage.name, () => stage.run(input));
      guard(stage.name, () => stage.verify?.(out, input));
      if (stage.dump && wantDump(stage.name)) opts.dump!((opts.firstIndex ?? 0) + i, stage.name, stage.dump(out));
      return out;
    };
    state = opts.timer ? opts.timer.time(stage.name, step) : step();
    if (opts.after) state = opts.after(stage.name, state);
  });
  return state;
}

/** Errors of people (they carry an exit code) pass; anything else is the stage's failure. */
function guard<T>(stage: ScheduleStageName, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof Error && (e as { exitCode?: number }).exitCode === undefined) throw new StageError(stage, e);
    throw e;
  }
}

/**
 * report.json's memory and timeline, from the plan and simulate stages: the fields of
 * schedule/summary.ts summarizeSchedule, without planning and simulating again.
 */
export function scheduleSummary(s: ScheduleState): ScheduleSummary {
  const schedule = need(s, 'schedule', 'simulate');
  const plan = need(s, 'plan', 'simulate');
  const full = need(s, 'timeline', 'simulate');
  const memory = { device: s.device.name, fits: plan.fits, advice: plan.advice, gpu: plan.gpu, host: plan.host, buffers: schedule.buffers.length };
  // per-op totals stay out of report.json (inspect prints them)
  const { spans: _spans, ops: _ops, skipped: _skipped, ...t } = full;
  return { memory, timeline: { ...t, peakFlops: s.device.peakFlops, layers: schedule.layers }, plan, full };
}

function checkPlan(p: MemoryPlan): void {
  const problems = verifyPlan(p);
  if (problems.length) throw new Error(`memory plan: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`);
}

function eventOps(items: readonly Item[], out: EventOp[] = []): EventOp[] {
  for (const it of items) {
    if (it.kind === 'loop') eventOps(it.body, out);
    else if (it.kind === 'record' || it.kind === 'wait') out.push(it);
  }
  return out;
}

/** The program without its events: instruction ids and loop brackets, in order. */
function skeleton(items: readonly Item[], out: string[] = []): string[] {
  for (const it of items) {
    if (it.kind === 'loop') {
      out.push(`for ${it.id}`);
      skeleton(it.body, out);
      out.push(`end ${it.id}`);
    } else if (it.kind === 'instr') out.push(it.id);
  }
  return out;
}

function checkOnlyEventsAdded(before: Schedule, after: Schedule): void {
  const a = skeleton(before.body);
  const b = skeleton(after.body);
  const k = a.findIndex((x, i) => x !== b[i]);
  if (k >= 0 || a.length !== b.length) {
    const at = k >= 0 ? k : Math.min(a.length, b.length);
    throw new Error(`sync changed the program, not only its events: at item ${at}, ${a[at] ?? 'the end'} became ${b[at] ?? 'the end'}`);
  }
  for (const e of eventOps(after.body)) if (!(e.event in after.events)) throw new Error(`${e.id} names the undeclared event ${e.event}`);
}
