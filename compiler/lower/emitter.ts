// Collects schedule items while lowering: buffers, instructions on streams, and loops
// kept as loops. Events are not placed here: the sync pass adds them afterwards.
import type { DType } from '../ir/types.js';
import { DTYPE_BYTES } from '../ir/types.js';
import type { Affine, Buffer, BufferKind, Instr, Item, Loop, Ref, StreamName } from '../schedule/types.js';
import { aff, DOCUMENTS_MEET } from '../schedule/types.js';
import { inOrder, type NamedReads, type NamedWrites, type OpName } from '../schedule/ops.js';

/** An instruction to emit: its operands by the names the op catalog (schedule/ops.ts) gives them. */
export interface InstrSpec<K extends OpName> {
  stream: StreamName;
  op: K;
  reads: NamedReads<K, Ref>;
  writes: NamedWrites<K, Ref>;
  /** its flags also say which conditional operands it has (a linear's `bias`, `packed`) */
  attrs?: Instr['attrs'];
  args?: Readonly<Record<string, Affine>>;
  flops?: number;
}

export class Emitter {
  readonly buffers = new Map<string, Buffer>();
  private readonly stack: Item[][] = [[]];
  private count = 0;
  private loops = 0;
  /** the chunk pair of `whenDocumentsMeet` being emitted, if any */
  private meet?: { docsQ: Affine; docsKv: Affine };

  buffer(id: string, space: 'gpu' | 'host', dtype: DType, shape: readonly number[], kind: BufferKind, extra: { slots?: number; value?: string } = {}): Buffer {
    const existing = this.buffers.get(id);
    if (existing) return existing;
    const elems = shape.reduce((a, b) => a * b, 1);
    const b: Buffer = { id, space, dtype, elems, slots: extra.slots ?? 1, kind, shape, ...(extra.value ? { value: extra.value } : {}) };
    this.buffers.set(id, b);
    return b;
  }

  /** A window of `len` elements of a buffer from `off`, in slot `slot`. */
  ref(buf: string, off: Affine | number, len: number, slot?: Affine): Ref {
    if (!this.buffers.has(buf)) throw new Error(`lowering: reference to undeclared buffer ${buf}`);
    return { buf, off: typeof off === 'number' ? aff(off) : off, len, ...(slot ? { slot } : {}) };
  }

  /** The whole of one slot of a buffer. */
  whole(buf: string, slot?: Affine): Ref {
    return this.ref(buf, 0, this.buffers.get(buf)!.elems, slot);
  }

  instr<K extends OpName>(s: InstrSpec<K>): void {
    // the schedule lists operands in the catalog's order
    const reads = inOrder<Ref>(s.op, s.attrs ?? {}, 'reads', s.reads);
    const writes = inOrder<Ref>(s.op, s.attrs ?? {}, 'writes', s.writes);
    const bytes = [...reads, ...writes].reduce((n, r) => n + r.len * DTYPE_BYTES[this.buffers.get(r.buf)!.dtype], 0);
    const item: Instr = {
      kind: 'instr',
      id: `i${this.count++}`,
      stream: s.stream,
      op: s.op,
      reads,
      writes,
      attrs: this.meet ? { ...s.attrs, [DOCUMENTS_MEET]: true } : (s.attrs ?? {}),
      ...(s.args || this.meet ? { args: { ...s.args, ...this.meet } } : {}),
      flops: s.flops ?? 0,
      bytes,
    };
    this.top.push(item);
  }

  /**
   * Packed documents (lower/packed.ts): the instructions `body` emits run only when query chunk `q`
   * and key chunk `kv` hold a document in common (attribute DOCUMENTS_MEET, arguments docsQ and
   * docsKv); otherwise they are skipped, their events still recorded.
   */
  whenDocumentsMeet<T>(q: Affine, kv: Affine, body: () => T): T {
    const outer = this.meet;
    this.meet = { docsQ: q, docsKv: kv };
    try {
      return body();
    } finally {
      this.meet = outer;
    }
  }

  copy(from: Ref, to: Ref): void {
    const a = this.buffers.get(from.buf)!.space;
    const b = this.buffers.get(to.buf)!.space;
    const dir = `${a === 'gpu' ? 'd' : 'h'}2${b === 'gpu' ? 'd' : 'h'}`;
    const stream: StreamName = dir === 'h2d' ? 'h2d' : dir === 'd2h' ? 'd2h' : 'compute';
    this.instr({ stream, op: 'copy', reads: { src: from }, writes: { dst: to }, attrs: { dir } });
  }

  fill(to: Ref, value: number): void {
    this.instr({ stream: 'compute', op: 'fill', reads: {}, writes: { dst: to }, attrs: { value } });
  }

  loop(v: string, from: Affine | number, to: Affine | number, role: Loop['role'], body: () => void, reverse = false): void {
    this.stack.push([]);
    body();
    const items = this.stack.pop()!;
    if (items.length === 0) return;
    this.top.push({
      kind: 'loop',
      id: `L${this.loops++}`,
      var: v,
      from: typeof from === 'number' ? aff(from) : from,
      to: typeof to === 'number' ? aff(to) : to,
      role,
      body: items,
      ...(reverse ? { reverse: true } : {}),
    });
  }

  private get top(): Item[] {
    return this.stack[this.stack.length - 1];
  }

  items(): Item[] {
    if (this.stack.length !== 1) throw new Error('lowering: unbalanced loops');
    return this.stack[0];
  }
}
