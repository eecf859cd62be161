// The reference for data parallelism: one rank running a batch of sequences. The loss of a
// batch is the mean over the counted tokens of all its sequences, so each sequence's own mean
// (what the interpreter computes) weighs by its share of the batch's tokens, and so does its
// gradient. The result is what dp groups of a compiled step must reproduce together.
import type { Graph } from '../ir/types.js';
import { countLabels } from './cpu-loss.js';
import type { Batch } from './init.js';
import { interpret } from './interpreter.js';

export interface BatchResult {
  readonly loss: number;
  /** one gradient per parameter id, when the graph outputs them (after autodiff) */
  readonly grads: Record<string, Float64Array>;
}

export function interpretBatch(g: Graph, batch: readonly Batch[], params: Readonly<Record<string, Float64Array>>): BatchResult {
  // the interpreter divides by at least one counted token; so does the weight here
  const counts = batch.map((b) => Math.max(1, countLabels(b.labels)));
  const total = counts.reduce((a, b) => a + b, 0);
  let loss = 0;
  const grads: Record<string, Float64Array> = {};
  batch.forEach((b, k) => {
    const w = counts[k] / total;
    const one = interpret(g, b, params);
    loss += w * one.loss;
    for (const [p, x] of Object.entries(one.grads)) {
      const acc = (grads[p] ??= new Float64Array(x.length));
      for (let i = 0; i < acc.length; i++) acc[i] += w * x[i];
    }
  });
  return { loss, grads };
}

/** The sequences of a batch one after another, as the executor takes them (group g's at g * seq). */
export function concatBatch(batch: readonly Batch[]): Batch {
  const join = (xs: readonly Int32Array[]) => {
    const out = new Int32Array(xs.reduce((n, x) => n + x.length, 0));
    xs.reduce((o, x) => (out.set(x, o), o + x.length), 0);
    return out;
  };
  return { tokens: join(batch.map((b) => b.tokens)), labels: join(batch.map((b) => b.labels)) };
}
