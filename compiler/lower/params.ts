// Parameter, gradient and optimizer-state buffers. Layer parameters are laid out one
// layer after another, each layer's tensors concatenated in body order; under ZeRO-3 each
// rank keeps 1/P of every layer (and of the global parameters) and gathers a layer into one
// of two slots just before use. P is the whole world (dp groups of sp ranks): a reduce-scatter
// over every rank sums the gradients of all dp sequences and shards them in one collective.
import type { Graph, Node } from '../ir/types.js';
import { numel } from '../ir/types.js';
import type { Affine, ParamTable, ParamTensor, Ref } from '../schedule/types.js';
import { dpOf } from '../config.js';
import { aff, scaleAff, v } from '../schedule/types.js';
import type { Emitter } from './emitter.js';
import { spanAttr } from './geometry.js';

export interface ParamLayout {
  /** stacked layer params in body order, with offsets inside one layer */
  readonly layer: readonly { id: string; off: number; len: number }[];
  readonly global: readonly { id: string; off: number; len: number }[];
  /** elements of one layer (padded to a multiple of P) and of the global group (padded) */
  readonly nL: number;
  readonly nG: number;
  readonly zero3: boolean;
  /** every rank: ZeRO-3 shards and gradient sums span the world, dp groups of sp */
  readonly P: number;
  readonly dp: number;
}

const pad = (n: number, P: number) => Math.ceil(n / P) * P;

export function paramLayout(g: Graph, repeat: Node): ParamLayout {
  const stacked = repeat.inputs.slice(1);
  let off = 0;
  const layer = stacked.map((id) => {
    const len = numel(g.values[id].type, g.sizes) / g.sizes[String(repeat.attrs.count)];
    const e = { id, off, len };
    off += len;
    return e;
  });
  const dp = dpOf(g.config);
  const P = g.config.sp * dp;
  const nL = pad(off, P);
  off = 0;
  const global = g.params
    .filter((p) => !stacked.includes(p))
    .map((id) => {
      const len = numel(g.values[id].type, g.sizes);
      const e = { id, off, len };
      off += len;
      return e;
    });
  return { layer, global, nL, nG: pad(off, P), zero3: g.config.zero === 3, P, dp };
}

/**
 * The schedule's parameter table (schedule/types.ts): names, shapes, init and the offsets of this
 * layout, so that codegen, the reference executor and `run` read the layout from the schedule
 * and never recompute it.
 */
export function paramTable(g: Graph, pl: ParamLayout): ParamTable {
  const entry = (id: string, part: ParamTensor['part'], offset: number, len: number): ParamTensor => {
    const val = g.values[id];
    const shape = val.type.shape.map((d) => d.eval(g.sizes));
    const init = val.init ?? { kind: 'normal', std: 0.02 };
    return {
      value: id,
      name: val.name ?? id,
      shape: part === 'layers' ? shape.slice(1) : shape,
      part,
      offset,
      len,
      init: { kind: init.kind, std: init.kind === 'normal' ? init.std : 0 },
    };
  };
  return {
    tensors: [...pl.layer.map((p) => entry(p.id, 'layers', p.off, p.len)), ...pl.global.map((p) => entry(p.id, 'global', p.off, p.len))],
    layerElems: pl.nL,
    globalElems: pl.nG,
    zero3: pl.zero3,
    ranks: pl.P,
  };
}

/** Declares every buffer of parameters, gradients and AdamW states. */
export function declareParamBuffers(e: Emitter, pl: ParamLayout, L: number, optimizerSpace: 'gpu' | 'host' = 'gpu'): void {
  const shard = (n: number) => (pl.zero3 ? n / pl.P : n);
  e.buffer('params.layers', 'gpu', 'bf16', [L, shard(pl.nL)], 'param');
  e.buffer('params.global', 'gpu', 'bf16', [shard(pl.nG)], 'param');
  if (pl.zero3) {
    e.buffer('gathered.layer', 'gpu', 'bf16', [pl.nL], 'gathered', { slots: 2 });
    e.buffer('gathered.global', 'gpu', 'bf16', [pl.nG], 'gathered');
  }
  e.buffer('grads.acc_layer', 'gpu', 'fp32', [pl.nL], 'grad');
  e.buffer('grads.acc_global', 'gpu', 'fp32', [pl.nG], 'grad');
  e.buffer('grads.layers', 'gpu', 'fp32', [L, shard(pl.nL)], 'grad');
  e.buffer('grads.global', 'gpu', 'fp32', [shard(pl.nG)], 'grad');
  for (const s of ['master', 'm', 'v']) {
    e.buffer(`optim.${s}.layers`, optimizerSpace, 'fp32', [L, shard(pl.nL)], 'optim');
    e.buffer(`optim.${s}.global`, optimizerSpace, 'fp32', [shard(pl.nG)], 'optim');
  }
}

