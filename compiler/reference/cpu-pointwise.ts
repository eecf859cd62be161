// Float64 elementwise ops: GeLU (tanh approximation), SwiGLU, and the residual add.

const GELU_C = Math.sqrt(2 / Math.PI);

/** 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
export function geluFwd(x: Float64Array): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    y[i] = 0.5 * v * (1 + Math.tanh(GELU_C * (v + 0.044715 * v * v * v)));
  }
  return y;
}

export function geluBwd(dy: Float64Array, x: Float64Array): Float64Array {
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const t = Math.tanh(GELU_C * (v + 0.044715 * v * v * v));
    const dt = (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * v * v);
    dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * dt);
  }
  return dx;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** silu(g) * u */
export function swigluFwd(g: Float64Array, u: Float64Array): Float64Array {
  const y = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) y[i] = g[i] * sigmoid(g[i]) * u[i];
  return y;
}

export function swigluBwd(dy: Float64Array, g: Float64Array, u: Float64Array): { dg: Float64Array; du: Float64Array } {
  const dg = new Float64Array(g.length);
  const du = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    const s = sigmoid(g[i]);
    du[i] = dy[i] * g[i] * s;
    dg[i] = dy[i] * u[i] * s * (1 + g[i] * (1 - s));
  }
  return { dg, du };
}

export function addFwd(a: Float64Array, b: Float64Array): Float64Array {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i] + b[i];
  return y;
}
