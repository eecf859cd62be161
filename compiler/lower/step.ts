// Lowers the chunked graph to one rank's schedule for a training step:
//   gather global params; embedding (chunks); layers forward (each: gather, checkpoint,
//   one chunk loop with attention inside); loss and its gradient (chunks); layers backward
//   in reverse (each: gather, fetch checkpoint, recompute / pre / kv+post loops, reduce
//   the layer's gradients); embedding backward; reduce global gradients; AdamW.
// The step's phases (schedule/types.ts): zero (clear the gradient shards), micro (everything
// up to and including the gradient reductions, which add into the shards), update (the norm,
// clipping and AdamW), so that `run --accumulate K` can run K micro steps per update.
import type { Graph, Node, Region } from '../ir/types.js';
import type { Schedule } from '../schedule/types.js';
import { aff, scaleAff, v } from '../schedule/types.js';
import { emitAllToAll, emitAttentionBwd, emitAttentionBwdPrep, emitAttentionFwd, stashChunk, type AttnNames } from './attention.js';
import { Bindings } from './bindings.js';
import { Emitter } from './emitter.js';
import { geometry, spanAttr, type Geometry } from './geometry.js';
import { declareParamBuffers, emitGlobalGatherAndReduce, emitZeroGrads, emitGradNorm, emitOptimizer, globalParamRef, layerLoop, layerParamRef, paramLayout, paramTable, reduceLayerGrads, type ParamLayout } from './params.js';
import { declarePackedInputs, emitDocumentGather } from './packed.js';
import { bindKeptActivations, declareKeptActivations, keptActivations, withoutKept, type KeptActivation } from './kept-activations.js';
import { emitTokenwise } from './tokenwise.js';
import { splitStaticSlots } from './static-slots.js';
import { withoutUnusedBuffers } from './unused-buffers.js';

const IO = { nvalid: 'io.nvalid' };

const isSeed = (n: Node) => n.op === 'ones' && n.attrs.loop === 'global';
const isTok = (g: Graph, id: string) => g.values[id].type.shape[0]?.toString() === 'S';
const isHeads = (g: Graph, id: string) => g.values[id].type.shard?.kind === 'heads';
const rowOf = (g: Graph, id: string) => g.values[id].type.shape.slice(1).reduce((n, d) => n * d.eval(g.sizes), 1);
const loopOf = (n: Node) => {
  const l = String(n.attrs.loop ?? '');
  return l === 'post' ? 'kv' : l; // the post loop is fused into the kv steps
};

/** Values whose consumers run in another loop than their producer (or outside the region). */
function crossLoop(r: Region): Set<string> {
  const made = new Map<string, string>();
  const out = new Set<string>();
  for (const n of r.nodes) {
    for (const i of n.inputs) if (made.has(i) && made.get(i) !== loopOf(n)) out.add(i);
    for (const o of n.outputs) made.set(o, loopOf(n));
  }
  return out;
}

