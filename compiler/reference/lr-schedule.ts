// The learning rate `fpdtc check` expects at each optimizer step, written from the formulas the
// README states (and the HF parity suite gives torch's LambdaLR), not from compiler/train/
// schedule.ts: the check runs the executor at that file's rates and the reference at these, so
// a mistake in the run loop's schedule is not repeated on both sides.

export interface LrFormula {
  readonly peak: number;
  /** steps of linear warmup; 0 for none */
  readonly warmup: number;
  readonly kind: 'constant' | 'cosine' | 'linear';
  /** the floor that decay ends at */
  readonly minLr: number;
  /** the step at which decay reaches the floor */
  readonly totalSteps: number;
}

/** The rate of optimizer step `step` (1-based: the first step of a warmup trains at peak / warmup). */
export function expectedLearningRate(step: number, f: LrFormula): number {
  if (step < 1) throw new RangeError(`expectedLearningRate: steps start at 1, got ${step}`);
  const inWarmup = f.warmup > 0 && step <= f.warmup;
  if (inWarmup) return f.peak * (step / f.warmup);
  if (f.kind === 'constant') return f.peak;
  // the fraction of decay done: 0 right after warmup, 1 at totalSteps and after
  const decaySteps = f.totalSteps - f.warmup;
  const done = decaySteps > 0 ? Math.min(step - f.warmup, decaySteps) / decaySteps : 1;
  const left = f.kind === 'linear' ? 1 - done : 0.5 * (1 + Math.cos(Math.PI * done));
  return f.minLr + left * (f.peak - f.minLr);
}
