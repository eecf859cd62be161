// Where the executor keeps a rank's bytes, and how model state goes in and comes out.
//
// Each rank has one GPU arena and one host arena laid out by the memory plan, so that two
// buffers the plan lets share bytes really do share them here. Memory is modelled in cells of
// two bytes (the smallest dtype): an element of b bytes covers b/2 cells and is written to all
// of them; a read whose cells disagree (another buffer wrote part of the element) gives NaN.
// Arenas start as NaN: a read of bytes nothing wrote shows up as NaN in the results.
import { DTYPE_BYTES } from '../ir/types.js';
import type { MemoryPlan } from '../schedule/memory.js';
import { groupPosition, groupsOf, PACKED_BUFFERS, type Buffer, type Schedule } from '../schedule/types.js';
import type { ResolvedRef } from '../schedule/unroll.js';

const CELL = 2;

/** Where one buffer lies: arena and first cell; slot s starts `s * elems * cellsPerElem` cells later. */
export interface BufferHome {
  readonly buf: Buffer;
  readonly space: 'gpu' | 'host';
  readonly cell: number;
  readonly cellsPerElem: number;
  /** cells the plan reserves for it (all slots, aligned) */
  readonly cells: number;
}

/**
 * `planned`: offsets from the memory plan, so buffers the plan lets share bytes share them.
 * `private`: every buffer its own bytes, to tell a schedule's own races from the plan's reuse.
 */
export type ArenaMode = 'planned' | 'private';

export function bufferHomes(s: Schedule, plan: MemoryPlan, mode: ArenaMode = 'planned'): Map<string, BufferHome> {
  const place = new Map(plan.placements.map((p) => [p.buf, p]));
  const homes = new Map<string, BufferHome>();
  const top = { gpu: 0, host: 0 };
  for (const b of s.buffers) {
    const p = place.get(b.id);
    if (!p) throw new Error(`executor: the memory plan has no place for buffer ${b.id}`);
    const offset = mode === 'planned' ? p.offset : top[b.space];
    top[b.space] += p.size;
    homes.set(b.id, { buf: b, space: b.space, cell: offset / CELL, cellsPerElem: DTYPE_BYTES[b.dtype] / CELL, cells: p.size / CELL });
  }
  return homes;
}

/** Cells each arena needs for these homes. */
function arenaCells(homes: ReadonlyMap<string, BufferHome>, space: 'gpu' | 'host'): number {
  let n = 0;
  for (const h of homes.values()) if (h.space === space) n = Math.max(n, h.cell + h.cells);
  return n;
}

/** One rank's memory: a GPU arena and a host arena of float64 cells. */
export class RankMemory {
  readonly arenas: Record<'gpu' | 'host', Float64Array>;
  constructor(readonly homes: ReadonlyMap<string, BufferHome>) {
    this.arenas = { gpu: new Float64Array(arenaCells(homes, 'gpu')).fill(NaN), host: new Float64Array(arenaCells(homes, 'host')).fill(NaN) };
  }

  private home(buf: string): BufferHome {
    const h = this.homes.get(buf);
    if (!h) throw new Error(`executor: unknown buffer ${buf}`);
    return h;
  }

  read(r: ResolvedRef): Float64Array {
    const h = this.home(r.buf);
    const a = this.arenas[h.space];
    const k = h.cellsPerElem;
    const out = new Float64Array(r.end - r.start);
    let c = h.cell + (r.slot * h.buf.elems + r.start) * k;
    for (let i = 0; i < out.length; i++, c += k) {
      const x = a[c];
      // a torn element (cells from different writers) is no number at all
      out[i] = k === 2 && !Object.is(a[c + 1], x) ? NaN : x;
    }
    return out;
  }

  write(r: ResolvedRef, x: ArrayLike<number>): void {
    const h = this.home(r.buf);
    if (x.length !== r.end - r.start) throw new Error(`executor: writing ${x.length} elements into ${r.buf}[${r.start}, ${r.end})`);
    const a = this.arenas[h.space];
    const k = h.cellsPerElem;
    let c = h.cell + (r.slot * h.buf.elems + r.start) * k;
    for (let i = 0; i < x.length; i++, c += k) {
      a[c] = x[i];
      if (k === 2) a[c + 1] = x[i];
    }
  }