/** Where layer `l`'s copy of a stacked parameter is read from. */
export function layerParamRef(e: Emitter, pl: ParamLayout, id: string): { buf: string; off: Affine; len: number; slot?: Affine } {
  const p = pl.layer.find((x) => x.id === id)!;
  if (pl.zero3) return { buf: 'gathered.layer', off: aff(p.off), len: p.len, slot: v('l') };
  return { buf: 'params.layers', off: { c: p.off, t: { l: pl.nL } }, len: p.len };
}

export function globalParamRef(pl: ParamLayout, id: string): { buf: string; off: Affine; len: number } {
  const p = pl.global.find((x) => x.id === id)!;
  return { buf: pl.zero3 ? 'gathered.global' : 'params.global', off: aff(p.off), len: p.len };
}

/** Gathers layer `layer` (ZeRO-3) into its slot (layer mod 2). */
export function gatherLayer(e: Emitter, pl: ParamLayout, layer: Affine = v('l')): void {
  if (!pl.zero3) return;
  const n = pl.nL / pl.P;
  e.instr({
    stream: 'comm',
    op: 'all_gather',
    reads: { src: e.ref('params.layers', scaleAff(layer, n), n) },
    writes: { dst: e.ref('gathered.layer', 0, pl.nL, layer) },
    attrs: { ...spanAttr(pl.dp, 'world'), ranks: pl.P, n },
  });
}

/**
 * Layers [from, to) in order (or in reverse), each gathered one layer ahead: while layer l
 * computes, layer l+1 (l-1 in reverse) is gathered into the other slot. A range that another
 * range of the same pass continues gathers that range's first layer in its last iteration, so
 * only the pass's last layer is emitted on its own (nothing to gather after it), and only the
 * pass's first range gathers its first layer before the loop.
 */
export function layerLoop(
  e: Emitter,
  pl: ParamLayout,
  from: number,
  to: number,
  reverse: boolean,
  body: () => void,
  ends: { startsPass: boolean; endsPass: boolean },
): void {
  if (to <= from) return;
  const first = reverse ? to - 1 : from;
  const last = reverse ? from : to - 1;
  if (ends.startsPass) gatherLayer(e, pl, aff(first));
  const step = reverse ? -1 : 1;
  const peel = ends.endsPass ? 1 : 0;
  const [lo, hi] = reverse ? [from + peel, to] : [from, to - peel];
  // a segment of one layer that ends the pass is all peel: no empty loop before it
  if (hi > lo)
    e.loop('l', lo, hi, 'layer', () => {
      gatherLayer(e, pl, v('l', 1, step));
      body();
    }, reverse);
  if (peel) e.loop('l', last, last + 1, 'layer', body, reverse);
}

/**
 * Sums layer l's gradient over ranks and adds the sum into its shard (ZeRO-3) or its full copy,
 * so that the micro steps of one optimizer step accumulate (the zero phase cleared the shards).
 * Reduced every micro step, not only the last: a rank holds one layer's unreduced gradient at
 * a time, which is what ZeRO-3 is for. The sum lands in a one-layer buffer and is added on the
 * comm stream, behind the collective and off the compute stream's way.
 */
export function reduceLayerGrads(e: Emitter, pl: ParamLayout): void {
  const n = pl.zero3 ? pl.nL / pl.P : pl.nL;
  e.buffer('grads.part_layer', 'gpu', 'fp32', [n], 'chunk');
  e.instr({
    stream: 'comm',
    op: pl.zero3 ? 'reduce_scatter' : 'all_reduce',
    reads: { src: e.whole('grads.acc_layer') },
    writes: { dst: e.whole('grads.part_layer') },
    attrs: { ...spanAttr(pl.dp, 'world'), ranks: pl.P, n: pl.nL },
  });
  accumulateGrads(e, 'grads.part_layer', e.ref('grads.layers', scaleAff(v('l'), n), n));
}

/** `into += part`: a micro step's reduced gradient added to what the optimizer step has so far. */
function accumulateGrads(e: Emitter, part: string, into: Ref): void {
  e.instr({ stream: 'comm', op: 'grad_accumulate', reads: { part: e.whole(part), into }, writes: { into }, attrs: { n: into.len }, flops: into.len });
}

