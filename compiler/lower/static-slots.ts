// A rotating buffer reserves all of its slots for the union of their lives. Where every access
// names a slot known before the step runs (its slot expression takes one value over the ranges
// of the loops around it), the slots are separate buffers in all but name: a one-layer model's
// `act.carry@l` is slot 0 and `act.carry@l+1` slot 1, the layer input kept through the backward
// and the layer output dead after the loss. This pass makes each such slot a one-slot buffer,
// `<id>#<slot>`, so that the memory plan gives each its own live interval and a dead slot's bytes
// serve what is live only later. Slots no access names are dropped with the other unused buffers.
// A buffer whose slot varies with a loop (the carry of several layers, a chunk's double buffer)
// stays as it is, and so does a fetch target (written by a copy from the host), even when its
// slots are known: its copy runs ahead on its own stream, and a slot with a shorter life would
// let the plan give it bytes that the compute before it still uses, holding the fetch back
// until then (DeepSpeed's layer at 128K: the backward's first k fetch behind the last dO chunk).
import type { Affine, Buffer, Instr, Item, Ref, Schedule } from '../schedule/types.js';

type Range = readonly [number, number];
type Ranges = ReadonlyMap<string, Range>;

/** The least and greatest value of `a` over the ranges of its variables; undefined if one is unbound. */
function rangeOf(a: Affine, ranges: Ranges): Range | undefined {
  let lo = a.c;
  let hi = a.c;
  for (const [name, k] of Object.entries(a.t)) {
    if (k === 0) continue;
    const r = ranges.get(name);
    if (!r) return undefined;
    lo += k * (k > 0 ? r[0] : r[1]);
    hi += k * (k > 0 ? r[1] : r[0]);
  }
  return [lo, hi];
}

const slotMod = (x: number, n: number): number => ((x % n) + n) % n;

/** The program with each access replaced by `f(access, ranges of the loop variables around it)`. */
function mapRefs(s: Schedule, f: (r: Ref, ranges: Ranges) => Ref): Item[] {
  const walk = (items: readonly Item[], ranges: Ranges): Item[] =>
    items.map((it): Item => {
      if (it.kind === 'instr') return { ...it, reads: it.reads.map((r) => f(r, ranges)), writes: it.writes.map((r) => f(r, ranges)) } satisfies Instr;
      if (it.kind !== 'loop') return it;
      const from = rangeOf(it.from, ranges);
      const to = rangeOf(it.to, ranges);
      const inner = new Map(ranges);
      // a loop that never runs leaves its variable without a value
      if (from && to && from[0] <= to[1] - 1) inner.set(it.var, [from[0], to[1] - 1]);
      else inner.delete(it.var);
      return { ...it, body: walk(it.body, inner) };
    });
  return walk(s.body, new Map([['r', [0, s.config.sp - 1] as const]]));
}

/** The one slot an access names, or undefined when it varies over the loops around it. */
function knownSlot(r: Ref, slots: number, ranges: Ranges): number | undefined {
  const range = r.slot ? rangeOf(r.slot, ranges) : ([0, 0] as const);
  return range && range[0] === range[1] ? slotMod(range[0], slots) : undefined;
}

/** Buffers a copy from the host writes: their slots are a prefetch pipeline (see the header). */
function fetchTargets(items: readonly Item[], out = new Set<string>()): Set<string> {
  for (const it of items) {
    if (it.kind === 'loop') fetchTargets(it.body, out);
    else if (it.kind === 'instr' && it.stream === 'h2d') for (const w of it.writes) out.add(w.buf);
  }
  return out;
}

export const slotBufferId = (id: string, slot: number): string => `${id}#${slot}`;

/** The schedule with each buffer whose accesses all name known slots split into one buffer per slot. */
export function splitStaticSlots(s: Schedule): Schedule {
  const slots = new Map(s.buffers.filter((b) => b.slots > 1).map((b) => [b.id, b.slots]));
  const split = new Set(slots.keys());
  mapRefs(s, (r, ranges) => {
    if (split.has(r.buf) && knownSlot(r, slots.get(r.buf)!, ranges) === undefined) split.delete(r.buf);
    return r;
  });
  for (const id of fetchTargets(s.body)) split.delete(id);
  if (split.size === 0) return s;
  const buffers: Buffer[] = s.buffers.flatMap((b) =>
    split.has(b.id) ? Array.from({ length: b.slots }, (_, k) => ({ ...b, id: slotBufferId(b.id, k), slots: 1 })) : [b],
  );
  const body = mapRefs(s, (r, ranges) => {
    if (!split.has(r.buf)) return r;
    const { slot: _slot, ...rest } = r;
    return { ...rest, buf: slotBufferId(r.buf, knownSlot(r, slots.get(r.buf)!, ranges)!) };
  });
  return { ...s, buffers, body };
}
