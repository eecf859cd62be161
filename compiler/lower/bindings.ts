// Where each graph value lives during one region's lowering. Token-wise values are rows
// of a buffer: a whole local sequence (`full`, indexed by chunk) or one chunk. Weights and
// their gradients are windows of flat buffers. Heads-layout values are chunk buffers,
// optionally kept per chunk in a stash (host or GPU) for later loops.
import type { Affine, Ref } from '../schedule/types.js';
import { addAff, scaleAff, v } from '../schedule/types.js';
import type { Emitter } from './emitter.js';
import type { Geometry } from './geometry.js';

export interface TokBind {
  readonly kind: 'tok';
  readonly buf: string;
  /** elements per token */
  readonly row: number;
  /** whole local sequence (indexed by chunk) or a single chunk */
  readonly full: boolean;
  readonly base: Affine;
  readonly slot?: Affine;
}

export interface FlatBind {
  readonly kind: 'flat';
  readonly buf: string;
  readonly off: Affine;
  readonly len: number;
  readonly slot?: Affine;
}

export interface HeadsBind {
  readonly kind: 'heads';
  /** chunk buffer on the GPU */
  readonly chunk: string;
  /** elements per chunk */
  readonly per: number;
  /** per-chunk stash, when a later loop needs the value */
  readonly stash?: string;
  /** where this layer's chunks start in the stash (a stash kept for several layers) */
  readonly stashBase?: Affine;
}

export type Bind = TokBind | FlatBind | HeadsBind;

export class Bindings {
  private readonly map = new Map<string, Bind>();
  /** values a linear_dx adds into their place instead of writing it (a gradient sum's later term; step.ts) */
  readonly addsInto = new Set<string>();
  constructor(
    readonly e: Emitter,
    readonly geo: Geometry,
  ) {}

  /** A copy whose later changes do not affect this one (another variant of a region). */
  clone(): Bindings {
    const c = new Bindings(this.e, this.geo);
    for (const [k, x] of this.map) c.map.set(k, x);
    for (const x of this.addsInto) c.addsInto.add(x);
    return c;
  }

  set(id: string, b: Bind): void {
    this.map.set(id, b);
  }
  has(id: string): boolean {
    return this.map.has(id);
  }
  get(id: string): Bind {
    const b = this.map.get(id);
    if (!b) throw new Error(`lowering: value %${id} has no buffer`);
    return b;
  }

  /** The rows of chunk `cv` (a loop variable) of a token-wise value. */
  rows(id: string, cv: string): Ref {
    const b = this.get(id);
    if (b.kind !== 'tok') throw new Error(`lowering: %${id} is not token-wise`);
    const n = this.geo.c * b.row;
    const off = b.full ? addAff(b.base, scaleAff(v(cv), n)) : b.base;
    return this.e.ref(b.buf, off, n, b.slot);
  }

  flat(id: string): Ref {
    const b = this.get(id);
    if (b.kind !== 'flat') throw new Error(`lowering: %${id} is not a whole tensor`);
    return this.e.ref(b.buf, b.off, b.len, b.slot);
  }

  /** The chunk buffer of a heads-layout value in chunk `cv`: its slot where the buffer rotates (two chunks in flight). */
  chunk(id: string, cv: string): Ref {
    const b = this.get(id);
    if (b.kind !== 'heads') throw new Error(`lowering: %${id} is not in heads layout`);
    return this.e.whole(b.chunk, this.e.buffers.get(b.chunk)!.slots > 1 ? v(cv) : undefined);
  }

  /** Chunk `k` of a stashed heads-layout value. */
  stashed(id: string, k: Affine): Ref {
    const b = this.get(id);
    if (b.kind !== 'heads' || !b.stash) throw new Error(`lowering: %${id} is not stashed`);
    const off = scaleAff(k, b.per);
    return this.e.ref(b.stash, b.stashBase ? addAff(b.stashBase, off) : off, b.per);
  }

  /** Any value as the operand of a chunk-loop instruction. */
  operand(id: string, cv: string): Ref {
    const b = this.get(id);
    if (b.kind === 'tok') return this.rows(id, cv);
    if (b.kind === 'flat') return this.flat(id);
    return this.chunk(id, cv);
  }
}