export function emitGlobalGatherAndReduce(e: Emitter, pl: ParamLayout, phase: 'gather' | 'reduce'): void {
  const n = pl.zero3 ? pl.nG / pl.P : pl.nG;
  if (phase === 'gather') {
    if (!pl.zero3) return;
    e.instr({ stream: 'comm', op: 'all_gather', reads: { src: e.whole('params.global') }, writes: { dst: e.whole('gathered.global') }, attrs: { ...spanAttr(pl.dp, 'world'), ranks: pl.P, n } });
    return;
  }
  e.buffer('grads.part_global', 'gpu', 'fp32', [n], 'chunk');
  e.instr({
    stream: 'comm',
    op: pl.zero3 ? 'reduce_scatter' : 'all_reduce',
    reads: { src: e.whole('grads.acc_global') },
    writes: { dst: e.whole('grads.part_global') },
    attrs: { ...spanAttr(pl.dp, 'world'), ranks: pl.P, n: pl.nG },
  });
  accumulateGrads(e, 'grads.part_global', e.whole('grads.global'));
}

/** The zero phase: the gradient shards the micro steps of one optimizer step add into start at 0. */
export function emitZeroGrads(e: Emitter): void {
  e.fill(e.whole('grads.layers'), 0);
  e.fill(e.whole('grads.global'), 0);
}

/** AdamW's defaults (torch's names in the program's config) and no clipping (maxGradNorm 0). */
const ADAMW = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 0 };

/**
 * The global gradient norm for clipping (and for the step's report): each rank adds its gradient
 * shards' sum of squares into io.gradsq, then, with the shards spread over the ranks (ZeRO-3), the
 * ranks sum theirs. Without ZeRO-3 every rank holds every gradient whole, and its own sum is the
 * global one. The update reads io.gradsq and scales when the run sets a maximum norm.
 */
export function emitGradNorm(e: Emitter, pl: ParamLayout, world: number): void {
  e.buffer('io.gradsq', 'gpu', 'fp32', [1], 'io');
  e.fill(e.whole('io.gradsq'), 0);
  for (const part of ['layers', 'global']) {
    e.instr({ stream: 'compute', op: 'grad_sumsq', reads: { grad: e.whole(`grads.${part}`), sqnorm: e.whole('io.gradsq') }, writes: { sqnorm: e.whole('io.gradsq') }, attrs: {} });
  }
  if (pl.zero3 && world > 1) {
    e.instr({ stream: 'comm', op: 'all_reduce', reads: { src: e.whole('io.gradsq') }, writes: { dst: e.whole('io.gradsq') }, attrs: { ...spanAttr(pl.dp, 'world'), ranks: world, n: 1 } });
  }
}

/** Elements of optimizer state streamed through the GPU at a time when the states live on the host. */
export const OPTIMIZER_PIECE = 1 << 24;

/**
 * AdamW on this rank's shards: fp32 master weights, moments, and the bf16 copy used next step.
 * With the states in host memory they stream through two GPU slots piece by piece: a piece's
 * states come in while the previous piece updates, and go back out after.
 */
export function emitOptimizer(e: Emitter, lr: number, statesOnHost: boolean): void {
  const states = ['master', 'm', 'v'];
  for (const part of ['layers', 'global']) {
    const n = e.buffers.get(`params.${part}`)!.elems;
    if (!statesOnHost) {
      e.instr({
        stream: 'compute',
        op: 'adamw',
        reads: { grad: e.whole(`grads.${part}`), sqnorm: e.whole('io.gradsq') },
        writes: { master: e.whole(`optim.master.${part}`), m: e.whole(`optim.m.${part}`), v: e.whole(`optim.v.${part}`), param: e.whole(`params.${part}`) },
        attrs: { n, lr, ...ADAMW },
      });
      continue;
    }
    // at least three pieces, so that small models exercise the streaming loop and its tail too
    const piece = Math.min(OPTIMIZER_PIECE, Math.max(1, Math.ceil(n / 3) + 1));
    for (const x of states) e.buffer(`optim.${x}.slot`, 'gpu', 'fp32', [piece], 'chunk', { slots: 2 });
    const update = (k: Affine, len: number) => {
      const off = scaleAff(k, piece);
      const slots = states.map((x) => e.ref(`optim.${x}.slot`, 0, len, k));
      states.forEach((x, i) => e.copy(e.ref(`optim.${x}.${part}`, off, len), slots[i]));
      e.instr({
        stream: 'compute',
        op: 'adamw',
        reads: { grad: e.ref(`grads.${part}`, off, len), sqnorm: e.whole('io.gradsq') },
        writes: { master: slots[0], m: slots[1], v: slots[2], param: e.ref(`params.${part}`, off, len) },
        attrs: { n: len, lr, ...ADAMW },
      });
      states.forEach((x, i) => e.copy(slots[i], e.ref(`optim.${x}.${part}`, off, len)));
    };
    const full = Math.floor(n / piece);
    e.loop('k', 0, full, 'chunk', () => update(v('k'), piece));
    if (n % piece) update(aff(full), n % piece);
  }
}
