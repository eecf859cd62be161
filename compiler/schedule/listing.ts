// A readable listing of a schedule with its loops kept, for `fpdtc inspect` and golden tests:
//
//   for l in 0..L:                      # layer
//     compute  linear          x[C*i:+C], w -> q
//     h2d      wait  kv_free[j]
//
// A reference that covers its whole buffer prints as the buffer's name; a slot prints as
// `buf@slot`; a window as `[off:+len]` with the offset in elements.
import { DTYPE_BYTES } from '../ir/types.js';
import { groupsOf, printAff, type Buffer, type Instr, type Item, type ParamTable, type Ref, type Schedule } from './types.js';

export interface ListingOptions {
  /** only the layer loops (one layer's forward and backward), not the rest of the step */
  readonly layersOnly?: boolean;
  /** buffers and events before the program (default true) */
  readonly header?: boolean;
  /** event records and waits (default true); people reading one layer usually want them out */
  readonly events?: boolean;
}

const STREAM_W = 8;
const OP_W = 16;

/** `64 MiB`, `1.5 GiB`: sizes for people. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = n;
  let u = 0;
  while (Math.abs(x) >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return u === 0 ? `${x} B` : `${x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0)} ${units[u]}`;
}

export function printRef(r: Ref, bufs: ReadonlyMap<string, Buffer>): string {
  const b = bufs.get(r.buf);
  const slot = r.slot ? `@${printAff(r.slot)}` : '';
  const whole = b !== undefined && Object.keys(r.off.t).length === 0 && r.off.c === 0 && r.len === b.elems;
  return whole ? `${r.buf}${slot}` : `${r.buf}${slot}[${printAff(r.off)}:+${r.len}]`;
}

function printAttrs(ins: Instr): string {
  const parts = Object.entries(ins.attrs).map(([k, x]) => `${k}=${Array.isArray(x) ? `[${x.join(',')}]` : String(x)}`);
  return parts.length ? ` {${parts.join(' ')}}` : '';
}

export function printInstr(ins: Instr, bufs: ReadonlyMap<string, Buffer>): string {
  const reads = ins.reads.map((r) => printRef(r, bufs)).join(', ');
  const writes = ins.writes.map((r) => printRef(r, bufs)).join(', ');
  return `${ins.stream.padEnd(STREAM_W)} ${ins.op.padEnd(OP_W)} ${reads || '-'} -> ${writes || '-'}${printAttrs(ins)}  # ${ins.id}`;
}

function printItems(items: readonly Item[], bufs: ReadonlyMap<string, Buffer>, depth: number, out: string[], events = true): void {
  const pad = '  '.repeat(depth);
  for (const it of items) {
    if (it.kind === 'loop') {
      const range = `${printAff(it.from)}..${printAff(it.to)}`;
      out.push(`${pad}for ${it.var} in ${it.reverse ? `reverse ${range}` : range}:  # ${it.role}`);
      printItems(it.body, bufs, depth + 1, out, events);
    } else if (it.kind === 'instr') {
      out.push(pad + printInstr(it, bufs));
    } else if (events) {
      const idx = it.index ? `[${printAff(it.index)}]` : '';
      out.push(`${pad}${it.stream.padEnd(STREAM_W)} ${it.kind.padEnd(OP_W)} ${it.event}${idx}`);
    }
  }
}

/** The first forward and the first backward loop of role 'layer' (a pass may have several). */
function layerLoops(items: readonly Item[]): Item[] {
  const all = (xs: readonly Item[]): Item[] => xs.flatMap((it) => (it.kind !== 'loop' ? [] : it.role === 'layer' ? [it] : all(it.body)));
  const loops = all(items).filter((x) => x.kind === 'loop' && x.to.c - x.from.c > 0);
  const first = loops.find((x) => x.kind === 'loop' && !x.reverse);
  const firstBack = loops.find((x) => x.kind === 'loop' && x.reverse);
  return [first, firstBack].filter((x): x is Item => x !== undefined);
}

export function printBuffer(b: Buffer): string {
  const shape = `[${b.shape.join(',')}]`;
  const slots = b.slots > 1 ? `${b.slots} x ` : '';
  const bytes = b.elems * b.slots * DTYPE_BYTES[b.dtype];
  return `${b.id.padEnd(12)} ${b.space.padEnd(4)} ${b.kind.padEnd(8)} ${b.dtype.padEnd(5)} ${(slots + shape).padEnd(24)} ${formatBytes(bytes)}`;
}

/** The parameter table: a line for the vectors, then each tensor's window of its part. */
export function printParams(t: ParamTable): string[] {
  const count = (part: string) => t.tensors.filter((p) => p.part === part).length;
  const shards = t.zero3 ? `ZeRO-3 shards over ${t.ranks} ranks` : `whole on each of ${t.ranks} rank${t.ranks === 1 ? '' : 's'}`;
  const head = `params: ${count('layers')} per layer in ${t.layerElems} elements, ${count('global')} global in ${t.globalElems}; ${shards}`;
  return [
    head,
    ...t.tensors.map((p) => {
      const init = p.init.kind === 'normal' ? `normal(${p.init.std})` : p.init.kind;
      return `  ${p.part.padEnd(7)} ${`[${p.offset}:+${p.len}]`.padEnd(16)} ${p.name} [${p.shape.join(',')}] ${init}  # ${p.value}`;
    }),
  ];
}

export function listSchedule(s: Schedule, opts: ListingOptions = {}): string {
  const bufs = new Map(s.buffers.map((b) => [b.id, b]));
  const out: string[] = [];
  if (opts.header ?? true) {
    const { sp, dp } = groupsOf(s);
    const groups = dp > 1 ? ` (dp ${dp} x sp ${sp}: a sequence per group)` : '';
    out.push(`schedule ${s.model}: ${s.world} rank${s.world === 1 ? '' : 's'}${groups}, ${s.layers} layers, ${s.chunks} chunks of ${s.chunk} tokens`);
    out.push('buffers:');
    for (const b of s.buffers) out.push(`  ${printBuffer(b)}`);
    if (s.params) out.push(...printParams(s.params));
    out.push(`events: ${Object.entries(s.events).map(([k, n]) => `${k}[${n}]`).join(' ') || '-'}`);
    out.push('');
  }
  printItems(opts.layersOnly ? layerLoops(s.body) : s.body, bufs, 0, out, opts.events ?? true);
  return out.join('\n') + '\n';
}
