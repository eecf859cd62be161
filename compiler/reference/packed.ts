// The reference for packed documents (lower/packed.ts): a window that holds many documents must
// train exactly as its documents would, each run on its own. The loss of the window is the mean
// over its counted tokens, so each document's own mean (what the interpreter computes on it
// alone) weighs by its share of the window's counted tokens, and so does its gradient; a
// document without a counted token (one of length 1: its only label is the ignored one at its
// end) weighs nothing.
//
// The seeded windows `fpdtc check --packed` runs: documents of random lengths, the first one
// spanning rank and chunk boundaries, one of length 1; labels ignored at each document's end
// and at a random tenth of the other tokens (the loss mask).
import type { Graph } from '../ir/types.js';
import type { BatchResult } from './batch.js';
import { countLabels, IGNORE_LABEL } from './cpu-loss.js';
import type { Batch } from './init.js';
import { interpret } from './interpreter.js';
import { Rng } from './rng.js';

export interface PackedBatch extends Batch {
  /** each token's position inside its document (0 at a document's first token) */
  readonly positions: Int32Array;
  /** each token's document id: 0, 1, 2, ... in window order */
  readonly docs: Int32Array;
}

/** A document of a window: its first token and its length. */
export interface DocumentSpan {
  readonly start: number;
  readonly length: number;
}

/**
 * Document lengths that fill `seq`: first one from the start past the first chunk boundary and
 * the rank boundary after it (C + C/P + 1 tokens, or what fits), then one of length 1, then
 * random lengths of 1 to C.
 */
export function documentLengths(seq: number, chunk: number, sp: number, rng: Rng): number[] {
  const out: number[] = [];
  let left = seq;
  const take = (n: number) => {
    const k = Math.min(n, left);
    if (k > 0) out.push(k);
    left -= k;
  };
  take(chunk + chunk / sp + 1);
  take(1);
  while (left > 0) take(1 + rng.int(chunk));
  return out;
}

/** A seeded packed window of `seq` tokens (see documentLengths); `maskFraction` of the other labels ignored. */
export function packedBatch(seq: number, vocab: number, chunk: number, sp: number, seed: number, maskFraction = 0.1): PackedBatch {
  const rng = new Rng(seed ^ 0x5eed_d0c5);
  const tokens = new Int32Array(seq);
  const labels = new Int32Array(seq);
  const positions = new Int32Array(seq);
  const docs = new Int32Array(seq);
  let t = 0;
  documentLengths(seq, chunk, sp, rng).forEach((n, d) => {
    // each document its own tokens and next-token labels; nothing predicts the next document
    const text = Int32Array.from({ length: n + 1 }, () => rng.int(vocab));
    for (let k = 0; k < n; k++, t++) {
      tokens[t] = text[k];
      labels[t] = k === n - 1 || rng.uniform() < maskFraction ? IGNORE_LABEL : text[k + 1];
      positions[t] = k;
      docs[t] = d;
    }
  });
  return { tokens, labels, positions, docs };
}

/** The documents of a window, from its ids (a new document starts where the id changes). */
export function documentsOf(docs: Int32Array): DocumentSpan[] {
  const out: DocumentSpan[] = [];
  for (let t = 0; t < docs.length; t++) {
    if (t > 0 && docs[t] < docs[t - 1]) throw new RangeError(`document ids must not decrease along the window: ${docs[t - 1]} then ${docs[t]} at token ${t}`);
    if (t === 0 || docs[t] !== docs[t - 1]) out.push({ start: t, length: 1 });
    else out[out.length - 1] = { ...out[out.length - 1], length: out[out.length - 1].length + 1 };
  }
  return out;
}

/**
 * The loss and gradients of packed windows as the token-weighted sum over their documents, each
 * interpreted on its own by the unpacked graph of its length (`graphAt(n)`), at positions 0, 1, ...
 */
export function interpretDocuments(graphAt: (length: number) => Graph, batches: readonly PackedBatch[], params: Readonly<Record<string, Float64Array>>): BatchResult {
  const pieces = batches.flatMap((b) => documentsOf(b.docs).map(({ start, length }) => ({ tokens: b.tokens.slice(start, start + length), labels: b.labels.slice(start, start + length) })));
  const counts = pieces.map((p) => countLabels(p.labels));
  // the step divides by at least one counted token; so does the weight here
  const total = Math.max(1, counts.reduce((a, b) => a + b, 0));
  let loss = 0;
  const grads: Record<string, Float64Array> = {};
  pieces.forEach((p, k) => {
    if (counts[k] === 0) return;
    const w = counts[k] / total;
    const one = interpret(graphAt(p.tokens.length), p, params);
    loss += w * one.loss;
    for (const [id, x] of Object.entries(one.grads)) {
      const acc = (grads[id] ??= new Float64Array(x.length));
      for (let i = 0; i < acc.length; i++) acc[i] += w * x[i];
    }
  });
  return { loss, grads };
}

/** The windows one after another, as the executor takes them (group g's at g * seq). */
export function concatPacked(batches: readonly PackedBatch[]): PackedBatch {
  const join = (xs: readonly Int32Array[]) => {
    const out = new Int32Array(xs.reduce((n, x) => n + x.length, 0));
    xs.reduce((o, x) => (out.set(x, o), o + x.length), 0);
    return out;
  };
  return { tokens: join(batches.map((b) => b.tokens)), labels: join(batches.map((b) => b.labels)), positions: join(batches.map((b) => b.positions)), docs: join(batches.map((b) => b.docs)) };
}
