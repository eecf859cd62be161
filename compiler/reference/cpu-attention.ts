// Float64 softmax attention in the block form FPDT streams: one block of query rows
// against one block of key rows, each with its own token positions, returning the
// block's output and natural-log log-sum-exp; blocks merge with `mergeAttention`.
// Layouts: q, o [rows, hq, d]; k, v [rows, hkv, d]; lse [hq, rows] (as the IR's
// attention output). GQA: query head h reads kv head floor(h / (hq / hkv)).
// Packed documents: with document ids of the query and key rows, a pair of different
// documents is masked as well (lower/packed.ts).
import type { Positions } from './cpu-rope.js';

export interface AttentionBlock {
  /** query rows and key rows in this block */
  lq: number;
  lk: number;
  hq: number;
  hkv: number;
  d: number;
  /** token positions of the query rows and key rows (array, or first position of contiguous rows) */
  qPos: Positions;
  kPos: Positions;
  /** mask keys whose position is after the query's */
  causal: boolean;
  /** packed documents: each row's document id; a query sees only keys of its own document */
  qDoc?: Int32Array;
  kDoc?: Int32Array;
  /** softmax scale, default 1/sqrt(d) */
  scale?: number;
}

const pos = (p: Positions, r: number) => (typeof p === 'number' ? p + r : p[r]);

function groupSize(a: AttentionBlock): number {
  if (a.hq % a.hkv !== 0) throw new RangeError(`${a.hq} query heads are not a multiple of ${a.hkv} kv heads`);
  return a.hq / a.hkv;
}

/** Scores of one query row and head against every key row; -Infinity where masked. */
function scores(q: Float64Array, k: Float64Array, a: AttentionBlock, i: number, h: number, out: Float64Array): void {
  const kh = Math.floor(h / groupSize(a));
  const scale = a.scale ?? 1 / Math.sqrt(a.d);
  const qo = (i * a.hq + h) * a.d;
  const qp = pos(a.qPos, i);
  const qd = a.qDoc?.[i];
  for (let j = 0; j < a.lk; j++) {
    if ((a.causal && pos(a.kPos, j) > qp) || (qd !== undefined && a.kDoc![j] !== qd)) {
      out[j] = -Infinity;
      continue;
    }
    const ko = (j * a.hkv + kh) * a.d;
    let s = 0;
    for (let c = 0; c < a.d; c++) s += q[qo + c] * k[ko + c];
    out[j] = s * scale;
  }
}

/** One block: o = softmax(q k^T * scale) v over unmasked keys; a fully masked row gives o = 0, lse = -Infinity. */
export function attentionBlockFwd(q: Float64Array, k: Float64Array, v: Float64Array, a: AttentionBlock): { o: Float64Array; lse: Float64Array } {
  const g = groupSize(a);
  const o = new Float64Array(a.lq * a.hq * a.d);
  const lse = new Float64Array(a.hq * a.lq);
  const s = new Float64Array(a.lk);
  for (let i = 0; i < a.lq; i++)
    for (let h = 0; h < a.hq; h++) {
      scores(q, k, a, i, h, s);
      let m = -Infinity;
      for (let j = 0; j < a.lk; j++) m = Math.max(m, s[j]);
      if (m === -Infinity) {
        lse[h * a.lq + i] = -Infinity;
        continue;
      }
      let sum = 0;
      const oo = (i * a.hq + h) * a.d;
      for (let j = 0; j < a.lk; j++) {
        if (s[j] === -Infinity) continue;
        const p = Math.exp(s[j] - m);
        sum += p;
        const vo = (j * a.hkv + Math.floor(h / g)) * a.d;
        for (let c = 0; c < a.d; c++) o[oo + c] += p * v[vo + c];
      }
      for (let c = 0; c < a.d; c++) o[oo + c] /= sum;
      lse[h * a.lq + i] = m + Math.log(sum);
    }
  return { o, lse };
}

/**
 * Folds block (oB, lseB) into the running (oAcc, lseAcc), in place:
 * lse' = logaddexp(lse, lseB), o' = e^(lse - lse') o + e^(lseB - lse') oB.
 */
export function mergeAttention(oAcc: Float64Array, lseAcc: Float64Array, oB: Float64Array, lseB: Float64Array, rows: number, heads: number, d: number): void {
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < rows; i++) {
      const la = lseAcc[h * rows + i], lb = lseB[h * rows + i];
      if (lb === -Infinity) continue;
      const m = Math.max(la, lb);
      const l = m + Math.log(Math.exp(la - m) + Math.exp(lb - m));
      const wa = Math.exp(la - l), wb = Math.exp(lb - l);
      const o = (i * heads + h) * d;
      for (let c = 0; c < d; c++) oAcc[o + c] = wa * oAcc[o + c] + wb * oB[o + c];
      lseAcc[h * rows + i] = l;
    }
}

