// Finite-difference gradient checks in float64: a fourth-order central stencil, so that
// truncation and rounding both stay far below the 1e-6 relative tolerance.
import { expect } from 'chai';
import { Rng } from '../../compiler/reference/rng.js';

/** d f / d x[i] by (8(f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h, restoring x[i]. */
export function numericPartial(f: () => number, x: Float64Array, i: number, h = 1e-3): number {
  const x0 = x[i];
  const at = (dx: number) => {
    x[i] = x0 + dx;
    return f();
  };
  const d = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h);
  x[i] = x0;
  return d;
}

/**
 * |a - b| over max(|a|, |b|, floor): relative for gradients above `floor`, absolute (scaled
 * by floor) below it, where the finite difference's rounding (~1e-12) would dominate.
 */
export function relativeError(a: number, b: number, floor = 1e-4): number {
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), floor);
}

export interface GradCheckOptions {
  /** check only this many entries, chosen at random (default: all) */
  sample?: number;
  h?: number;
  tol?: number;
  seed?: number;
}

/** Compares analytic d f / d x with finite differences over x's entries (or a sample). */
export function expectGradient(what: string, f: () => number, x: Float64Array, analytic: Float64Array, o: GradCheckOptions = {}): void {
  expect(analytic.length, `${what}: gradient length`).to.equal(x.length);
  const rng = new Rng(o.seed ?? 7);
  const idx = o.sample === undefined || o.sample >= x.length ? [...x.keys()] : Array.from({ length: o.sample }, () => rng.int(x.length));
  let worst = 0, at = -1, fd = 0;
  for (const i of idx) {
    const n = numericPartial(f, x, i, o.h);
    const e = relativeError(analytic[i], n);
    if (e > worst) [worst, at, fd] = [e, i, n];
  }
  expect(worst, `${what}: entry ${at} analytic ${analytic[at]} vs finite difference ${fd}`).to.be.below(o.tol ?? 1e-6);
}

/** sum(w * y): turns a tensor-valued op into the scalar the checks differentiate. */
export function dot(w: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += w[i] * y[i];
  return s;
}

export const randn = (rng: Rng, n: number, std = 1) => rng.normals(n, std);
