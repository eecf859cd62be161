// Float64 linear and embedding, forward and backward, on row-major [rows, features]
// arrays. Rows are tokens, so a chunk of tokens is a contiguous `subarray` of them.
// Functions that produce a parameter gradient add into `into` when it is given, so
// chunks can accumulate into one buffer.

/** y[rows, outF] = x[rows, inF] W[outF, inF]^T (+ b[outF]) */
export function linearFwd(x: Float64Array, w: Float64Array, b: Float64Array | undefined, rows: number, inF: number, outF: number): Float64Array {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    const xo = r * inF;
    for (let o = 0; o < outF; o++) {
      const wo = o * inF;
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[xo + i] * w[wo + i];
      y[r * outF + o] = s;
    }
  }
  return y;
}

/** dx[rows, inF] = dy[rows, outF] W[outF, inF] */
export function linearDx(dy: Float64Array, w: Float64Array, rows: number, inF: number, outF: number): Float64Array {
  const dx = new Float64Array(rows * inF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      const g = dy[r * outF + o];
      if (g === 0) continue;
      const wo = o * inF, xo = r * inF;
      for (let i = 0; i < inF; i++) dx[xo + i] += g * w[wo + i];
    }
  return dx;
}

/** dW[outF, inF] (+)= dy^T x */
export function linearDw(dy: Float64Array, x: Float64Array, rows: number, inF: number, outF: number, into?: Float64Array): Float64Array {
  const dw = into ?? new Float64Array(outF * inF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      const g = dy[r * outF + o];
      if (g === 0) continue;
      const wo = o * inF, xo = r * inF;
      for (let i = 0; i < inF; i++) dw[wo + i] += g * x[xo + i];
    }
  return dw;
}

/** db[outF] (+)= column sums of dy */
export function linearDb(dy: Float64Array, rows: number, outF: number, into?: Float64Array): Float64Array {
  const db = into ?? new Float64Array(outF);
  for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) db[o] += dy[r * outF + o];
  return db;
}

/** y[rows, dim] = table[tokens[r]] */
export function embeddingFwd(tokens: Int32Array, table: Float64Array, dim: number): Float64Array {
  const y = new Float64Array(tokens.length * dim);
  for (let r = 0; r < tokens.length; r++) y.set(table.subarray(tokens[r] * dim, tokens[r] * dim + dim), r * dim);
  return y;
}

/** dTable[vocab, dim] (+)= scatter-add of dy rows at their tokens */
export function embeddingBwd(dy: Float64Array, tokens: Int32Array, vocab: number, dim: number, into?: Float64Array): Float64Array {
  const dt = into ?? new Float64Array(vocab * dim);
  for (let r = 0; r < tokens.length; r++) {
    const t = tokens[r];
    if (t < 0 || t >= vocab) throw new RangeError(`token ${t} at row ${r} is outside the vocabulary of ${vocab}`);
    for (let i = 0; i < dim; i++) dt[t * dim + i] += dy[r * dim + i];
  }
  return dt;
}