/** D[hq, rows] = rowsum(dout * o), computed once per query block for the backward. */
export function attentionDelta(o: Float64Array, dout: Float64Array, rows: number, heads: number, d: number): Float64Array {
  const delta = new Float64Array(heads * rows);
  for (let i = 0; i < rows; i++)
    for (let h = 0; h < heads; h++) {
      const off = (i * heads + h) * d;
      let s = 0;
      for (let c = 0; c < d; c++) s += dout[off + c] * o[off + c];
      delta[h * rows + i] = s;
    }
  return delta;
}

/**
 * Backward of one block, added into dq [lq, hq, d], dk and dv [lk, hkv, d]. `o` and `lse`
 * are the final (merged over all key blocks) output and log-sum-exp of the query rows;
 * `delta` is attentionDelta(o, dout), computed here when not given.
 */
export function attentionBlockBwd(
  q: Float64Array, k: Float64Array, v: Float64Array, o: Float64Array, lse: Float64Array, dout: Float64Array,
  dq: Float64Array, dk: Float64Array, dv: Float64Array,
  a: AttentionBlock & { delta?: Float64Array },
): void {
  const g = groupSize(a);
  const scale = a.scale ?? 1 / Math.sqrt(a.d);
  const delta = a.delta ?? attentionDelta(o, dout, a.lq, a.hq, a.d);
  const s = new Float64Array(a.lk);
  for (let i = 0; i < a.lq; i++)
    for (let h = 0; h < a.hq; h++) {
      const l = lse[h * a.lq + i];
      if (l === -Infinity) continue;
      scores(q, k, a, i, h, s);
      const qo = (i * a.hq + h) * a.d;
      const kh = Math.floor(h / g);
      const dl = delta[h * a.lq + i];
      for (let j = 0; j < a.lk; j++) {
        if (s[j] === -Infinity) continue;
        const p = Math.exp(s[j] - l);
        const ko = (j * a.hkv + kh) * a.d;
        let dp = 0;
        for (let c = 0; c < a.d; c++) {
          dv[ko + c] += p * dout[qo + c];
          dp += dout[qo + c] * v[ko + c];
        }
        const ds = p * (dp - dl) * scale;
        for (let c = 0; c < a.d; c++) {
          dq[qo + c] += ds * k[ko + c];
          dk[ko + c] += ds * q[qo + c];
        }
      }
    }
}

/** Copies rows [start, start+len) of an lse laid out [heads, total] into a [heads, len] block. */
export function lseRows(lse: Float64Array, heads: number, total: number, start: number, len: number): Float64Array {
  const out = new Float64Array(heads * len);
  for (let h = 0; h < heads; h++) out.set(lse.subarray(h * total + start, h * total + start + len), h * len);
  return out;
}

/** Writes a [heads, len] block into rows [start, start+len) of an lse laid out [heads, total]. */
export function setLseRows(lse: Float64Array, heads: number, total: number, start: number, block: Float64Array): void {
  const len = block.length / heads;
  for (let h = 0; h < heads; h++) lse.set(block.subarray(h * len, h * len + len), h * total + start);
}

export interface AttentionShape {
  s: number;
  hq: number;
  hkv: number;
  d: number;
  causal: boolean;
  /** packed documents: each row's document id */
  docs?: Int32Array;
}

const whole = (a: AttentionShape): AttentionBlock => ({
  lq: a.s, lk: a.s, hq: a.hq, hkv: a.hkv, d: a.d, qPos: 0, kPos: 0, causal: a.causal,
  ...(a.docs ? { qDoc: a.docs, kDoc: a.docs } : {}),
});

/** Attention over a whole sequence: one block at positions 0..s-1. */
export function attentionFwd(q: Float64Array, k: Float64Array, v: Float64Array, a: AttentionShape): { o: Float64Array; lse: Float64Array } {
  return attentionBlockFwd(q, k, v, whole(a));
}

export function attentionBwd(q: Float64Array, k: Float64Array, v: Float64Array, o: Float64Array, lse: Float64Array, dout: Float64Array, a: AttentionShape): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  attentionBlockBwd(q, k, v, o, lse, dout, dq, dk, dv, whole(a));
  return { dq, dk, dv };
}
