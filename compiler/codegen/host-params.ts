// The parameter table of the C ABI: one entry per tensor with its Hugging Face name, shape,
// init, and where it lives: a window of the stacked layer buffers (params/grads/master
// `.layers`, layer l at l·nL) or of the global ones. Offsets are those of
// compiler/lower/params.ts paramLayout, so the program and the lowering agree.
import type { Graph } from '../ir/types.js';
import { paramLayout } from '../lower/params.js';

export interface HostParam {
  readonly name: string;
  readonly shape: readonly number[];
  readonly part: 'layers' | 'global';
  /** element offset inside the part's buffer, and length */
  readonly offset: number;
  readonly len: number;
  readonly init: { kind: 0 | 1 | 2; std: number };
}

const INIT_KIND = { normal: 0, ones: 1, zeros: 2 } as const;

function initOf(g: Graph, id: string): HostParam['init'] {
  const init = g.values[id].init ?? { kind: 'normal', std: 0.02 };
  return { kind: INIT_KIND[init.kind], std: init.kind === 'normal' ? init.std : 0 };
}

/** Layer params for every layer (layer-major), then the global ones, in the graph's order. */
export function hostParams(g: Graph): HostParam[] {
  const repeat = g.main.nodes.find((n) => n.op === 'repeat');
  if (!repeat) throw new Error('host codegen: the graph has no repeated layer');
  const pl = paramLayout(g, repeat);
  const L = g.sizes.L;
  const shapeOf = (id: string) => g.values[id].type.shape.map((d) => d.eval(g.sizes));
  const nameOf = (id: string, l?: number) => {
    const n = g.values[id].name ?? id;
    return l === undefined ? n : n.replace('{i}', String(l));
  };
  const out: HostParam[] = [];
  for (let l = 0; l < L; l++)
    for (const p of pl.layer) out.push({ name: nameOf(p.id, l), shape: shapeOf(p.id).slice(1), part: 'layers', offset: l * pl.nL + p.off, len: p.len, init: initOf(g, p.id) });
  for (const p of pl.global) out.push({ name: nameOf(p.id), shape: shapeOf(p.id), part: 'global', offset: p.off, len: p.len, init: initOf(g, p.id) });
  return out;
}