function bindRegionValues(g: Graph, r: Region, b: Bindings, prefix: string, attnKv: Set<string>, stashSpace?: 'gpu'): void {
  const { e, geo } = b;
  const cross = crossLoop(r);
  // A view emits nothing: where its output is already placed (a region result: the layer's output in
  // act.carry), the value it views must be written there, so it takes the same place.
  for (const n of [...r.nodes].reverse()) {
    const [o] = n.outputs;
    if (n.op !== 'view' || !b.has(o) || b.has(n.inputs[0])) continue;
    const at = b.get(o);
    b.set(n.inputs[0], at.kind === 'tok' ? { ...at, row: rowOf(g, n.inputs[0]) } : at);
  }
  sumsInPlace(g, r, b, (o) => placeTok(g, b, prefix, o, cross.has(o)));
  for (const n of r.nodes) {
    n.outputs.forEach((o, k) => {
      if (b.has(o)) return;
      const t = g.values[o].type;
      if (n.op === 'view' || (n.op === 'grad_add' && !isTok(g, o))) {
        const src = b.get(n.inputs[0]);
        b.set(o, src.kind === 'tok' ? { ...src, row: rowOf(g, o) } : src);
        return;
      }
      if (isHeads(g, o)) {
        const H = t.shape.length === 3 ? t.shape[1].eval(g.sizes) : g.sizes.Hq;
        const local = H === g.sizes.Hq ? geo.hqL : geo.kvL;
        const per = t.shape.length === 3 ? geo.C * local * geo.d : geo.hqL * geo.C;
        const shape = t.shape.length === 3 ? [geo.C, local, geo.d] : [geo.hqL, geo.C];
        // two slots, by chunk: a chunk is computed while the previous one is still copied out (stash, kept)
        const chunk = e.buffer(`${prefix}${o}`, 'gpu', t.dtype, shape, 'attn', { value: o, slots: 2 }).id;
        const needStash = cross.has(o) || attnKv.has(o);
        const stash = needStash ? e.buffer(`${prefix}${o}.stash`, stashSpace ?? t.place ?? 'gpu', t.dtype, [geo.u, per], 'stash', { value: o }).id : undefined;
        b.set(o, { kind: 'heads', chunk, per, ...(stash ? { stash } : {}) });
        return;
      }
      if (isTok(g, o)) {
        placeTok(g, b, prefix, o, cross.has(o));
        return;
      }
      throw new Error(`lowering: no place for %${o} (${n.op} output ${k})`);
    });
  }
}

/**
 * A sum of two token-wise gradients whose later term is a linear_dx, each term read by the sum alone and
 * all three in the same chunk loop: both terms take the sum's place (a region result such as the layer's
 * input gradient in act.dcarry, the term of a later such sum, or a buffer of its own), the earlier term's
 * op writes it and the linear_dx adds into it (linear_dx_add), so the terms need no buffers and the sum
 * no instruction. The q, k, v projections' input gradients become one place and two accumulating GEMMs.
 */
function sumsInPlace(g: Graph, r: Region, b: Bindings, place: (o: string) => void): void {
  const at = new Map(r.nodes.map((n, k) => [n, k] as const));
  const producer = new Map<string, Node>();
  const readers = new Map<string, number>();
  for (const n of r.nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) readers.set(i, (readers.get(i) ?? 0) + 1);
  }
  for (const x of r.results) readers.set(x, (readers.get(x) ?? 0) + 1);
  for (const n of [...r.nodes].reverse()) {
    const [o] = n.outputs;
    if (n.op !== 'grad_add' || !isTok(g, o) || n.inputs[0] === n.inputs[1]) continue;
    const terms = n.inputs.map((i) => ({ id: i, by: producer.get(i) }));
    if (terms.some((t) => !t.by || b.has(t.id) || readers.get(t.id) !== 1 || t.by.attrs.loop !== n.attrs.loop || rowOf(g, t.id) !== rowOf(g, o))) continue;
    const [first, later] = [...terms].sort((x, y) => at.get(x.by!)! - at.get(y.by!)!);
    if (later.by!.op !== 'linear_dx' || later.by!.outputs.length !== 1) continue;
    if (!b.has(o)) place(o);
    const to = b.get(o);
    if (to.kind !== 'tok') continue;
    b.set(first.id, to);
    b.set(later.id, to);
    b.addsInto.add(later.id);
  }
}

/** A buffer for token-wise value `o`: the chunk's rows, or the whole local sequence where it crosses chunk loops. */
function placeTok(g: Graph, b: Bindings, prefix: string, o: string, full: boolean): void {
  const { e, geo } = b;
  const row = rowOf(g, o);
  const buf = e.buffer(`${prefix}${o}`, 'gpu', g.values[o].type.dtype, [full ? geo.S / geo.P : geo.c, row], full ? 'act' : 'chunk', { value: o }).id;
  b.set(o, { kind: 'tok', buf, row, full, base: aff(0) });
}

