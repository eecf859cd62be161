// Attention priced for a known document layout (packed programs, lower/packed.ts). A pure
// function of (schedule, layout): the simulator asks it, per unrolled instruction, whether the
// step issues it and what share of its full flops it does.
//
// What it mirrors:
// - Skipped blocks. An instruction marked DOCUMENTS_MEET (a block off the diagonal and what only
//   it reads: its fetches, its dq round trip) runs only when its query chunk and key chunk hold a
//   document in common: their id ranges [first, last] overlap, exactly the test the GPU program
//   (fpdt_docs_meet) and the float64 executor (reference/documents-meet.ts) make. Otherwise the
//   simulator does not issue it (its events are still recorded).
// - Tiles inside a block that runs. A packed block (`packed: true`) does the (query, key) pairs
//   that share a document: per document, its rows of the query chunk times its rows of the key
//   chunk, restricted to key <= query (the causal triangle) on the diagonal. Counted in exact
//   elements, not in the kernels' tiles (their sizes are codegen's, not the schedule's): a tile
//   that straddles a document edge costs the kernel a whole tile, so this is a lower bound by at
//   most one tile row and column per document edge in a block. The share is that count over the
//   block's count for one document spanning the window (C*C off the diagonal, C(C+1)/2 on it), so
//   a window of one document prices exactly as the full-causal model. The block's flops scale by
//   it; its bytes, its launch overhead and its rate (the calibration's, at the block's length) do
//   not.
// - Everything else (projections, MLP, loss, the q chunk's own transfers) costs the same whatever
//   the documents are: share 1.
//
// The layout is one window of S tokens, the one the simulated rank's group trains; every layer
// sees the same layout, so the simulator's per-layer extrapolation stays exact.
import { readsOf } from './ops.js';
import { walkWindow } from './simulate.js';
import { DOCUMENTS_MEET, evalAff, type Instr, type Schedule } from './types.js';

export interface DocumentLayout {
  /** tokens in the window (the schedule's seq) */
  readonly seq: number;
  /** where each document starts in the window: ascending, starts[0] = 0 */
  readonly starts: readonly number[];
}

/**
 * The layout of a window of `seq` tokens whose documents start at `starts` (offsets in the window,
 * ascending; 0 and starts at or past `seq`, which belong to later windows, change nothing), cut as
 * runtime/packed-window.ts cuts one: a document starts at the window's first token.
 */
export function documentLayout(seq: number, starts: readonly number[]): DocumentLayout {
  const out = [0];
  for (let k = 0; k < starts.length; k++) {
    const x = starts[k];
    if (!Number.isInteger(x) || x < 0) throw new RangeError(`document start ${x} is not a whole number`);
    if (k > 0 && x <= starts[k - 1]) throw new RangeError(`document starts must ascend: ${starts[k - 1]} then ${x}`);
    if (x > 0 && x < seq) out.push(x);
  }
  return { seq, starts: out };
}

