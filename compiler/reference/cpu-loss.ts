// Float64 next-token cross-entropy over [rows, vocab] logits. Rows whose label is -1 are
// ignored; the sum is divided by `denominator`, passed in so that a chunk can divide by
// the count of the whole sequence (see countLabels).

export const IGNORE_LABEL = -1;

/** Labels that count toward the mean. */
export function countLabels(labels: Int32Array): number {
  let n = 0;
  for (const l of labels) if (l !== IGNORE_LABEL) n++;
  return n;
}

function logSumExp(logits: Float64Array, o: number, vocab: number): number {
  let m = -Infinity;
  for (let c = 0; c < vocab; c++) m = Math.max(m, logits[o + c]);
  let s = 0;
  for (let c = 0; c < vocab; c++) s += Math.exp(logits[o + c] - m);
  return m + Math.log(s);
}

function checkLabel(l: number, r: number, vocab: number): void {
  if (l < 0 || l >= vocab) throw new RangeError(`label ${l} at row ${r} is outside the vocabulary of ${vocab}`);
}

/** sum over counted rows of (logsumexp(logits) - logits[label]), divided by denominator */
export function crossEntropyFwd(logits: Float64Array, labels: Int32Array, rows: number, vocab: number, denominator: number): number {
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    const l = labels[r];
    if (l === IGNORE_LABEL) continue;
    checkLabel(l, r, vocab);
    sum += logSumExp(logits, r * vocab, vocab) - logits[r * vocab + l];
  }
  return sum / denominator;
}

/** dlogits = dloss * (softmax(logits) - onehot(label)) / denominator; zero on ignored rows */
export function crossEntropyBwd(dloss: number, logits: Float64Array, labels: Int32Array, rows: number, vocab: number, denominator: number): Float64Array {
  const dl = new Float64Array(rows * vocab);
  const scale = dloss / denominator;
  for (let r = 0; r < rows; r++) {
    const l = labels[r];
    if (l === IGNORE_LABEL) continue;
    checkLabel(l, r, vocab);
    const o = r * vocab;
    const lse = logSumExp(logits, o, vocab);
    for (let c = 0; c < vocab; c++) dl[o + c] = Math.exp(logits[o + c] - lse) * scale;
    dl[o + l] -= scale;
  }
  return dl;
}