function emitNode(g: Graph, n: Node, b: Bindings, cv: string, names: AttnNames, bwdAttn?: Node): void {
  if (n.op === 'seq_to_heads' || n.op === 'heads_to_seq') emitAllToAll(n, b, cv);
  else if (n.op === 'attention') emitAttentionFwd(n, b, cv, names);
  else emitTokenwise(g, n, b, cv, IO);
  for (const o of n.outputs) stashChunk(b, o, cv);
  if (bwdAttn && n.outputs.includes(bwdAttn.inputs[0])) emitAttentionBwdPrep(bwdAttn, b, cv, names);
}

interface StepCtx {
  readonly g: Graph;
  readonly geo: Geometry;
  readonly e: Emitter;
  readonly b: Bindings;
  readonly pl: ParamLayout;
  readonly space: 'gpu' | 'host';
  readonly ckptSpace: 'gpu' | 'host';
  /**
   * with offload, a layer's working stashes (its chunks of q, k, v, dO, o, lse and the fp32 dq partials,
   * reused by every layer) on the GPU: what grows with the layers (checkpoints, kept attention) stays
   * on the host, and the blocks read their operands without copies
   */
  readonly gpuStashes: boolean;
  /**
   * with host checkpoints, the `gpuCkpt` layers before the last keep theirs on the GPU instead (ckpt.gpu):
   * where the host cannot hold every layer's, the GPU memory left holds some
   */
  readonly gpuCkpt: number;
  /**
   * the layers (the first ones) whose checkpoint is in ckpt.layers; the last layer needs none: its input
   * is still in act.carry when the backward starts with it
   */
  readonly ckptLayers: number;
  /** the last `keep` layers keep their attention tensors for backward instead of recomputing */
  readonly keep: number;
  /** what kept layers keep: see KeepForm */
  readonly form: KeepForm;
  /** the last `keepAct` layers keep these activations on the GPU for backward (kept-activations.ts) */
  readonly keepAct: number;
  readonly acts: readonly KeptActivation[];
  /**
   * where a kept layer's backward finds the attention output in token layout: nowhere where it reads none
   * (a layer that ends in attention); in keep.o with one rank (a chunk of o in heads layout, [c, Hq, d], is
   * the same bytes as its token rows); else in keep.attn, a copy in token layout (the output projection's
   * weight gradient reads it)
   */
  readonly keptTokens: 'none' | 'keep.o' | 'keep.attn';
}

/** The attention tensors of a layer body: q, k, v, o, lse (heads layout) and o back in token layout. */
function attentionTensors(body: Region): { heads: string[]; tokens?: string } | undefined {
  const attn = body.nodes.find((x) => x.op === 'attention');
  if (!attn) return undefined;
  const back = body.nodes.find((x) => x.op === 'heads_to_seq' && x.inputs[0] === attn.outputs[0]);
  return { heads: [...attn.inputs, ...attn.outputs], tokens: back?.outputs[0] };
}

const KEPT = ['q', 'k', 'v', 'o', 'lse'];

/**
 * What a kept layer keeps from its forward: `all` of q, k, v, o, lse; or only the `outputs` o and lse
 * (what the attention forward makes), its backward recomputing q, k, v by their projections from the
 * layer's checkpoint, a few percent of the attention forward it skips, in 40% of the memory at GQA 4.
 */
export type KeepForm = 'all' | 'outputs';
const keptIn = (form: KeepForm, k: number) => form === 'all' || k >= 3;

/**
 * Buffers that keep the attention tensors of the last `keep` layers from their forward to
 * their backward (in host memory with offload, else on the GPU), so that those layers skip
 * recomputing attention.
 */
function declareKept(s: StepCtx, fwdBody: Region): void {
  const { g, geo, e, b } = s;
  const t = attentionTensors(fwdBody);
  if (!t || s.keep === 0) return;
  t.heads.forEach((id, k) => {
    const h = b.get(id);
    if (h.kind !== 'heads') throw new Error(`lowering: %${id} is not in heads layout`);
    if (!keptIn(s.form, k)) return;
    e.buffer(`keep.${KEPT[k]}`, s.space, g.values[id].type.dtype, [s.keep, geo.u, h.per], 'stash');
  });
  if (t.tokens && s.keptTokens === 'keep.attn') e.buffer('keep.attn', s.space, g.values[t.tokens].type.dtype, [s.keep, geo.S / geo.P, rowOf(g, t.tokens)], 'stash');
}

