// Attention in float64: gradients of the block form (GQA, causal, position offsets) vs
// finite differences, and FPDT's chunked form (blocks over kv chunks merged by
// log-sum-exp, backward block by block) equal to attention over the whole sequence.
import { expect } from 'chai';
import * as M from '../../compiler/reference/cpu-math.js';
import { Rng } from '../../compiler/reference/rng.js';
import { dot, expectGradient, randn } from './finite-diff.js';

describe('reference cpu math: attention', () => {
  const rng = new Rng(5);

  function checkBlock(what: string, a: M.AttentionBlock): void {
    const q = randn(rng, a.lq * a.hq * a.d), k = randn(rng, a.lk * a.hkv * a.d), v = randn(rng, a.lk * a.hkv * a.d);
    const r = randn(rng, q.length);
    const f = () => dot(r, M.attentionBlockFwd(q, k, v, a).o);
    const { o, lse } = M.attentionBlockFwd(q, k, v, a);
    const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
    M.attentionBlockBwd(q, k, v, o, lse, r, dq, dk, dv, a);
    expectGradient(`${what} dq`, f, q, dq);
    expectGradient(`${what} dk`, f, k, dk);
    expectGradient(`${what} dv`, f, v, dv);
  }

  it('gradients: GQA, causal, whole sequence', () => {
    checkBlock('causal gqa', { lq: 5, lk: 5, hq: 4, hkv: 2, d: 3, qPos: 0, kPos: 0, causal: true });
  });

  it('gradients: not causal, one kv head for all query heads', () => {
    checkBlock('full mqa', { lq: 4, lk: 3, hq: 3, hkv: 1, d: 2, qPos: 0, kPos: 0, causal: false });
  });

  it('gradients: block at offsets with partly and fully masked rows, explicit positions', () => {
    checkBlock('offset block', { lq: 4, lk: 5, hq: 2, hkv: 1, d: 3, qPos: 5, kPos: 3, causal: true });
    checkBlock('explicit positions', { lq: 3, lk: 4, hq: 2, hkv: 2, d: 2, qPos: Int32Array.of(9, 2, 4), kPos: Int32Array.of(0, 3, 8, 4), causal: true });
  });

  it('a fully masked row gives o = 0 and lse = -Infinity', () => {
    const a: M.AttentionBlock = { lq: 2, lk: 2, hq: 1, hkv: 1, d: 2, qPos: 0, kPos: 1, causal: true };
    const { o, lse } = M.attentionBlockFwd(randn(rng, 4), randn(rng, 4), randn(rng, 4), a);
    expect(lse[0]).to.equal(-Infinity);
    expect([o[0], o[1]]).to.deep.equal([0, 0]);
    expect(Number.isFinite(lse[1])).to.equal(true);
  });

  it('the log-sum-exp is natural-log over scaled scores', () => {
    const q = Float64Array.of(1, 0), k = Float64Array.of(1, 0, 0, 1), v = Float64Array.of(1, 2, 3, 4);
    const full = M.attentionBlockFwd(q, k, v, { lq: 1, lk: 2, hq: 1, hkv: 1, d: 2, qPos: 0, kPos: 0, causal: false });
    const s0 = 1 / Math.sqrt(2), s1 = 0;
    expect(full.lse[0]).to.be.closeTo(Math.log(Math.exp(s0) + Math.exp(s1)), 1e-15);
    const p0 = Math.exp(s0) / (Math.exp(s0) + Math.exp(s1));
    expect(full.o[0]).to.be.closeTo(p0 * 1 + (1 - p0) * 3, 1e-15);
  });

  it('chunked: blocks over 3 kv chunks merged by log-sum-exp equal full attention, forward and backward', () => {
    const [chunks, c, hq, hkv, d] = [3, 4, 4, 2, 3];
    const s = chunks * c;
    const q = randn(rng, s * hq * d), k = randn(rng, s * hkv * d), v = randn(rng, s * hkv * d), dout = randn(rng, s * hq * d);
    const full = M.attentionFwd(q, k, v, { s, hq, hkv, d, causal: true });
    const rowsQ = (x: Float64Array, i: number) => x.subarray(i * c * hq * d, (i + 1) * c * hq * d);
    const rowsK = (x: Float64Array, j: number) => x.subarray(j * c * hkv * d, (j + 1) * c * hkv * d);
    const block = (i: number, j: number): M.AttentionBlock => ({ lq: c, lk: c, hq, hkv, d, qPos: i * c, kPos: j * c, causal: j === i });

    // forward: q chunk i over kv chunks j <= i (FPDT's inner loop)
    const o = new Float64Array(q.length), lse = new Float64Array(hq * s);
    for (let i = 0; i < chunks; i++) {
      const acc = M.attentionBlockFwd(rowsQ(q, i), rowsK(k, 0), rowsK(v, 0), block(i, 0));
      for (let j = 1; j <= i; j++) {
        const b = M.attentionBlockFwd(rowsQ(q, i), rowsK(k, j), rowsK(v, j), block(i, j));
        M.mergeAttention(acc.o, acc.lse, b.o, b.lse, c, hq, d);
      }
      o.set(acc.o, i * c * hq * d);
      M.setLseRows(lse, hq, s, i * c, acc.lse);
    }
    o.forEach((x, i) => expect(x).to.be.closeTo(full.o[i], 1e-13));
    lse.forEach((x, i) => expect(x).to.be.closeTo(full.lse[i], 1e-13));

    // backward: kv chunk j outer, q chunks i >= j inner, dq accumulating across outer steps
    const want = M.attentionBwd(q, k, v, full.o, full.lse, dout, { s, hq, hkv, d, causal: true });
    const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
    const deltas = Array.from({ length: chunks }, (_, i) => M.attentionDelta(rowsQ(o, i), rowsQ(dout, i), c, hq, d));
    for (let j = 0; j < chunks; j++)
      for (let i = j; i < chunks; i++)
        M.attentionBlockBwd(rowsQ(q, i), rowsK(k, j), rowsK(v, j), rowsQ(o, i), M.lseRows(lse, hq, s, i * c, c), rowsQ(dout, i), rowsQ(dq, i), rowsK(dk, j), rowsK(dv, j), { ...block(i, j), delta: deltas[i] });
    dq.forEach((x, i) => expect(x).to.be.closeTo(want.dq[i], 1e-12));
    dk.forEach((x, i) => expect(x).to.be.closeTo(want.dk[i], 1e-12));
    dv.forEach((x, i) => expect(x).to.be.closeTo(want.dv[i], 1e-12));
  });

  it('merging is order-free and ignores an all-masked block', () => {
    const [rows, heads, d] = [2, 1, 2];
    const a = { o: randn(rng, 4), lse: randn(rng, 2) }, b = { o: randn(rng, 4), lse: randn(rng, 2) };
    const ab = { o: a.o.slice(), lse: a.lse.slice() }, ba = { o: b.o.slice(), lse: b.lse.slice() };
    M.mergeAttention(ab.o, ab.lse, b.o, b.lse, rows, heads, d);
    M.mergeAttention(ba.o, ba.lse, a.o, a.lse, rows, heads, d);
    ab.o.forEach((x, i) => expect(x).to.be.closeTo(ba.o[i], 1e-15));
    const masked = { o: new Float64Array(4), lse: Float64Array.of(-Infinity, -Infinity) };
    const before = ab.o.slice();
    M.mergeAttention(ab.o, ab.lse, masked.o, masked.lse, rows, heads, d);
    expect([...ab.o]).to.deep.equal([...before]);
    const empty = { o: new Float64Array(4), lse: Float64Array.of(-Infinity, -Infinity) };
    M.mergeAttention(empty.o, empty.lse, a.o, a.lse, rows, heads, d);
    empty.o.forEach((x, i) => expect(x).to.be.closeTo(a.o[i], 1e-15));
  });
});
