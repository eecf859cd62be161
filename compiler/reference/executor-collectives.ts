// Collectives across the virtual ranks, in float64. Each takes every rank's input (in rank
// order) and returns every rank's output; the executor runs one only when every rank's comm
// stream has reached it. With dp groups, a collective of `span: 'sp'` runs in each group of
// sp consecutive ranks on its own, one of `span: 'world'` (or no span) over all ranks. The
// table is keyed by the catalog's collectives (schedule/ops.ts); each reads `src`, writes `dst`.
import { COLLECTIVE_OPS, type CollectiveOp } from '../schedule/ops.js';
import type { Instr } from '../schedule/types.js';

export const COLLECTIVES: ReadonlySet<string> = COLLECTIVE_OPS;

const attr = (i: Instr, k: string): number => {
  const x = i.attrs[k];
  if (typeof x !== 'number') throw new Error(`executor: ${i.op} ${i.id} needs a numeric attribute '${k}'`);
  return x;
};

/** Rank p's shard n at p*n of the result. */
export function allGather(ins: readonly Float64Array[]): Float64Array[] {
  const n = ins[0].length;
  const full = new Float64Array(n * ins.length);
  ins.forEach((x, p) => full.set(x, p * n));
  return ins.map(() => full.slice());
}

/** Sum over ranks, then rank r keeps block r. */
export function reduceScatter(ins: readonly Float64Array[]): Float64Array[] {
  const sum = allReduce(ins)[0];
  const n = sum.length / ins.length;
  return ins.map((_, r) => sum.slice(r * n, (r + 1) * n));
}

export function allReduce(ins: readonly Float64Array[]): Float64Array[] {
  const sum = new Float64Array(ins[0].length);
  for (const x of ins) for (let i = 0; i < sum.length; i++) sum[i] += x[i];
  return ins.map(() => sum.slice());
}

interface A2A {
  /** rows per rank, ranks, global heads of the tensor, head dim, heads per rank */
  c: number;
  P: number;
  H: number;
  d: number;
  hL: number;
  /** global head of local head h on rank r; may be >= H (padding) */
  head: (r: number, h: number) => number;
}

function a2aGeometry(i: Instr): A2A {
  const G = attr(i, 'group');
  const hqL = attr(i, 'qHeadsPerRank');
  const hL = attr(i, 'localHeads');
  // query-type tensors split heads evenly; kv-type ones start at the kv head of the rank's first q head
  const head = G === 1 ? (r: number, h: number) => r * hL + h : (r: number, h: number) => Math.floor((r * hqL) / G) + h;
  return { c: attr(i, 'rows'), P: attr(i, 'ranks'), H: attr(i, 'heads'), d: attr(i, 'headDim'), hL, head };
}

/** [c, H, d] per rank -> [P*c, hL, d] per rank (row p*c+t is rank p's row t); padding heads zero. */
function seqToHeads(ins: readonly Float64Array[], g: A2A): Float64Array[] {
  return ins.map((_, r) => {
    const out = new Float64Array(g.P * g.c * g.hL * g.d);
    for (let p = 0; p < g.P; p++)
      for (let t = 0; t < g.c; t++)
        for (let h = 0; h < g.hL; h++) {
          const gh = g.head(r, h);
          if (gh >= g.H) continue;
          const src = (t * g.H + gh) * g.d;
          out.set(ins[p].subarray(src, src + g.d), ((p * g.c + t) * g.hL + h) * g.d);
        }
    return out;
  });
}

/** The inverse: each global head sums what every rank holding it has (replicated kv heads' gradients). */
function headsToSeq(ins: readonly Float64Array[], g: A2A): Float64Array[] {
  return ins.map((_, r) => {
    const out = new Float64Array(g.c * g.H * g.d);
    for (let p = 0; p < g.P; p++)
      for (let t = 0; t < g.c; t++)
        for (let h = 0; h < g.hL; h++) {
          const gh = g.head(p, h);
          if (gh >= g.H) continue;
          const src = ((r * g.c + t) * g.hL + h) * g.d;
          const dst = (t * g.H + gh) * g.d;
          for (let e = 0; e < g.d; e++) out[dst + e] += ins[p][src + e];
        }
    return out;
  });
}

/**
 * Runs a collective over the ranks it spans: each group of `ranks` consecutive ranks for
 * `span: 'sp'`, every rank otherwise. `ranks` must say how many ranks that is.
 */
export function runSpannedCollective(i: Instr, ins: readonly Float64Array[]): Float64Array[] {
  const n = attr(i, 'ranks');
  const grouped = i.attrs.span === 'sp';
  if (i.attrs.span !== undefined && !grouped && i.attrs.span !== 'world') throw new Error(`executor: ${i.op} ${i.id} spans '${String(i.attrs.span)}', not sp or world`);
  if (!grouped) {
    if (n !== ins.length) throw new Error(`executor: ${i.op} ${i.id} says ${n} ranks but spans the world of ${ins.length}`);
    return runCollective(i, ins);
  }
  if (ins.length % n !== 0) throw new Error(`executor: ${i.op} ${i.id} runs in groups of ${n} ranks, which do not divide the world of ${ins.length}`);
  const out: Float64Array[] = [];
  for (let g = 0; g < ins.length; g += n) out.push(...runCollective(i, ins.slice(g, g + n)));
  return out;
}

/** Every rank's `src` in, every rank's `dst` out. */
const COLLECTIVE_RULES: { readonly [K in CollectiveOp]: (i: Instr, ins: readonly Float64Array[]) => Float64Array[] } = {
  all_gather: (_, ins) => allGather(ins),
  reduce_scatter: (_, ins) => reduceScatter(ins),
  all_reduce: (_, ins) => allReduce(ins),
  all_to_all: (i, ins) => {
    const g = a2aGeometry(i);
    if (i.attrs.dir === 'seq_to_heads') return seqToHeads(ins, g);
    if (i.attrs.dir === 'heads_to_seq') return headsToSeq(ins, g);
    throw new Error(`executor: all_to_all ${i.id} has no direction '${String(i.attrs.dir)}'`);
  },
};

export function runCollective(i: Instr, ins: readonly Float64Array[]): Float64Array[] {
  const rule = COLLECTIVE_RULES[i.op as CollectiveOp] as (typeof COLLECTIVE_RULES)[CollectiveOp] | undefined;
  if (!rule) throw new Error(`executor: ${i.op} is not a collective`);
  return rule(i, ins);
}