/** Whether the backward body reads the attention output in token layout outside its recompute loop. */
function backwardReadsAttentionTokens(bwd: Region): boolean {
  const t = attentionTensors(bwd);
  return t?.tokens !== undefined && bwd.nodes.some((x) => x.attrs.loop !== 'recompute' && x.inputs.includes(t.tokens!));
}

/** Chunk `cv` of kept tensor `name` for layer l (kept layers are the last `keep`). */
function keptChunk(s: StepCtx, name: string, cv: string): import('../schedule/types.js').Ref {
  const buf = s.e.buffers.get(`keep.${name}`)!;
  const per = buf.shape[2];
  const layerBase = scaleAff(v('l', 1, -(s.geo.L - s.keep)), s.geo.u * per);
  return s.e.ref(buf.id, { c: layerBase.c, t: { ...layerBase.t, [cv]: per } }, per);
}

function keptRows(s: StepCtx, cv: string): import('../schedule/types.js').Ref {
  const buf = s.e.buffers.get('keep.attn')!;
  const row = buf.shape[2];
  const local = s.geo.S / s.geo.P;
  const layerBase = scaleAff(v('l', 1, -(s.geo.L - s.keep)), local * row);
  return s.e.ref(buf.id, { c: layerBase.c, t: { ...layerBase.t, [cv]: s.geo.c * row } }, s.geo.c * row);
}

function lowerLayerForward(s: StepCtx, n: Node): void {
  const { g, geo, e, b, pl } = s;
  const body = n.body!;
  const rowsD = (geo.S / geo.P) * g.sizes.D;
  b.set(body.params[0], { kind: 'tok', buf: 'act.carry', row: g.sizes.D, full: true, base: aff(0), slot: v('l') });
  b.set(body.results[0], { kind: 'tok', buf: 'act.carry', row: g.sizes.D, full: true, base: aff(0), slot: v('l', 1, 1) });
  body.params.slice(1).forEach((p, k) => b.set(p, { kind: 'flat', ...layerParamRef(e, pl, n.inputs[1 + k]) }));
  const attn = body.nodes.find((x) => x.op === 'attention');
  bindRegionValues(g, body, b, 'f.', new Set(attn ? attn.inputs.slice(1) : []), s.gpuStashes ? 'gpu' : undefined);
  declareKept(s, body);
  if (s.keepAct > 0) declareKeptActivations(e, g, geo, s.acts, s.keepAct);
  const withActs = bindKeptActivations(b, geo, s.acts, s.keepAct, 'fwd');
  const t = attentionTensors(body);
  const layers = (from: number, to: number, { keep, keepAct, ckpt }: Segment) =>
    layerLoop(e, pl, from, to, false, () => {
      const fb = keepAct ? withActs : b;
      if (ckpt !== 'carry') e.copy(e.ref('act.carry', 0, rowsD, v('l')), ckpt === 'gpu' ? gpuCkptRef(s) : e.ref('ckpt.layers', scaleAff(v('l'), rowsD), rowsD));
      e.loop('i', 0, geo.u, 'chunk', () => {
        for (const x of body.nodes) {
          emitNode(g, x, fb, 'i', { prefix: 'f.', space: s.space });
          if (!keep || !t) continue;
          for (const o of x.outputs) {
            const k = t.heads.indexOf(o);
            if (k >= 0 && keptIn(s.form, k)) e.copy(b.chunk(o, 'i'), keptChunk(s, KEPT[k], 'i'));
            if (o === t.tokens && s.keptTokens === 'keep.attn') e.copy(b.rows(o, 'i'), keptRows(s, 'i'));
          }
        }
      });
    }, { startsPass: from === 0, endsPass: to === geo.L });
  for (const [from, to] of layerSegments(s)) layers(from, to, segmentOf(s, from));
}

