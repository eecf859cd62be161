// The learning rate of each step of `fpdtc run`, computed on the host and handed to the program
// (Program.setLearningRate) before the step: a linear warmup, then constant, cosine or linear
// decay to a floor. Steps are 1-based, so the first step trains with a non-zero rate.

export type ScheduleKind = 'constant' | 'cosine' | 'linear';
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['constant', 'cosine', 'linear'];

export interface ScheduleOptions {
  /** the rate at the end of warmup */
  peak: number;
  /** steps of linear warmup from 0 to peak; 0 for none */
  warmup: number;
  kind: ScheduleKind;
  /** where cosine and linear decay end */
  minLr: number;
  /** the step at which decay reaches minLr; later steps stay there */
  totalSteps: number;
}

/**
 * Step k (1-based): peak*k/warmup while k <= warmup; after that, with p = (k - warmup) /
 * (totalSteps - warmup) clamped to [0, 1], constant gives peak, linear minLr + (peak - minLr)(1 - p)
 * and cosine minLr + (peak - minLr)(1 + cos(pi p))/2. The last step of the run trains at minLr.
 */
export function learningRate(step: number, o: ScheduleOptions): number {
  if (!Number.isInteger(step) || step < 1) throw new Error(`learningRate: step ${step} is not a 1-based step`);
  if (step <= o.warmup) return (o.peak * step) / o.warmup;
  if (o.kind === 'constant') return o.peak;
  // a run no longer than its warmup has no decay steps: it ends at the floor
  const span = o.totalSteps - o.warmup;
  const p = span <= 0 ? 1 : Math.min(1, (step - o.warmup) / span);
  const factor = o.kind === 'cosine' ? (1 + Math.cos(Math.PI * p)) / 2 : 1 - p;
  return o.minLr + (o.peak - o.minLr) * factor;
}