  /** NaN over every byte the plan reserves for a buffer: it was freed. */
  poison(buf: string): void {
    const h = this.home(buf);
    this.arenas[h.space].fill(NaN, h.cell, h.cell + h.cells);
  }

  /** The whole of slot 0 of a buffer. */
  whole(buf: string): ResolvedRef {
    return { buf, slot: 0, start: 0, end: this.home(buf).buf.elems };
  }
}

// ---- model state in and out ----

export interface StepInputs {
  readonly params: Readonly<Record<string, Float64Array>>;
  /** the sequences of all dp groups one after another (group g's at g * seq); one sequence when dp = 1 */
  readonly tokens: Int32Array;
  readonly labels: Int32Array;
  /** packed documents (config.packed): each token's position inside its document and its document's id, laid out like the tokens */
  readonly positions?: Int32Array;
  readonly docs?: Int32Array;
  /**
   * What the loss and gradients divide by (default: the labels counted here). Accumulating K
   * windows divides each by the count over all K, so that their sum is the batch's mean.
   */
  readonly labelCount?: number;
}

/** The global token index held by local row t of rank r (DESIGN.md section 2, token layout). */
export function globalRow(t: number, r: number, C: number, P: number): number {
  const c = C / P;
  return Math.floor(t / c) * C + r * c + (t % c);
}

/**
 * The parameter layout as the executor uses it, taken from the schedule's table and nowhere else:
 * a layout the lowering got wrong is not agreed on by a second copy of the same code.
 */
export interface ParamLayout {
  /** tensors keyed by graph value, offsets inside one layer's vector / the global vector */
  readonly layer: readonly { id: string; off: number; len: number }[];
  readonly global: readonly { id: string; off: number; len: number }[];
  readonly nL: number;
  readonly nG: number;
  readonly zero3: boolean;
  readonly P: number;
}

export function layoutOf(s: Schedule): ParamLayout {
  const t = s.params;
  if (!t) throw new Error(`executor: the schedule of ${s.model} has no parameter table`);
  const of = (part: 'layers' | 'global') => t.tensors.filter((p) => p.part === part).map((p) => ({ id: p.value, off: p.offset, len: p.len }));
  return { layer: of('layers'), global: of('global'), nL: t.layerElems, nG: t.globalElems, zero3: t.zero3, P: t.ranks };
}

/** Layer l's parameters as one flat vector of nL elements (padding zero). */
function layerVector(pl: ParamLayout, params: Readonly<Record<string, Float64Array>>, l: number): Float64Array {
  const out = new Float64Array(pl.nL);
  for (const p of pl.layer) out.set(params[p.id].subarray(l * p.len, (l + 1) * p.len), p.off);
  return out;
}

function globalVector(pl: ParamLayout, params: Readonly<Record<string, Float64Array>>): Float64Array {
  const out = new Float64Array(pl.nG);
  for (const p of pl.global) out.set(params[p.id], p.off);
  return out;
}

/** Rank r's part of a flat vector: a ZeRO-3 shard or the whole. */
const shardOf = (pl: ParamLayout, x: Float64Array, r: number): Float64Array => (pl.zero3 ? x.subarray((r * x.length) / pl.P, ((r + 1) * x.length) / pl.P) : x);

/**
 * Writes parameters (and their fp32 master copies, zero moments), tokens, labels and nvalid into
 * rank r: its ZeRO-3 shard of the world, its pieces of its group's sequence, and the count of
 * labels over every group's sequence (the loss is the mean over all of them).
 */