/**
 * What the layers of a segment keep (attention, activations) and where their checkpoint is: ckpt.layers
 * (host or GPU, by the checkpoint's place), ckpt.gpu (host checkpoints that did not fit), or act.carry
 * itself (the last layer: its input is still there when the backward starts with it, so it is not copied).
 */
interface Segment {
  readonly keep: boolean;
  readonly keepAct: boolean;
  readonly ckpt: 'layers' | 'gpu' | 'carry';
}

function segmentOf(s: StepCtx, from: number): Segment {
  const L = s.geo.L;
  return { keep: from >= L - s.keep, keepAct: from >= L - s.keepAct, ckpt: from >= L - 1 ? 'carry' : from >= s.ckptLayers ? 'gpu' : 'layers' };
}

/** The layer ranges, first to last, within which the same things are kept (attention, activations) and placed (checkpoints). */
function layerSegments(s: StepCtx): [number, number][] {
  const L = s.geo.L;
  const cuts = [...new Set([0, L - s.keep, L - s.keepAct, s.ckptLayers, L - 1, L])].filter((x) => x >= 0 && x <= L).sort((a, b) => a - b);
  return cuts.slice(0, -1).map((x, k) => [x, cuts[k + 1]] as [number, number]).filter(([a, b]) => b > a);
}

/** Layer l's checkpoint where the `gpuCkpt` layers before the last keep theirs on the GPU. */
function gpuCkptRef(s: StepCtx): import('../schedule/types.js').Ref {
  const rowsD = (s.geo.S / s.geo.P) * s.g.sizes.D;
  return s.e.ref('ckpt.gpu', scaleAff(v('l', 1, -s.ckptLayers), rowsD), rowsD);
}

/** The nodes of `nodes` (in order) that the values `ids` depend on. */
function producersOf(nodes: readonly Node[], ids: readonly string[]): Node[] {
  const need = new Set(ids);
  const keep = new Set<Node>();
  for (const n of [...nodes].reverse()) {
    if (!n.outputs.some((o) => need.has(o))) continue;
    keep.add(n);
    n.inputs.forEach((i) => need.add(i));
  }
  return nodes.filter((n) => keep.has(n));
}

