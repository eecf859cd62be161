// What `fpdtc run` prints per step. MFU follows ../shared/ANCHORS.md: model FLOPs
// (6·params·tokens + 6·L·S²·D, from report.json) over the step time and 989 TFLOP/s (H200 bf16).
export const PEAK_BF16_FLOPS = 989e12;

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

const gib = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GiB`;

export function formatStep(f: StepFigures): string {
  const tps = f.tokens / (f.ms / 1e3);
  return `step ${f.step}  loss ${f.loss.toFixed(4)}${f.gradNorm === undefined ? '' : `  gnorm ${f.gradNorm.toPrecision(4)}`}  ${f.ms.toFixed(1)} ms  ${tps >= 1e4 ? `${(tps / 1e3).toFixed(1)}K` : tps.toFixed(0)} tok/s  MFU ${(100 * f.mfu).toFixed(1)}%  GPU peak ${gib(f.peakGpu)} (planned ${gib(f.plannedGpu)})`;
}
