// C expressions for the host program: affine integers over loop variables and the rank, and
// byte addresses of buffer windows inside the two arenas the memory plan laid out. The
// schedule's `r` is the rank's place in its sequence-parallel group: the program's rank when
// there is one group, `p->rank % FPDT_SP` with dp groups (RANK_IN_GROUP).
import { DTYPE_BYTES } from '../ir/types.js';
import type { Affine, Buffer, Ref } from '../schedule/types.js';

/** How a program names the schedule's `r`: with one group, its rank; with dp groups, its place in its group. */
export const RANK_C = 'p->rank';
export const RANK_IN_GROUP_C = '(p->rank % FPDT_SP)';

/** `c + Σ t·v` as a C int64 expression; `rank` is the C expression of `r`. */
export function affineC(a: Affine, rank = RANK_C): string {
  const terms: string[] = [];
  for (const [name, coef] of Object.entries(a.t)) {
    if (coef === 0) continue;
    const v = name === 'r' ? rank : name;
    terms.push(coef === 1 ? v : `${coef}LL * ${v}`);
  }
  if (a.c !== 0 || terms.length === 0) terms.push(`${a.c}LL`);
  return terms.length === 1 ? terms[0] : `(${terms.join(' + ')})`;
}

const isConst = (a: Affine): boolean => Object.values(a.t).every((x) => x === 0);

/** `x mod n` in [0, n): C's % keeps the sign of x, and slot expressions can be negative. */
export function modC(a: Affine, n: number, rank = RANK_C): string {
  if (n === 1) return '0LL';
  if (isConst(a)) return `${(((a.c % n) + n) % n)}LL`;
  return `fpdt_mod(${affineC(a, rank)}, ${n}LL)`;
}

/** How the program addresses its memory and names its rank. */
export interface Arenas {
  readonly buffers: ReadonlyMap<string, Buffer>;
  readonly offsets: ReadonlyMap<string, number>;
  /** the C expression of the schedule's `r` (RANK_C, or RANK_IN_GROUP_C with dp groups) */
  readonly rank: string;
}

export function arenasOf(buffers: readonly Buffer[], plan: { readonly placements: readonly { readonly buf: string; readonly offset: number }[] }, rank = RANK_C): Arenas {
  return {
    buffers: new Map(buffers.map((b) => [b.id, b])),
    offsets: new Map(plan.placements.map((p) => [p.buf, p.offset])),
    rank,
  };
}

export const elemBytes = (b: Buffer): number => DTYPE_BYTES[b.dtype];

/** The C pointer of a window: arena base + planned offset + slot + element offset, in bytes. */
export function refC(ar: Arenas, r: Ref): string {
  const b = ar.buffers.get(r.buf);
  const base = ar.offsets.get(r.buf);
  if (!b || base === undefined) throw new Error(`host codegen: buffer ${r.buf} has no planned place`);
  const eb = elemBytes(b);
  const parts = [`${base}LL`];
  if (b.slots > 1 && r.slot) parts.push(`${modC(r.slot, b.slots, ar.rank)} * ${b.elems * eb}LL`);
  if (!(isConst(r.off) && r.off.c === 0)) parts.push(`${affineC(r.off, ar.rank)} * ${eb}LL`);
  return `(p->${b.space === 'gpu' ? 'gpu' : 'host'} + ${parts.join(' + ')})`;
}

/** Bytes of a window. */
export function refBytes(ar: Arenas, r: Ref): number {
  return r.len * elemBytes(ar.buffers.get(r.buf)!);
}