function lowerLayerBackward(s: StepCtx, n: Node, fwd: Node): void {
  const { g, geo, e, b, pl } = s;
  const body = n.body!;
  const D = g.sizes.D;
  const rowsD = (geo.S / geo.P) * D;
  b.set(body.params[0], { kind: 'tok', buf: 'act.dcarry', row: D, full: true, base: aff(0), slot: v('l', 1, 1) });
  if (s.ckptSpace === 'gpu') b.set(body.params[1], { kind: 'tok', buf: 'ckpt.layers', row: D, full: true, base: scaleAff(v('l'), rowsD) });
  // the host checkpoint comes back into one of two slots, by layer: the next layer's is fetched while this one runs
  else b.set(body.params[1], { kind: 'tok', buf: 'act.xck', row: D, full: true, base: aff(0), slot: v('l') });
  body.params.slice(2).forEach((p, k) => b.set(p, { kind: 'flat', ...layerParamRef(e, pl, fwd.inputs[1 + k]) }));
  b.set(body.results[0], { kind: 'tok', buf: 'act.dcarry', row: D, full: true, base: aff(0), slot: v('l') });
  body.results.slice(1).forEach((r, k) => {
    const p = pl.layer[k];
    b.set(r, { kind: 'flat', buf: 'grads.acc_layer', off: aff(p.off), len: p.len });
  });
  const attnB = body.nodes.find((x) => x.op === 'attention_bwd');
  const attnF = body.nodes.find((x) => x.op === 'attention');
  bindRegionValues(g, body, b, 'b.', new Set(attnF ? attnF.inputs.slice(1) : []), s.gpuStashes ? 'gpu' : undefined);
  const names: AttnNames = { prefix: 'b.', space: s.gpuStashes ? 'gpu' : s.space };
  const of = (loop: string) => body.nodes.filter((x) => x.attrs.loop === loop);
  const t = attentionTensors(body);
  // Kept layers read q, k, v, o, lse from what their forward kept, and skip the recompute loop.
  const kb = b.clone();
  if (s.keep > 0 && t)
    t.heads.forEach((id, k) => {
      const h = b.get(id);
      if (h.kind !== 'heads' || !keptIn(s.form, k)) return;
      kb.set(id, { ...h, stash: `keep.${KEPT[k]}`, stashBase: scaleAff(v('l', 1, -(geo.L - s.keep)), geo.u * h.per) });
    });
  // layers whose checkpoint stayed on the GPU read it there; the last layer reads its input where the forward left it
  const withCkpt = (x: Bindings, ckpt: Segment['ckpt']) => {
    if (ckpt === 'layers') return x;
    const c = x.clone();
    if (ckpt === 'gpu') c.set(body.params[1], { kind: 'tok', buf: 'ckpt.gpu', row: D, full: true, base: scaleAff(v('l', 1, -s.ckptLayers), rowsD) });
    else c.set(body.params[1], { kind: 'tok', buf: 'act.carry', row: D, full: true, base: aff(0), slot: v('l') });
    return c;
  };
  const kbActs = bindKeptActivations(kb, geo, s.acts, s.keepAct, 'bwd');
  const bActs = bindKeptActivations(b, geo, s.acts, s.keepAct, 'bwd');
  const layers = (from: number, to: number, { keep, keepAct, ckpt }: Segment) => {
    const bb = withCkpt(keepAct ? (keep ? kbActs : bActs) : keep ? kb : b, ckpt);
    const pre = keepAct ? withoutKept(of('pre'), s.acts) : of('pre');
    layerLoop(
      e,
      pl,
      from,
      to,
      true,
      () => {
        e.fill(e.whole('grads.acc_layer'), 0);
        if (s.ckptSpace === 'host' && ckpt === 'layers') e.copy(e.ref('ckpt.layers', scaleAff(v('l'), rowsD), rowsD), e.whole('act.xck', v('l')));
        if (!keep) e.loop('i', 0, geo.u, 'chunk', () => of('recompute').forEach((x) => emitNode(g, x, bb, 'i', names)));
        else if (s.form === 'outputs' && attnF) e.loop('i', 0, geo.u, 'chunk', () => producersOf(of('recompute'), attnF.inputs).forEach((x) => emitNode(g, x, bb, 'i', names)));
        e.loop('i', 0, geo.u, 'chunk', () => {
          if (keep && t?.tokens && s.keptTokens === 'keep.attn') e.copy(keptRows(s, 'i'), bb.rows(t.tokens, 'i'));
          if (keep && t?.tokens && s.keptTokens === 'keep.o') e.copy(keptChunk(s, 'o', 'i'), bb.rows(t.tokens, 'i'));
          pre.forEach((x) => emitNode(g, x, bb, 'i', names, attnB));
        });
        if (attnB) emitAttentionBwd(attnB, bb, names, (cv) => of('post').forEach((x) => emitNode(g, x, bb, cv, names)));
        else e.loop('j', 0, geo.u, 'chunk', () => of('post').forEach((x) => emitNode(g, x, bb, 'j', names)));
        reduceLayerGrads(e, pl);
      },
      // in reverse the pass starts at the last layer and ends at layer 0
      { startsPass: to === geo.L, endsPass: from === 0 },
    );
  };
  for (const [from, to] of layerSegments(s).reverse()) layers(from, to, segmentOf(s, from));
}

export interface LowerOptions {
  /** layers (the last ones) whose attention tensors are kept in host memory for backward */
  readonly keepLayers?: number;
  /** what those layers keep (default all) */
  readonly keepForm?: KeepForm;
  /** with host checkpoints: the last layers that keep theirs on the GPU instead (default none) */
  readonly gpuCheckpointLayers?: number;
  /** layers (the last ones) that keep on the GPU the GEMM outputs their backward would recompute (kept-activations.ts) */
  readonly keepActivations?: number;
  /** with offload: the layers' working stashes on the GPU (see StepCtx.gpuStashes; default off) */
  readonly gpuStashes?: boolean;
}

