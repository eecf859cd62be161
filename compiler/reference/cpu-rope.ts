// Float64 rotary position embedding on [rows, heads, d], rotate-half convention (Hugging
// Face Llama): on the first rotaryDim dims, pairs (i, i + rotaryDim/2) rotate by angle
// pos * invFreq[i] with invFreq[i] = theta^(-2i/rotaryDim), optionally rescaled (Llama 3.1's
// `llama3` scaling); the remaining dims pass through (partial rotary).
import type { RopeScaling } from '../ir/types.js';

/** Per-row positions: an explicit array, or `start` for the contiguous rows start, start+1, ... */
export type Positions = Int32Array | number;

const positionOf = (p: Positions, r: number) => (typeof p === 'number' ? p + r : p[r]);

/**
 * The rotation's inverse frequencies. With llama3 scaling, a frequency whose wavelength is
 * shorter than originalMaxPositions/highFreqFactor is kept, one longer than
 * originalMaxPositions/lowFreqFactor is divided by factor, and one in between is a linear blend
 * of the two, weighted by where originalMaxPositions/wavelength falls between the two factors.
 */
export function ropeInvFreq(rotaryDim: number, theta: number, scaling?: RopeScaling): Float64Array {
  const half = rotaryDim / 2;
  const inv = Float64Array.from({ length: half }, (_, i) => theta ** (-(2 * i) / rotaryDim));
  if (!scaling) return inv;
  if (scaling.type !== 'llama3') throw new RangeError(`rope scaling type '${String(scaling.type)}' is not known to the reference`);
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
  const shortest = originalMaxPositions / highFreqFactor; // wavelengths below it are kept
  const longest = originalMaxPositions / lowFreqFactor; // wavelengths above it are slowed
  return inv.map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength < shortest) return f;
    if (wavelength > longest) return f / factor;
    const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

function rotate(x: Float64Array, rows: number, heads: number, d: number, rotaryDim: number, theta: number, positions: Positions, sign: 1 | -1, scaling?: RopeScaling): Float64Array {
  if (rotaryDim % 2 !== 0 || rotaryDim > d) throw new RangeError(`rotary dim ${rotaryDim} must be even and at most ${d}`);
  const half = rotaryDim / 2;
  const y = x.slice(0, rows * heads * d);
  const invFreq = ropeInvFreq(rotaryDim, theta, scaling);
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

export function rope(x: Float64Array, rows: number, heads: number, d: number, rotaryDim: number, theta: number, positions: Positions, scaling?: RopeScaling): Float64Array {
  return rotate(x, rows, heads, d, rotaryDim, theta, positions, 1, scaling);
}

/** The rotation is orthogonal: its backward rotates by the opposite angle. */
export function ropeBwd(dy: Float64Array, rows: number, heads: number, d: number, rotaryDim: number, theta: number, positions: Positions, scaling?: RopeScaling): Float64Array {
  return rotate(dy, rows, heads, d, rotaryDim, theta, positions, -1, scaling);
}
