// The clipping `fpdtc check --clip-grad-norm X` expects, written from torch.nn.utils.
// clip_grad_norm_ (total = the 2-norm of the tensors' 2-norms; coef = max / (total + 1e-6),
// clamped at 1; every gradient times coef), not from executor-ops.ts's clipScale that the
// executor and the GPU kernel's formula follow: the check clips the reference with this and the
// executor with that, so a wrong norm or coefficient is not agreed on by both sides.

/** torch's clip_grad_norm_ adds this to the norm before dividing (the GPU kernel adds 1e-6f). */
export const CLIP_EPSILON = 1e-6;

export interface ExpectedClip {
  /** the global gradient norm before clipping */
  readonly norm: number;
  /** what every gradient is multiplied by (1 when clipping is off or does not act) */
  readonly coef: number;
  /** whether clipping changed the gradients */
  readonly clipped: boolean;
}

/** Clipping of the whole model's gradients at `maxNorm` (0 or less: off, the norm still measured). */
export function expectedClip(grads: readonly ArrayLike<number>[], maxNorm: number): ExpectedClip {
  // as torch: each tensor's norm, then the norm of those norms
  const norms = grads.map((g) => {
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i] * g[i];
    return Math.sqrt(s);
  });
  const norm = Math.hypot(...norms);
  if (!(maxNorm > 0)) return { norm, coef: 1, clipped: false };
  const coef = Math.min(maxNorm / (norm + CLIP_EPSILON), 1);
  return { norm, coef, clipped: coef < 1 };
}
