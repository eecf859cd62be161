// Every dense, norm, pointwise, rope and loss op: backward against finite differences of
// its forward, on random small inputs in float64.
import { expect } from 'chai';
import * as M from '../../compiler/reference/cpu-math.js';
import { Rng } from '../../compiler/reference/rng.js';
import { dot, expectGradient, randn } from './finite-diff.js';

describe('reference cpu math: gradients vs finite differences', () => {
  const rng = new Rng(42);

  it('linear: dx, dw, db', () => {
    const [rows, inF, outF] = [5, 4, 3];
    const x = randn(rng, rows * inF), w = randn(rng, outF * inF), b = randn(rng, outF), r = randn(rng, rows * outF);
    const f = () => dot(r, M.linearFwd(x, w, b, rows, inF, outF));
    expectGradient('dx', f, x, M.linearDx(r, w, rows, inF, outF));
    expectGradient('dw', f, w, M.linearDw(r, x, rows, inF, outF));
    expectGradient('db', f, b, M.linearDb(r, rows, outF));
  });

  it('linear: weight gradients accumulate over row chunks into one buffer', () => {
    const [rows, inF, outF] = [6, 3, 2];
    const x = randn(rng, rows * inF), r = randn(rng, rows * outF);
    const dw = new Float64Array(outF * inF), db = new Float64Array(outF);
    for (const [a, n] of [[0, 2], [2, 4]]) {
      M.linearDw(r.subarray(a * outF, (a + n) * outF), x.subarray(a * inF, (a + n) * inF), n, inF, outF, dw);
      M.linearDb(r.subarray(a * outF, (a + n) * outF), n, outF, db);
    }
    M.linearDw(r, x, rows, inF, outF).forEach((v, i) => expect(dw[i]).to.be.closeTo(v, 1e-12));
    M.linearDb(r, rows, outF).forEach((v, i) => expect(db[i]).to.be.closeTo(v, 1e-12));
  });

  it('embedding: table gradient, repeated tokens included', () => {
    const [vocab, dim] = [6, 3];
    const tokens = Int32Array.of(1, 4, 1, 0, 5);
    const table = randn(rng, vocab * dim), r = randn(rng, tokens.length * dim);
    expectGradient('dtable', () => dot(r, M.embeddingFwd(tokens, table, dim)), table, M.embeddingBwd(r, tokens, vocab, dim));
    expect(() => M.embeddingBwd(r, Int32Array.of(9, 0, 0, 0, 0), vocab, dim)).to.throw(/outside the vocabulary/);
  });

  it('rmsnorm: dx, dw', () => {
    const [rows, dim, eps] = [4, 6, 1e-5];
    const x = randn(rng, rows * dim), w = randn(rng, dim), r = randn(rng, rows * dim);
    const f = () => dot(r, M.rmsnormFwd(x, w, rows, dim, eps));
    const { dx, dw } = M.rmsnormBwd(r, x, w, rows, dim, eps);
    expectGradient('dx', f, x, dx);
    expectGradient('dw', f, w, dw);
  });

  it('layernorm: dx, dw, db', () => {
    const [rows, dim, eps] = [4, 6, 1e-5];
    const x = randn(rng, rows * dim), w = randn(rng, dim), b = randn(rng, dim), r = randn(rng, rows * dim);
    const f = () => dot(r, M.layernormFwd(x, w, b, rows, dim, eps));
    const { dx, dw, db } = M.layernormBwd(r, x, w, rows, dim, eps);
    expectGradient('dx', f, x, dx);
    expectGradient('dw', f, w, dw);
    expectGradient('db', f, b, db);
  });

  it('gelu (tanh approximation)', () => {
    const x = randn(rng, 20, 2), r = randn(rng, 20);
    expectGradient('dx', () => dot(r, M.geluFwd(x)), x, M.geluBwd(r, x));
    expect(M.geluFwd(Float64Array.of(1))[0]).to.be.closeTo(0.8411919906082768, 1e-15);
  });

  it('swiglu: silu(g) * u', () => {
    const g = randn(rng, 20, 2), u = randn(rng, 20), r = randn(rng, 20);
    const { dg, du } = M.swigluBwd(r, g, u);
    expectGradient('dg', () => dot(r, M.swigluFwd(g, u)), g, dg);
    expectGradient('du', () => dot(r, M.swigluFwd(g, u)), u, du);
  });

  it('rope: partial rotary, position offset and explicit positions', () => {
    const [rows, heads, d, rd, theta] = [5, 3, 8, 4, 10000];
    const x = randn(rng, rows * heads * d), r = randn(rng, x.length);
    for (const pos of [7, Int32Array.of(3, 0, 11, 11, 2)]) {
      const f = () => dot(r, M.rope(x, rows, heads, d, rd, theta, pos));
      expectGradient(`dx at ${pos}`, f, x, M.ropeBwd(r, rows, heads, d, rd, theta, pos));
    }
    // dims past rotaryDim pass through; position 0 is the identity
    const y = M.rope(x, rows, heads, d, rd, theta, 7);
    for (let i = 0; i < rows * heads; i++) for (let c = rd; c < d; c++) expect(y[i * d + c]).to.equal(x[i * d + c]);
    expect([...M.rope(x, 1, heads, d, rd, theta, 0)]).to.deep.equal([...x.subarray(0, heads * d)]);
  });

  it('rope: Hugging Face rotate-half pairs (i, i + rotaryDim/2) with inv_freq theta^(-2i/rotaryDim)', () => {
    const x = Float64Array.of(1, 2, 3, 4);
    const y = M.rope(x, 1, 1, 4, 4, 100, 3);
    const a0 = 3, a1 = 3 * 100 ** -0.5;
    const want = [1 * Math.cos(a0) - 3 * Math.sin(a0), 2 * Math.cos(a1) - 4 * Math.sin(a1), 3 * Math.cos(a0) + 1 * Math.sin(a0), 4 * Math.cos(a1) + 2 * Math.sin(a1)];
    want.forEach((v, i) => expect(y[i]).to.be.closeTo(v, 1e-14));
    // a chunk of rows at an offset equals the same rows of the whole sequence
    const long = randn(rng, 6 * 2 * 4);
    const whole = M.rope(long, 6, 2, 4, 4, 10000, 0);
    const part = M.rope(long.subarray(3 * 8), 3, 2, 4, 4, 10000, 3);
    part.forEach((v, i) => expect(v).to.equal(whole[3 * 8 + i]));
  });

  it('cross-entropy: ignored labels and an explicit denominator', () => {
    const [rows, vocab] = [6, 5];
    const logits = randn(rng, rows * vocab, 2);
    const labels = Int32Array.of(2, -1, 0, 4, -1, 1);
    const denom = 10;
    const f = () => M.crossEntropyFwd(logits, labels, rows, vocab, denom);
    expectGradient('dlogits', f, logits, M.crossEntropyBwd(1, logits, labels, rows, vocab, denom));
    const dl = M.crossEntropyBwd(2.5, logits, labels, rows, vocab, denom);
    for (let c = 0; c < vocab; c++) expect(dl[1 * vocab + c]).to.equal(0);
    expect(M.countLabels(labels)).to.equal(4);
    // uniform logits give log(vocab) per counted row
    expect(M.crossEntropyFwd(new Float64Array(rows * vocab), labels, rows, vocab, 4)).to.be.closeTo(Math.log(vocab), 1e-14);
    // chunks divided by the global count sum to the whole
    const n = M.countLabels(labels);
    const parts = M.crossEntropyFwd(logits.subarray(0, 3 * vocab), labels.subarray(0, 3), 3, vocab, n) + M.crossEntropyFwd(logits.subarray(3 * vocab), labels.subarray(3), 3, vocab, n);
    expect(parts).to.be.closeTo(M.crossEntropyFwd(logits, labels, rows, vocab, n), 1e-14);
  });

  it('adamw: bias-corrected first step moves by lr against the gradient sign after decoupled decay', () => {
    const p = Float64Array.of(1, -2, 0.5), g = Float64Array.of(0.3, -0.1, 0);
    const m = new Float64Array(3), v = new Float64Array(3);
    M.adamwStep(p, g, m, v, { lr: 0.01, step: 1 });
    const decay = 1 - 0.01 * 0.1;
    expect(p[0]).to.be.closeTo(1 * decay - 0.01 * (0.3 / (0.3 + 1e-8)), 1e-15);
    expect(p[1]).to.be.closeTo(-2 * decay + 0.01 * (0.1 / (0.1 + 1e-8)), 1e-15);
    expect(p[2]).to.be.closeTo(0.5 * decay, 1e-15);
    expect(m[0]).to.be.closeTo(0.1 * 0.3, 1e-15);
    expect(v[0]).to.be.closeTo(0.05 * 0.09, 1e-15);
    // second step, written out
    const [m1, v1, p1] = [m[0], v[0], p[0]];
    M.adamwStep(p, g, m, v, { lr: 0.01, step: 2 });
    const m2 = 0.9 * m1 + 0.1 * 0.3, v2 = 0.95 * v1 + 0.05 * 0.09;
    expect(p[0]).to.be.closeTo(p1 * decay - (0.01 * m2) / (1 - 0.81) / (Math.sqrt(v2 / (1 - 0.95 ** 2)) + 1e-8), 1e-15);
  });
});
