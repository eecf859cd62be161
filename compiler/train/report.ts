// What `fpdtc run` prints per step. MFU follows ../shared/ANCHORS.md: model FLOPs
// (6·params·tokens + 6·L·S²·D, the convention report.json states, counted from schedule.json's
// parameter table and sizes) over the step time and 989 TFLOP/s (H200 bf16).
import { modelFlopsPerStep } from '../report.js';
import type { ScheduleJson } from '../schedule/export-json.js';

export const PEAK_BF16_FLOPS = 989e12;

/** Model FLOPs of one sequence's step, as report.json's flops_per_step, from the schedule alone. */
export function scheduleFlopsPerStep(s: Pick<ScheduleJson, 'params' | 'layers' | 'sizes' | 'config'>): number {
  const params = (s.params?.tensors ?? []).reduce((n, t) => n + t.len * (t.part === 'layers' ? s.layers : 1), 0);
  return modelFlopsPerStep(params, s.config.seq, s.sizes.L ?? 0, s.sizes.D ?? 0);
}

export interface StepFigures {
  step: number;
  loss: number;
  /** the global gradient norm before clipping */
  gradNorm?: number;
  ms: number;
  tokens: number;
  mfu: number;
  plannedGpu: number;
  peakGpu: number;
}

export const mfu = (flops: number, ms: number): number => flops / (ms / 1e3) / PEAK_BF16_FLOPS;

/**
 * Model FLOPs of one packed window: its attention term counts each document apart (6·L·D·Σ len²,
 * a document attends only within itself), the rest as `scheduleFlopsPerStep`. `docs` holds the
 * window's document id per token (ids change where a document starts), seq tokens a dp group.
 */
export function packedFlopsPerWindow(s: Pick<ScheduleJson, 'params' | 'layers' | 'sizes' | 'config'>, docs: ArrayLike<number>): number {
  const L = s.sizes.L ?? 0;
  const D = s.sizes.D ?? 0;
  const S = s.config.seq;
  let squares = 0;
  let run = 0;
  for (let i = 0; i < docs.length; i++) {
    if (i > 0 && (docs[i] !== docs[i - 1] || i % S === 0)) {
      squares += run * run;
      run = 0;
    }
    run++;
  }
  squares += run * run;
  // the window holds docs.length / seq sequences (one a dp group)
  return (docs.length / S) * (scheduleFlopsPerStep(s) - 6 * L * S * S * D) + 6 * L * squares * D;
}

const gib = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GiB`;

export function formatStep(f: StepFigures): string {
  const tps = f.tokens / (f.ms / 1e3);
  return `step ${f.step}  loss ${f.loss.toFixed(4)}${f.gradNorm === undefined ? '' : `  gnorm ${f.gradNorm.toPrecision(4)}`}  ${f.ms.toFixed(1)} ms  ${tps >= 1e4 ? `${(tps / 1e3).toFixed(1)}K` : tps.toFixed(0)} tok/s  MFU ${(100 * f.mfu).toFixed(1)}%  GPU peak ${gib(f.peakGpu)} (planned ${gib(f.plannedGpu)})`;
}
