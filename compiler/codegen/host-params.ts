// The parameter table of the C ABI: one entry per tensor with its Hugging Face name, shape,
// init, and where it lives: a window of the stacked layer buffers (params/grads/master
// `.layers`, layer l at l·layerElems) or of the global ones. Read from the schedule's table
// (schedule/types.ts ParamTable), which lowering filled: the program and the lowering agree
// because there is one layout, written once.
import type { ParamTable, Schedule } from '../schedule/types.js';

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

/** The schedule's parameter table; a schedule without one (made by hand, not lowered) is refused. */
export function paramTableOf(s: Pick<Schedule, 'params' | 'model'>): ParamTable {
  if (!s.params) throw new Error(`host codegen: the schedule of ${s.model} has no parameter table`);
  return s.params;
}

/** Layer params for every layer (layer-major), then the global ones, in the table's order. */
export function hostParams(s: Pick<Schedule, 'params' | 'model' | 'layers'>): HostParam[] {
  const t = paramTableOf(s);
  const init = (p: ParamTable['tensors'][number]) => ({ kind: INIT_KIND[p.init.kind], std: p.init.std });
  const layer = t.tensors.filter((p) => p.part === 'layers');
  const out: HostParam[] = [];
  for (let l = 0; l < s.layers; l++)
    for (const p of layer) out.push({ name: p.name.replace('{i}', String(l)), shape: p.shape, part: 'layers', offset: l * t.layerElems + p.offset, len: p.len, init: init(p) });
  for (const p of t.tensors) if (p.part === 'global') out.push({ name: p.name, shape: p.shape, part: 'global', offset: p.offset, len: p.len, init: init(p) });
  return out;
}
