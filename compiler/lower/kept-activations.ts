// Activations kept on the GPU from a layer's forward to its backward. The backward recomputes from
// the layer's checkpoint what it reads of the forward (its `pre` loop); the GEMM outputs among those
// (the output projection's, the MLP's up and gate projections') cost most of that recompute. Where
// activations stay on the GPU (no offload) and memory is left, the last layers keep them: their
// forward writes those outputs into a per-layer buffer, their backward reads them there and skips
// the GEMMs. What is derived from them element-wise (the residual sum, the norm, the activation
// function) is still recomputed.
import type { Graph, Node, Region } from '../ir/types.js';
import { aff, scaleAff, v } from '../schedule/types.js';
import type { Bindings, TokBind } from './bindings.js';
import type { Emitter } from './emitter.js';
import type { Geometry } from './geometry.js';

/** A forward value the backward recomputes in its `pre` loop, and its twin there. */
export interface KeptActivation {
  /** the value in the forward body */
  readonly fwd: string;
  /** the same value recomputed in the backward body */
  readonly bwd: string;
  /** elements per token */
  readonly row: number;
}

/** The backward's recomputed values (`X.r~pre`) are named after the forward's (`X`). */
const forwardName = (id: string): string | undefined => /^(.*)\.r~pre$/.exec(id)?.[1];

/** The GEMM outputs the backward body recomputes in its `pre` loop whose forward twin is a GEMM output too. */
export function keptActivations(g: Graph, fwd: Region, bwd: Region): KeptActivation[] {
  const made = new Map<string, Node>();
  for (const n of fwd.nodes) for (const o of n.outputs) made.set(o, n);
  const out: KeptActivation[] = [];
  for (const n of bwd.nodes) {
    if (n.attrs.loop !== 'pre' || n.op !== 'linear') continue;
    const id = n.outputs[0];
    const name = forwardName(id);
    const twin = name === undefined ? undefined : made.get(name);
    if (!twin || twin.op !== 'linear' || g.values[id].type.shape[0]?.toString() !== 'S') continue;
    const row = g.values[id].type.shape.slice(1).reduce((k, d) => k * d.eval(g.sizes), 1);
    out.push({ fwd: name!, bwd: id, row });
  }
  return out;
}

/** Declares the buffers of the last `layers` layers' kept activations (GPU, the whole local sequence each). */
export function declareKeptActivations(e: Emitter, g: Graph, geo: Geometry, kept: readonly KeptActivation[], layers: number): void {
  for (const a of kept) e.buffer(`keep.act.${a.fwd}`, 'gpu', g.values[a.fwd].type.dtype, [layers, geo.S / geo.P, a.row], 'stash');
}

/** Where layer l's kept activation lives: its rows in the layer's part of the buffer. */
function keptPlace(geo: Geometry, a: KeptActivation, layers: number): TokBind {
  const local = geo.S / geo.P;
  return { kind: 'tok', buf: `keep.act.${a.fwd}`, row: a.row, full: true, base: layers > 0 ? scaleAff(v('l', 1, -(geo.L - layers)), local * a.row) : aff(0) };
}

/** Bindings of a kept layer: its forward writes (`side` fwd), its backward reads (`bwd`) the kept activations in place. */
export function bindKeptActivations(b: Bindings, geo: Geometry, kept: readonly KeptActivation[], layers: number, side: 'fwd' | 'bwd'): Bindings {
  const k = b.clone();
  for (const a of kept) k.set(side === 'fwd' ? a.fwd : a.bwd, keptPlace(geo, a, layers));
  return k;
}

/** The backward's `pre` nodes without those whose outputs are all kept. */
export function withoutKept(nodes: readonly Node[], kept: readonly KeptActivation[]): Node[] {
  const ids = new Set(kept.map((a) => a.bwd));
  return nodes.filter((n) => !n.outputs.every((o) => ids.has(o)));
}
