// The optimizer step on the two sides of `fpdtc check`. The executor runs the schedule's own
// AdamW instruction, clipping (`--clip-grad-norm X`, as `fpdtc run` sets max_grad_norm on the
// program) by the global norm the ranks all-reduce, with the kernel's formula
// (reference/executor-ops.ts clipScale). The reference clips the whole model's gradients with
// torch's formula written apart from it (reference/clip-grad-norm.ts) before its own AdamW
// (reference/cpu-adamw.ts). Each step's norm before clipping is compared, and whether it clipped.
import { adamwStep } from './reference/cpu-adamw.js';
import { expectedClip, type ExpectedClip } from './reference/clip-grad-norm.js';
import type { Graph } from './ir/types.js';
import type { Schedule } from './schedule/types.js';

/** The schedule's AdamW settings (clipping off: maxGradNorm 0). */
export interface AdamWAttrs {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number;
}

/** One optimizer step's clipping on both sides. */
export interface StepClip {
  readonly step: number;
  /** the executor's norm before clipping: over the ranks and orders, the one farthest from the reference's */
  readonly norm: number;
  readonly referenceNorm: number;
  readonly normError: number;
  /** whether the executor's clipping factor at that norm was below 1 */
  readonly clipped: boolean;
  readonly referenceClipped: boolean;
}

export interface ReferenceStep {
  readonly params: Record<string, Float64Array>;
  readonly clip: ExpectedClip;
}

/**
 * The reference AdamW step `step` with the schedule's hyperparameters, on moments carried from
 * the steps before, the gradients clipped first at `attrs.maxGradNorm` (0: off).
 */
export function referenceUpdate(g: Graph, params: Readonly<Record<string, Float64Array>>, grads: Readonly<Record<string, Float64Array>>, attrs: AdamWAttrs, step: number, moments: ReadonlyMap<string, { m: Float64Array; v: Float64Array }>): ReferenceStep {
  const clip = expectedClip(g.params.map((p) => grads[p]), attrs.maxGradNorm);
  const out: Record<string, Float64Array> = {};
  for (const p of g.params) {
    const x = params[p].slice();
    const { m, v } = moments.get(p)!;
    adamwStep(x, clip.clipped ? grads[p].map((y) => y * clip.coef) : grads[p], m, v, { ...attrs, step });
    out[p] = x;
  }
  return { params: out, clip };
}

/** The schedule with every AdamW update clipping at `max` (0: off). */
export function withMaxGradNorm(s: Schedule, max: number): Schedule {
  const map = (items: Schedule['body']): Schedule['body'] =>
    items.map((x) => (x.kind === 'loop' ? { ...x, body: map(x.body) } : x.kind === 'instr' && x.op === 'adamw' ? { ...x, attrs: { ...x.attrs, maxGradNorm: max } } : x));
  return { ...s, body: map(s.body) };
}

export function findAdamW(s: Schedule): AdamWAttrs {
  // the update may sit in a loop (optimizer states streamed from the host)
  const find = (items: Schedule['body']): Schedule['body'][number] | undefined => {
    for (const x of items) {
      if (x.kind === 'instr' && x.op === 'adamw') return x;
      if (x.kind === 'loop') {
        const y = find(x.body);
        if (y) return y;
      }
    }
    return undefined;
  };
  const it = find(s.body);
  if (!it || it.kind !== 'instr') throw new Error('check: the schedule has no AdamW step');
  const a = it.attrs as Record<string, number>;
  return { lr: a.lr, beta1: a.beta1, beta2: a.beta2, eps: a.eps, weightDecay: a.weightDecay, maxGradNorm: a.maxGradNorm ?? 0 };
}