export function lowerStep(g: Graph, opts: LowerOptions = {}): Schedule {
  const geo = geometry(g);
  const e = new Emitter();
  const repeat = g.main.nodes.find((n) => n.op === 'repeat');
  const repeatBwd = g.main.nodes.find((n) => n.op === 'repeat_bwd');
  if (!repeat || !repeatBwd) throw new Error('lowering: the model needs one repeated layer, differentiated');
  const pl = paramLayout(g, repeat);
  const optimizerSpace = g.config.optimizer === 'host' ? 'host' : 'gpu';
  declareParamBuffers(e, pl, geo.L, optimizerSpace);
  const local = geo.S / geo.P;
  const D = g.sizes.D;
  const ckpt = repeat.outputs[1];
  const ckptSpace = g.values[ckpt]?.type.place ?? 'gpu';
  const space = g.config.offload && g.config.fpdt ? 'host' : 'gpu';
  e.buffer('io.tokens', 'gpu', 'int32', [local], 'io');
  e.buffer('io.labels', 'gpu', 'int32', [local], 'io');
  e.buffer('io.nvalid', 'gpu', 'fp32', [1], 'io');
  e.buffer('io.loss', 'gpu', 'fp32', [1], 'io');
  e.buffer('io.dloss', 'gpu', 'fp32', [1], 'io');
  if (geo.packed) declarePackedInputs(e, geo);
  e.buffer('act.carry', 'gpu', 'bf16', [local, D], 'act', { slots: 2 });
  e.buffer('act.dcarry', 'gpu', 'bf16', [local, D], 'act', { slots: 2 });
  // the last layer's checkpoint is its input, still in act.carry when the backward starts: layers 0 .. L-2 have one
  const gpuCkpt = ckptSpace === 'host' ? Math.max(0, Math.min(geo.L - 1, opts.gpuCheckpointLayers ?? 0)) : 0;
  const ckptLayers = Math.max(0, geo.L - 1 - gpuCkpt);
  if (ckptLayers > 0) e.buffer('ckpt.layers', ckptSpace, 'bf16', [ckptLayers, local, D], 'ckpt');
  if (gpuCkpt > 0) e.buffer('ckpt.gpu', 'gpu', 'bf16', [gpuCkpt, local, D], 'ckpt');
  if (ckptSpace === 'host' && ckptLayers > 0) e.buffer('act.xck', 'gpu', 'bf16', [local, D], 'act', { slots: 2 });
  const b = new Bindings(e, geo);
  const keep = Math.max(0, Math.min(geo.L, opts.keepLayers ?? 0));
  const keptTokens = !backwardReadsAttentionTokens(repeatBwd.body!) ? 'none' : geo.P === 1 ? 'keep.o' : 'keep.attn';
  const form = opts.keepForm ?? 'all';
  const acts = keptActivations(g, repeat.body!, repeatBwd.body!);
  const keepAct = acts.length === 0 ? 0 : Math.max(0, Math.min(geo.L, opts.keepActivations ?? 0));
  const gpuStashes = space === 'host' && opts.gpuStashes === true;
  const s: StepCtx = { g, geo, e, b, pl, space, ckptSpace, gpuCkpt, ckptLayers, gpuStashes, keep, form, keepAct, acts, keptTokens };

  // main-region bindings
  for (const p of pl.global) b.set(p.id, { kind: 'flat', ...globalParamRef(pl, p.id) });
  b.set(g.inputs[0], { kind: 'tok', buf: 'io.tokens', row: 1, full: true, base: aff(0) });
  b.set(g.inputs[1], { kind: 'tok', buf: 'io.labels', row: 1, full: true, base: aff(0) });
  b.set(repeat.inputs[0], { kind: 'tok', buf: 'act.carry', row: D, full: true, base: aff(0), slot: aff(0) });
  b.set(repeat.outputs[0], { kind: 'tok', buf: 'act.carry', row: D, full: true, base: aff(0), slot: aff(geo.L) });
  b.set(repeatBwd.inputs[0], { kind: 'tok', buf: 'act.dcarry', row: D, full: true, base: aff(0), slot: aff(geo.L) });
  b.set(repeatBwd.outputs[0], { kind: 'tok', buf: 'act.dcarry', row: D, full: true, base: aff(0), slot: aff(0) });
  b.set(g.outputs[0], { kind: 'flat', buf: 'io.loss', off: aff(0), len: 1 });
  g.params.forEach((p, k) => {
    const gp = pl.global.find((x) => x.id === p);
    if (gp) b.set(g.outputs[1 + k], { kind: 'flat', buf: 'grads.acc_global', off: aff(gp.off), len: gp.len });
  });
  // gradient sums of whole tensors share the accumulator of their result
  for (const n of [...g.main.nodes].reverse()) {
    if (n.op === 'grad_add' && !isTok(g, n.outputs[0]) && b.has(n.outputs[0])) for (const i of n.inputs) b.set(i, b.get(n.outputs[0]));
    if (n.op === 'ones') b.set(n.outputs[0], { kind: 'flat', buf: 'io.dloss', off: aff(0), len: 1 });
  }
  bindRegionValues(g, { ...g.main, nodes: g.main.nodes.filter((n) => !n.body) }, b, 'm.', new Set());

  emitZeroGrads(e);
  const microAt = e.items().length;
  e.fill(e.whole('io.loss'), 0);
  e.fill(e.whole('grads.acc_global'), 0);
  if (geo.packed) emitDocumentGather(e, geo);
  emitGlobalGatherAndReduce(e, pl, 'gather');
  const nodes = g.main.nodes;
  for (let k = 0; k < nodes.length; ) {
    const n = nodes[k];
    if (n.op === 'repeat') lowerLayerForward(s, n);
    else if (n.op === 'repeat_bwd') lowerLayerBackward(s, n, repeat);
    else if (n.attrs.loop === 'global') {
      if (n.op === 'ones') e.fill(e.whole('io.dloss'), 1);
    } else {
      const loop = n.attrs.loop;
      const run: Node[] = [];
      // The loss seed (`ones`, no inputs) may sit inside the run of the loss loop: it is set
      // before the loop, which stays one loop, so that each chunk's logits are used in the
      // iteration that made them.
      for (; k < nodes.length && (nodes[k].attrs.loop === loop || isSeed(nodes[k])); k++) {
        if (isSeed(nodes[k])) e.fill(e.whole('io.dloss'), 1);
        else run.push(nodes[k]);
      }
      e.loop('i', 0, geo.u, 'chunk', () => run.forEach((x) => emitNode(g, x, b, 'i', { prefix: 'm.', space })));
      continue;
    }
    k++;
  }
  // the loss of every rank of every group: each divided its sum by the count of all dp sequences
  const world = geo.P * geo.dp;
  e.instr({ stream: 'comm', op: 'all_reduce', reads: { src: e.whole('io.loss') }, writes: { dst: e.whole('io.loss') }, attrs: { ...spanAttr(geo.dp, 'world'), ranks: world, n: 1 } });
  emitGlobalGatherAndReduce(e, pl, 'reduce');
  const updateAt = e.items().length;
  emitGradNorm(e, pl, world);
  emitOptimizer(e, g.config.lr, optimizerSpace === 'host');
  const body = e.items();

  return withoutUnusedBuffers(splitStaticSlots({
    model: g.name,
    config: g.config,
    world,
    chunk: geo.C,
    chunks: geo.u,
    layers: geo.L,
    buffers: [...e.buffers.values()],
    events: {},
    body,
    sizes: g.sizes,
    keptLayers: keep,
    ...(keep > 0 ? { keptForm: form } : {}),
    ...(gpuCkpt > 0 ? { gpuCheckpointLayers: gpuCkpt } : {}),
    ...(keepAct > 0 ? { keptActivationLayers: keepAct } : {}),
    ...(gpuStashes ? { gpuStashes: true } : {}),
    params: paramTable(g, pl),
    phases: { micro: body[microAt].id, update: body[updateAt].id },
  }));
}

