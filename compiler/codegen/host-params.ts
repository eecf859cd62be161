// The parameter table of the C ABI: one entry per tensor with its Hugging Face name, shape,
// init, and where it lives: a window of the stacked layer buffers (params/grads/master
// `.layers`, layer l at l·nL), of the global ones, or of the small part (`.small`: fp32,
// replicated, layer l's at l·nS, the global ones after the layers). Offsets are those of
// compiler/lower/params.ts paramLayout, so the program and the lowering agree.
import type { Graph } from '../ir/types.js';
import { paramLayout } from '../lower/params.js';

export interface HostParam {
  readonly name: string;
  readonly shape: readonly number[];
  readonly part: 'layers' | 'global' | 'small';
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
  // each layer's tensors in the graph's order, whichever part holds them
  const stacked = repeat.inputs.slice(1);
  for (let l = 0; l < L; l++)
    for (const id of stacked) {
      const big = pl.layer.find((x) => x.id === id);
      const small = pl.smallLayer.find((x) => x.id === id);
      const [part, offset, len] = big ? (['layers', l * pl.nL + big.off, big.len] as const) : (['small', l * pl.nS + small!.off, small!.len] as const);
      out.push({ name: nameOf(id, l), shape: shapeOf(id).slice(1), part, offset, len, init: initOf(g, id) });
    }
  for (const id of g.params.filter((p) => !stacked.includes(p))) {
    const big = pl.global.find((x) => x.id === id);
    const small = pl.smallGlobal.find((x) => x.id === id);
    const [part, offset, len] = big ? (['global', big.off, big.len] as const) : (['small', pl.smallGlobalAt + small!.off, small!.len] as const);
    out.push({ name: nameOf(id), shape: shapeOf(id), part, offset, len, init: initOf(g, id) });
  }
  return out;
}
