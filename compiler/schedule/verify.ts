// Well-formedness of a schedule, checked by unrolling (a window of) the program.
//
// Invariants:
//  1. Every reference names a declared buffer and stays inside one slot of it, in every
//     iteration of the window.
//  2. Every event named by a record or wait is declared, and its index is inside the event array.
//  3. Happens-before: two accesses from different streams to overlapping elements of one
//     buffer slot, at least one a write, are ordered by stream order and events (the earlier
//     access's stream recorded an event after it that the later access's stream waited for,
//     directly or through a chain). Accesses from one stream are ordered by that stream.
//  4. Loops have integer bounds and refer only to loop variables of enclosing loops (or `r`).
//  5. Given a memory plan, (3) holds in arena bytes too: a buffer that reuses another's bytes is
//     written only after that buffer's last accesses, from every stream, are ordered before it.
//  6. The phases (zero, micro, update) are top-level runs in that order, and a buffer that two
//     of them touch keeps its bytes for the whole step (phases.ts).
//  7. Every instruction is of an op of the catalog (ops.ts) and has the operands, attributes and
//     arguments its entry names (verifyOps: the lower stage and every schedule.json read check
//     it; verifySchedule does not, so that hand-made schedules can test the ordering alone).
import { DTYPE_BYTES } from '../ir/types.js';
import { sharedBytes, type Placement } from './memory.js';
import { opProblem } from './ops.js';
import { phaseProblem } from './phases.js';
import { STREAMS, type Item, type Schedule, type StreamName } from './types.js';
import { unroll, type DynInstr, type UnrollOptions } from './unroll.js';

export class ScheduleError extends Error {}

interface Access {
  readonly start: number;
  readonly end: number;
  readonly write: boolean;
  readonly stream: number;
  readonly tick: number;
  readonly instr: DynInstr;
  readonly buf: string;
}

const where = (d: DynInstr) => {
  const env = Object.entries(d.env).filter(([k]) => k !== 'r').map(([k, v]) => `${k}=${v}`).join(' ');
  return `${d.item.id} (${d.item.stream}: ${d.item.op}${env ? ` at ${env}` : ''})`;
};

export interface VerifyOptions extends UnrollOptions {
  /** the memory plan's placements: also check accesses to buffers that share bytes */
  placements?: readonly Placement[];
}

/** Default window: enough iterations of every loop kind to meet every loop-carried reuse. */
export const VERIFY_WINDOW = { layer: 3, chunk: 4, kv: 4, q: 4 } as const;

export function verifySchedule(s: Schedule, opts: VerifyOptions = { window: VERIFY_WINDOW }): void {
  const phases = phaseProblem(s);
  if (phases) throw new ScheduleError(`${phases} (invariant 6)`);
  const bufs = new Map(s.buffers.map((b) => [b.id, b]));
  const place = new Map((opts.placements ?? []).map((p) => [p.buf, p]));
  const shared = opts.placements ? sharedBytes({ placements: opts.placements }) : new Map<string, string[]>();
  /** arena byte range of elements [start, end) of one slot, or the element range without a plan */
  const bytes = (buf: string, slot: number, start: number, end: number): [number, number] => {
    const p = place.get(buf);
    const b = bufs.get(buf)!;
    if (!p) return [start, end];
    const w = DTYPE_BYTES[b.dtype];
    const base = p.offset + slot * b.elems * w;
    return [base + start * w, base + end * w];
  };
  const sIdx = new Map<StreamName, number>(STREAMS.map((x, i) => [x, i]));
  const clocks = STREAMS.map(() => new Array<number>(STREAMS.length).fill(0));
  const events = new Map<string, number[]>();
  const accesses = new Map<string, Access[]>();
  const keysOf = new Map<string, Set<string>>();
  let steps = 0;
  for (const d of unroll(s, opts)) {
    const x = sIdx.get(d.item.stream)!;
    if (d.kind !== 'instr') {
      const n = s.events[d.item.event];
      if (n === undefined) throw new ScheduleError(`event ${d.item.event} is used but not declared (invariant 2)`);
      if (d.kind === 'record') events.set(d.key, [...clocks[x]]);
      else {
        const e = events.get(d.key);
        if (e) for (let k = 0; k < e.length; k++) clocks[x][k] = Math.max(clocks[x][k], e[k]);
      }
      continue;
    }
    clocks[x][x]++;
    const tick = clocks[x][x];
    const check = (refs: typeof d.reads, write: boolean) => {
      for (const r of refs) {
        const b = bufs.get(r.buf);
        if (!b) throw new ScheduleError(`${where(d)} uses undeclared buffer ${r.buf} (invariant 1)`);
        if (r.start < 0 || r.end > b.elems || !Number.isInteger(r.start))
          throw new ScheduleError(`${where(d)} touches ${r.buf}[${r.start}, ${r.end}) outside its ${b.elems} elements (invariant 1)`);
        const key = `${r.buf}#${r.slot}`;
        const list = accesses.get(key) ?? [];
        const [lo, hi] = bytes(r.buf, r.slot, r.start, r.end);
        const others = (shared.get(r.buf) ?? []).flatMap((o) => [...(keysOf.get(o) ?? [])].flatMap((k) => accesses.get(k) ?? []));
        for (const a of [...list, ...others]) {
          if (a.stream === x || (!write && !a.write) || a.end <= lo || hi <= a.start) continue;
          if (a.tick > clocks[x][a.stream])
            throw new ScheduleError(
              `hazard on ${r.buf}${a.buf !== r.buf ? ` (reusing the bytes of ${a.buf})` : ''} slot ${r.slot} ${place.size ? 'bytes' : 'elements'} [${Math.max(a.start, lo)}, ${Math.min(a.end, hi)}): ` +
                `${where(a.instr)} ${a.write ? 'writes' : 'reads'} and ${where(d)} ${write ? 'writes' : 'reads'}, ` +
                `on streams ${STREAMS[a.stream]} and ${STREAMS[x]}, with no event ordering them (invariant 3)`,
            );
        }
        list.push({ start: lo, end: hi, write, stream: x, tick, instr: d, buf: r.buf });
        accesses.set(key, list);
        keysOf.set(r.buf, (keysOf.get(r.buf) ?? new Set()).add(key));
      }
    };
    check(d.reads, false);
    check(d.writes, true);
    if (++steps % 2048 === 0) prune(accesses, clocks);
  }
}

/** Invariant 7: every instruction matches its op's catalog entry. */
export function verifyOps(s: Pick<Schedule, 'body'>): void {
  const walk = (items: readonly Item[]): void => {
    for (const it of items) {
      if (it.kind === 'loop') walk(it.body);
      else if (it.kind === 'instr') {
        const p = opProblem(it);
        if (p) throw new ScheduleError(`${it.id}: ${p} (invariant 7)`);
      }
    }
  };
  walk(s.body);
}

/** Drops accesses that every stream is already ordered after: they can conflict with nothing new. */
function prune(accesses: Map<string, Access[]>, clocks: number[][]): void {
  for (const [k, list] of accesses) {
    const kept = list.filter((a) => clocks.some((c) => c[a.stream] < a.tick));
    accesses.set(k, kept);
  }
}
