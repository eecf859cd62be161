// `fpdtc check --steps N` with a learning-rate schedule: the rate of each optimizer step on the
// two sides of the check. The executor trains at the rates of the run loop's own function
// (train/schedule.ts, what `fpdtc run` sets on the program before each step); the reference
// updates at the rates of reference/lr-schedule.ts, written apart from it. A wrong warmup or
// decay then moves the executor's weights away from the reference's, and the check says so.
import { errors } from './errors.js';
import { expectedLearningRate } from './reference/lr-schedule.js';
import { learningRate, SCHEDULE_KINDS, type ScheduleKind, type ScheduleOptions } from './train/schedule.js';

/** What `run --lr --warmup --schedule --min-lr --total-steps` takes, and the steps to check. */
export interface CheckedSchedule {
  /** optimizer steps to run, each on new windows, the weights and AdamW moments carried over */
  readonly steps: number;
  /** the peak rate (default: the compiled lr) */
  readonly lr?: number;
  /** steps of linear warmup (default 0) */
  readonly warmup?: number;
  /** default constant */
  readonly kind?: ScheduleKind;
  /** where decay ends (default 0) */
  readonly minLr?: number;
  /** the step at which decay reaches minLr (default: steps, as in run) */
  readonly totalSteps?: number;
}

export interface StepRates {
  /** step k's rate at index k - 1, as the run loop computes it */
  readonly executor: readonly number[];
  /** the same from the reference's formulas */
  readonly reference: readonly number[];
}

/** The schedule the run loop would use, with run's defaults filled in and checked. */
export function resolveSchedule(c: CheckedSchedule, compiledLr: number): ScheduleOptions {
  if (!Number.isSafeInteger(c.steps) || c.steps < 1) throw errors.badFlag('steps', String(c.steps), 'a whole number of steps, at least 1');
  const o: ScheduleOptions = { peak: c.lr ?? compiledLr, warmup: c.warmup ?? 0, kind: c.kind ?? 'constant', minLr: c.minLr ?? 0, totalSteps: c.totalSteps ?? c.steps };
  if (!SCHEDULE_KINDS.includes(o.kind)) throw errors.badFlag('schedule', o.kind, `one of ${SCHEDULE_KINDS.join(', ')}`);
  if (!Number.isSafeInteger(o.warmup) || o.warmup < 0) throw errors.badFlag('warmup', String(o.warmup), 'a whole number of steps (0 for none)');
  if (o.minLr > o.peak) throw errors.badFlag('min-lr', String(o.minLr), `above the peak learning rate ${o.peak}${c.lr === undefined ? ' (the compiled lr; pass --lr)' : ''}`);
  return o;
}

/**
 * Every step's rate on both sides. `scheduleFn` is the function under test (default the run
 * loop's); tests hand in broken ones.
 */
export function stepRates(c: CheckedSchedule, compiledLr: number, scheduleFn: typeof learningRate = learningRate): StepRates {
  const o = resolveSchedule(c, compiledLr);
  const steps = Array.from({ length: c.steps }, (_, j) => j + 1);
  return { executor: steps.map((k) => scheduleFn(k, o)), reference: steps.map((k) => expectedLearningRate(k, o)) };
}
