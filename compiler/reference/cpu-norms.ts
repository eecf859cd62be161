// Float64 RMSNorm and LayerNorm over the last dimension of [rows, dim]. Backward
// recomputes the row statistics from x (nothing is saved between the two).

/** y = x / sqrt(mean(x^2) + eps) * w */
export function rmsnormFwd(x: Float64Array, w: Float64Array, rows: number, dim: number, eps: number): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[o + i] = x[o + i] * inv * w[i];
  }
  return y;
}

/** dx, and dw (added into `dwInto` when given) */
export function rmsnormBwd(dy: Float64Array, x: Float64Array, w: Float64Array, rows: number, dim: number, eps: number, dwInto?: Float64Array): { dx: Float64Array; dw: Float64Array } {
  const dx = new Float64Array(rows * dim);
  const dw = dwInto ?? new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
    const inv = 1 / Math.sqrt(ss / dim + eps);
    // with n = x*inv and g = dy*w: dx = inv * (g - n * mean(g*n))
    let dot = 0;
    for (let i = 0; i < dim; i++) {
      dot += dy[o + i] * w[i] * x[o + i] * inv;
      dw[i] += dy[o + i] * x[o + i] * inv;
    }
    dot /= dim;
    for (let i = 0; i < dim; i++) dx[o + i] = inv * (dy[o + i] * w[i] - x[o + i] * inv * dot);
  }
  return { dx, dw };
}

function rowStats(x: Float64Array, o: number, dim: number, eps: number): [mean: number, inv: number] {
  let mean = 0;
  for (let i = 0; i < dim; i++) mean += x[o + i];
  mean /= dim;
  let v = 0;
  for (let i = 0; i < dim; i++) v += (x[o + i] - mean) ** 2;
  return [mean, 1 / Math.sqrt(v / dim + eps)];
}

/** y = (x - mean) / sqrt(var + eps) * w + b (biased variance, as PyTorch) */
export function layernormFwd(x: Float64Array, w: Float64Array, b: Float64Array, rows: number, dim: number, eps: number): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const [mean, inv] = rowStats(x, o, dim, eps);
    for (let i = 0; i < dim; i++) y[o + i] = (x[o + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}

/** dx, and dw, db (added into the given buffers when given) */
export function layernormBwd(
  dy: Float64Array, x: Float64Array, w: Float64Array, rows: number, dim: number, eps: number,
  dwInto?: Float64Array, dbInto?: Float64Array,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const dx = new Float64Array(rows * dim);
  const dw = dwInto ?? new Float64Array(dim);
  const db = dbInto ?? new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const [mean, inv] = rowStats(x, o, dim, eps);
    // with n = (x-mean)*inv and g = dy*w: dx = inv * (g - mean(g) - n * mean(g*n))
    let sg = 0, sgn = 0;
    for (let i = 0; i < dim; i++) {
      const n = (x[o + i] - mean) * inv;
      const g = dy[o + i] * w[i];
      sg += g;
      sgn += g * n;
      dw[i] += dy[o + i] * n;
      db[i] += dy[o + i];
    }
    sg /= dim;
    sgn /= dim;
    for (let i = 0; i < dim; i++) dx[o + i] = inv * (dy[o + i] * w[i] - sg - (x[o + i] - mean) * inv * sgn);
  }
  return { dx, dw, db };
}
