// One rank's program, unrolled and split the way a GPU runs it: one queue per stream, each wait
// bound to the record it will wait for, and the points where the memory plan frees a buffer.
//
// Binding (CUDA semantics): a `wait E[i]` waits for the most recent `record E[i]` issued before
// it in program order, whichever stream recorded it; with no such record it is a no-op.
// Freeing: the plan reserves a buffer's bytes over an interval of program positions; each
// time the unrolled program leaves that interval, one "instance" of the buffer ends, and the
// bytes are poisoned once every instruction of the instance that touched it has run, unless
// the buffer's next instance has already begun writing them (a prefetch into the next
// iteration's slot is the buffer's own business, not a reuse by another buffer).
import type { MemoryPlan } from '../schedule/memory.js';
import { groupPosition, STREAMS, type Item, type Schedule } from '../schedule/types.js';
import { unroll, type DynItem } from '../schedule/unroll.js';

export interface QueuedItem {
  readonly dyn: DynItem;
  /** for waits: program-order index (`seq`) of the bound record, or -1 */
  readonly bound: number;
  /** for collectives: how many collectives this rank issued before it */
  readonly collective: number;
  /** for instructions: buffer instances whose last pending access this may be */
  readonly instances: readonly number[];
}

export interface BufferInstance {
  readonly buf: string;
  accesses: number;
  next: number;
}

export interface RankProgram {
  readonly rank: number;
  /** one queue per stream, in STREAMS order */
  readonly queues: readonly (readonly QueuedItem[])[];
  /** number of items (seq runs from 0 to this) */
  readonly size: number;
  /** per buffer instance: its buffer, how many instructions touch it, the buffer's next instance (-1: none) */
  readonly instances: readonly BufferInstance[];
}

/**
 * Program position of every non-loop item, counted as the memory planner counts them: each
 * instruction takes one; an event shares the position of the instruction after it.
 */
export function itemPositions(body: readonly Item[]): Map<string, number> {
  const out = new Map<string, number>();
  let pos = 0;
  const walk = (items: readonly Item[]) => {
    for (const it of items) {
      if (it.kind === 'loop') walk(it.body);
      else if (it.kind === 'instr') out.set(it.id, pos++);
      else out.set(it.id, pos);
    }
  };
  walk(body);
  return out;
}

const isCollective = (d: DynItem, names: ReadonlySet<string>) => d.kind === 'instr' && names.has(d.item.op);

/**
 * `positions`: of the whole step's items, when `s` runs only some of its phases (the plan's
 * intervals are positions of the whole step).
 */
export function buildRankProgram(s: Schedule, plan: MemoryPlan, rank: number, collectives: ReadonlySet<string>, positions?: ReadonlyMap<string, number>): RankProgram {
  const pos = positions ?? itemPositions(s.body);
  const last = plan.positions - 1;
  // only buffers the plan does not keep for the whole step are ever freed
  const freed = new Map(plan.placements.filter((p) => !(p.live[0] <= 0 && p.live[1] >= last)).map((p) => [p.buf, p.live] as const));
  const open = new Map<string, number>(); // buffer -> its current instance
  const instances: BufferInstance[] = [];
  const latest = new Map<string, number>(); // buffer -> its last instance so far
  const lastRecord = new Map<string, number>();
  const queues: QueuedItem[][] = STREAMS.map(() => []);
  let collectiveCount = 0;
  let size = 0;
  // `r` in the program is the rank's place in its sequence-parallel group
  for (const d of unroll(s, { rank: groupPosition(s, rank) })) {
    size++;
    const p = pos.get(d.item.id)!;
    // instances end when the program leaves the interval the plan reserved (events take no
    // position of their own, so only instructions move the program)
    if (d.kind === 'instr')
      for (const b of open.keys()) {
      const [lo, hi] = freed.get(b)!;
      if (p < lo || p > hi) open.delete(b);
    }
    let bound = -1;
    let collective = -1;
    const mine: number[] = [];
    if (d.kind !== 'instr') {
      if (d.kind === 'record') lastRecord.set(d.key, d.seq);
      else bound = lastRecord.get(d.key) ?? -1;
    } else {
      if (isCollective(d, collectives)) collective = collectiveCount++;
      const touched = new Set([...d.reads, ...d.writes].map((r) => r.buf));
      for (const b of touched) {
        if (!freed.has(b)) continue;
        let id = open.get(b);
        if (id === undefined) {
          id = instances.length;
          instances.push({ buf: b, accesses: 0, next: -1 });
          const prev = latest.get(b);
          if (prev !== undefined) instances[prev].next = id;
          latest.set(b, id);
          open.set(b, id);
        }
        instances[id].accesses++;
        mine.push(id);
      }
    }
    queues[STREAMS.indexOf(d.item.stream)].push({ dyn: d, bound, collective, instances: mine });
  }
  return { rank, queues, size, instances };
}
