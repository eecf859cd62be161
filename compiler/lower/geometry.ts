// The numbers every lowering step needs: ranks, chunk sizes, head splits.
import { dpOf } from '../config.js';
import type { Graph } from '../ir/types.js';
import type { CollectiveSpan } from '../schedule/types.js';

export interface Geometry {
  /** sequence-parallel ranks */
  readonly P: number;
  /** data-parallel groups of P ranks, each on its own sequence; the world is dp * P ranks */
  readonly dp: number;
  /** global tokens per chunk, and per rank (c = C / P) */
  readonly C: number;
  readonly c: number;
  /** chunks */
  readonly u: number;
  readonly S: number;
  readonly L: number;
  readonly d: number;
  /** query heads per rank; kv heads per rank (with the heads its query heads share) */
  readonly hqL: number;
  readonly kvL: number;
  /** query heads per kv head */
  readonly G: number;
  /** packed documents: RoPE reads per-token positions and attention blocks mask across documents (packed.ts) */
  readonly packed: boolean;
}

/** kv heads that rank r needs: those used by its query heads [r*hqL, (r+1)*hqL). */
export function kvHeadRange(r: number, hqL: number, G: number): [number, number] {
  const first = Math.floor((r * hqL) / G);
  const last = Math.floor(((r + 1) * hqL - 1) / G);
  return [first, last + 1];
}

export function geometry(g: Graph): Geometry {
  const P = g.config.sp;
  const C = g.config.chunk as number;
  const { S, L, Hq, Hkv, Dh } = g.sizes;
  const hqL = Hq / P;
  const G = Hq / Hkv;
  let kvL = 0;
  for (let r = 0; r < P; r++) {
    const [a, b] = kvHeadRange(r, hqL, G);
    kvL = Math.max(kvL, b - a);
  }
  return { P, dp: dpOf(g.config), C, c: C / P, u: S / C, S, L, d: Dh, hqL, kvL, G, packed: g.config.packed === true };
}

/**
 * A collective's `span` attr: which ranks it runs over. Said only when there are dp groups, so
 * that a schedule of one group prints as it always did.
 */
export const spanAttr = (dp: number, span: CollectiveSpan): { span?: CollectiveSpan } => (dp > 1 ? { span } : {});
