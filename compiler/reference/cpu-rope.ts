// Float64 rotary position embedding on [rows, heads, d], rotate-half convention (Hugging
// Face Llama): on the first rotaryDim dims, pairs (i, i + rotaryDim/2) rotate by angle
// pos * theta^(-2i/rotaryDim); the remaining dims pass through (partial rotary).

/** Per-row positions: an explicit array, or `start` for the contiguous rows start, start+1, ... */
export type Positions = Int32Array | number;

const positionOf = (p: Positions, r: number) => (typeof p === 'number' ? p + r : p[r]);

function rotate(x: Float64Array, rows: number, heads: number, d: number, rotaryDim: number, theta: number, positions: Positions, sign: 1 | -1): Float64Array {
  if (rotaryDim % 2 !== 0 || rotaryDim > d) throw new RangeError(`rotary dim ${rotaryDim} must be even and at most ${d}`);
  const half = rotaryDim / 2;
  const y = x.slice(0, rows * heads * d);
  const invFreq = Array.from({ length: half }, (_, i) => theta ** (-(2 * i) / rotaryDim));
  for (let r = 0; r < rows; r++) {
    const pos = positionOf(positions, r);
    for (let i = 0; i < half; i++) {
      const a = pos * invFreq[i];
      const c = Math.cos(a), s = sign * Math.sin(a);
      for (let h = 0; h < heads; h++) {
        const o = (r * heads + h) * d;
        const x1 = x[o + i], x2 = x[o + i + half];
        y[o + i] = x1 * c - x2 * s;
        y[o + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return y;
}

export function rope(x: Float64Array, rows: number, heads: number, d: number, rotaryDim: number, theta: number, positions: Positions): Float64Array {
  return rotate(x, rows, heads, d, rotaryDim, theta, positions, 1);
}

/** The rotation is orthogonal: its backward rotates by the opposite angle. */
export function ropeBwd(dy: Float64Array, rows: number, heads: number, d: number, rotaryDim: number, theta: number, positions: Positions): Float64Array {
  return rotate(dy, rows, heads, d, rotaryDim, theta, positions, -1);
}