export function loadRank(mem: RankMemory, s: Schedule, pl: ParamLayout, inputs: StepInputs, r: number): void {
  for (const part of ['layers', 'global'] as const) {
    const vecs = part === 'layers' ? Array.from({ length: s.layers }, (_, l) => layerVector(pl, inputs.params, l)) : [globalVector(pl, inputs.params)];
    const flat = concat(vecs.map((x) => shardOf(pl, x, r)));
    mem.write(mem.whole(`params.${part}`), flat);
    mem.write(mem.whole(`optim.master.${part}`), flat);
    mem.write(mem.whole(`optim.m.${part}`), new Float64Array(flat.length));
    mem.write(mem.whole(`optim.v.${part}`), new Float64Array(flat.length));
  }
  loadWindow(mem, s, inputs, r);
}

/** Rank r's pieces of one step's sequences (tokens, labels, packed inputs) and the label count. */
export function loadWindow(mem: RankMemory, s: Schedule, inputs: StepInputs, r: number): void {
  const { sp: P, dp } = groupsOf(s);
  const seq = s.config.seq;
  if (inputs.tokens.length !== dp * seq || inputs.labels.length !== dp * seq)
    throw new Error(`executor: ${dp} sequence(s) of ${seq} tokens needed, got ${inputs.tokens.length} tokens and ${inputs.labels.length} labels`);
  const local = seq / P;
  const base = Math.floor(r / P) * seq;
  const rows = (src: Int32Array) => Float64Array.from({ length: local }, (_, t) => src[base + globalRow(t, groupPosition(s, r), s.chunk, P)]);
  mem.write(mem.whole('io.tokens'), rows(inputs.tokens));
  mem.write(mem.whole('io.labels'), rows(inputs.labels));
  if (s.config.packed) {
    if (inputs.positions?.length !== dp * seq || inputs.docs?.length !== dp * seq) throw new Error(`executor: a packed step needs positions and document ids for ${dp} sequence(s) of ${seq} tokens`);
    mem.write(mem.whole(PACKED_BUFFERS.positions), rows(inputs.positions));
    mem.write(mem.whole(PACKED_BUFFERS.docs), rows(inputs.docs));
  }
  let valid = 0;
  for (const l of inputs.labels) if (l !== -1) valid++;
  mem.write(mem.whole('io.nvalid'), [Math.max(1, inputs.labelCount ?? valid)]);
}

function concat(xs: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(xs.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of xs) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

/**
 * Reassembles per-parameter tensors from the ranks' `<prefix>.layers` / `<prefix>.global`
 * buffers: one record stitched from the ZeRO-3 shards, or, for full copies, one record per
 * rank, so that a caller sees ranks that disagree.
 */
export function unpackState(mems: readonly RankMemory[], s: Schedule, pl: ParamLayout, prefix: string): Record<string, Float64Array>[] {
  const perRank = mems.map((m) => ({ layers: m.read(m.whole(`${prefix}.layers`)), global: m.read(m.whole(`${prefix}.global`)) }));
  // One full vector per layer (and for globals) per "view": ZeRO-3 has one view, stitched from
  // all ranks; full copies give one view per rank.
  const views = pl.zero3
    ? [stitch(perRank, s.layers, pl.nL / pl.P, pl.nG / pl.P)]
    : perRank.map((x) => ({ layers: Array.from({ length: s.layers }, (_, l) => x.layers.subarray(l * pl.nL, (l + 1) * pl.nL)), global: x.global }));
  return views.map((v) => {
    const out: Record<string, Float64Array> = {};
    for (const p of pl.layer) {
      const t = new Float64Array(p.len * s.layers);
      v.layers.forEach((vec, l) => t.set(vec.subarray(p.off, p.off + p.len), l * p.len));
      out[p.id] = t;
    }
    for (const p of pl.global) out[p.id] = v.global.slice(p.off, p.off + p.len);
    return out;
  });
}

function stitch(perRank: readonly { layers: Float64Array; global: Float64Array }[], L: number, nl: number, ng: number) {
  const layers = Array.from({ length: L }, (_, l) => concat(perRank.map((x) => x.layers.subarray(l * nl, (l + 1) * nl))));
  const global = concat(perRank.map((x) => x.global.subarray(0, ng)));
  return { layers, global };
}
