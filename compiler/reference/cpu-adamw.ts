// Float64 AdamW with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW.

export interface AdamWOptions {
  lr: number;
  /** 1-based step number, for bias correction */
  step: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** Updates p, m and v in place from gradient g. Defaults: beta1 0.9, beta2 0.95, eps 1e-8, weight decay 0.1. */
export function adamwStep(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, o: AdamWOptions): void {
  const b1 = o.beta1 ?? 0.9, b2 = o.beta2 ?? 0.95, eps = o.eps ?? 1e-8, wd = o.weightDecay ?? 0.1;
  if (!(o.step >= 1)) throw new RangeError(`adamw step must start at 1, got ${o.step}`);
  const bc1 = 1 - b1 ** o.step, bc2 = 1 - b2 ** o.step;
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - o.lr * wd;
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    p[i] -= (o.lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + eps);
  }
}