/** The id of the document holding token t (ids count documents from 0 along the window). */
export function documentAt(layout: DocumentLayout, t: number): number {
  const s = layout.starts;
  let lo = 0;
  let hi = s.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (s[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The end (exclusive) of document d. */
const documentEnd = (layout: DocumentLayout, d: number): number => (d + 1 < layout.starts.length ? layout.starts[d + 1] : layout.seq);

/** The ids [first, last] of chunk k of C tokens. */
export function chunkDocuments(layout: DocumentLayout, C: number, k: number): readonly [number, number] {
  return [documentAt(layout, k * C), documentAt(layout, (k + 1) * C - 1)];
}

/** Whether chunks q and kv hold a document in common: their id ranges overlap (reference/documents-meet.ts). */
export function chunksMeet(layout: DocumentLayout, C: number, q: number, kv: number): boolean {
  const [q0, q1] = chunkDocuments(layout, C, q);
  const [k0, k1] = chunkDocuments(layout, C, kv);
  return q0 <= k1 && k0 <= q1;
}

const tri = (n: number): number => (n * (n + 1)) / 2;

/** Pairs (t, s), t in [x0, x1), s in [y0, y1), s <= t. */
function causalPairs(x0: number, x1: number, y0: number, y1: number): number {
  if (x1 <= x0 || y1 <= y0) return 0;
  // t in [y0, y1) sees t - y0 + 1 keys; t >= y1 sees all y1 - y0
  const a = Math.max(x0, y0);
  const b = Math.min(x1, y1);
  const ramp = b > a ? tri(b - y0) - tri(a - y0) : 0;
  const flat = Math.max(0, x1 - Math.max(x0, y1)) * (y1 - y0);
  return ramp + flat;
}

/**
 * The (query, key) pairs of the block of query chunk q and key chunk kv (C tokens each) that share
 * a document, keys not after queries when `causal`: per document, its causal triangle (or
 * rectangle) restricted to the block. Only documents in both chunks' id ranges are visited.
 */
export function blockPairs(layout: DocumentLayout, C: number, q: number, kv: number, causal: boolean): number {
  const [qa, qb] = chunkDocuments(layout, C, q);
  const [ka, kb] = chunkDocuments(layout, C, kv);
  let n = 0;
  for (let d = Math.max(qa, ka); d <= Math.min(qb, kb); d++) {
    const a = layout.starts[d];
    const b = documentEnd(layout, d);
    const r0 = Math.max(a, q * C);
    const r1 = Math.min(b, (q + 1) * C);
    const k0 = Math.max(a, kv * C);
    const k1 = Math.min(b, (kv + 1) * C);
    n += causal ? causalPairs(r0, r1, k0, k1) : Math.max(0, r1 - r0) * Math.max(0, k1 - k0);
  }
  return n;
}

/** The share of a block's full-causal work its documents leave: blockPairs over the same block's pairs for one document. */
export function blockShare(layout: DocumentLayout, C: number, q: number, kv: number, causal: boolean): number {
  const whole = causal ? causalPairs(q * C, (q + 1) * C, kv * C, (kv + 1) * C) : C * C;
  return whole === 0 ? 0 : blockPairs(layout, C, q, kv, causal) / whole;
}

/**
 * How a step predicted without a layout prices attention (report.json's `attention_pricing`): a
 * packed program's documents are data, unknown when it is compiled, so its blocks are priced in full.
 */
export function attentionPricing(s: Pick<Schedule, 'config'>): string {
  return s.config.packed
    ? 'full causal (document layout unknown before the step: an upper bound; fpdtc inspect DIR --documents FILE prices a layout)'
    : 'full causal';
}

/** What the simulator asks of a layout about an unrolled instruction. */
export interface DocumentPricing {
  readonly layout: DocumentLayout;
  /** whether the step issues it: false for what a block whose chunks share no document reads */
  runs(ins: Instr, env: Readonly<Record<string, number>>): boolean;
  /** the share of its full flops it does (1 but for packed attention blocks) */
  flopsShare(ins: Instr, env: Readonly<Record<string, number>>): number;
}

const isBlock = (ins: Instr): ins is Instr & { op: 'attn_fwd_block' | 'attn_bwd_block' } => ins.op === 'attn_fwd_block' || ins.op === 'attn_bwd_block';

/** The pricing of `s`'s instructions for `layout`; a program compiled without packing has none. */
export function documentPricing(s: Schedule, layout: DocumentLayout): DocumentPricing {
  if (!s.config.packed) throw new Error(`document pricing: ${s.model} was compiled without packing (every block spans the whole window)`);
  if (layout.seq !== s.config.seq) throw new Error(`document pricing: a layout of ${layout.seq} tokens for a window of ${s.config.seq}`);
  const C = s.chunk;
  const u = s.chunks;
  // per (q, kv, causal): blocks repeat in every layer
  const meets = new Map<number, boolean>();
  const shares = new Map<number, number>();
  const meet = (q: number, kv: number): boolean => {
    const key = q * u + kv;
    let m = meets.get(key);
    if (m === undefined) meets.set(key, (m = chunksMeet(layout, C, q, kv)));
    return m;
  };
  return {
    layout,
    runs: (ins, env) => ins.attrs[DOCUMENTS_MEET] !== true || meet(evalAff(ins.args!.docsQ, env), evalAff(ins.args!.docsKv, env)),
    flopsShare(ins, env) {
      if (!isBlock(ins) || ins.attrs.packed !== true) return 1;
      const { qDocs, kvDocs } = readsOf(ins);
      // a block reads the ids of its chunks: global tokens [kC, (k+1)C) of io.docs or io.docs_seq
      const q = evalAff(qDocs!.off, env) / C;
      const kv = evalAff(kvDocs!.off, env) / C;
      const causal = ins.attrs.causal === true;
      const key = 2 * (q * u + kv) + (causal ? 1 : 0);
      let x = shares.get(key);
      if (x === undefined) shares.set(key, (x = blockShare(layout, C, q, kv, causal)));
      return x;
    },
  };
}

/** A whole step's attention blocks for one layout: what the simulator prices, summed without timing it. */
export interface AttentionWork {
  /** attention block instructions the step issues in full, and with the layout */
  readonly blocks: number;
  readonly blocksRun: number;
  /** instructions not issued: the blocks whose chunks share no document and the transfers only they read */
  readonly skipped: number;
  /** the blocks' flops in full, and what the layout leaves of them */
  readonly fullFlops: number;
  readonly flops: number;
}

/** Every instruction of one rank's whole step (`r` = `rank`, its position in its group), priced for `pricing`'s layout. */
export function attentionWork(s: Schedule, pricing: DocumentPricing, rank = 0): AttentionWork {
  let blocks = 0;
  let blocksRun = 0;
  let skipped = 0;
  let fullFlops = 0;
  let flops = 0;
  walkWindow(s, { rank }, (it, env) => {
    if (it.kind !== 'instr') return;
    const runs = pricing.runs(it, env);
    if (!runs) skipped++;
    if (!isBlock(it)) return;
    blocks++;
    fullFlops += it.flops;
    if (!runs) return;
    blocksRun++;
    flops += it.flops * pricing.flopsShare(it, env);
  });
  return { blocks, blocksRun, skipped, fullFlops, flops };
}
