// Stream synchronization: inserts the event records and waits that order every pair of
// accesses to one buffer from different streams where one of them writes.
// - Accesses to rotating slots are told apart by their slot expressions, so a fetch into slot
//   j+1 does not wait for the block reading slot j: that is what makes double buffering overlap.
// - An access records an event indexed by its slot (or by its chunk window of a stash), and a
//   wait uses the index of the bytes it is about to touch: with CUDA's most-recent-record rule it
//   binds to the last access of exactly those bytes, whatever the loops did.
// - Loop-carried dependencies are found by running each loop body against the state its previous
//   iterations leave (slot and offset expressions shifted back by one and two iterations).
// - Given the memory plan's byte sharing, a buffer's writes also wait for the last accesses of
//   the buffers whose bytes it reuses.
// - Waits implied by a later record on the same stream in the same loop body are dropped, and
//   waits on events recorded outside a loop go before it.
// The hazard checker (verify.ts) checks the result independently, by unrolling.
import type { Affine, Buffer, EventOp, Instr, Item, Loop, Ref, Schedule, StreamName } from './types.js';

interface Access {
  readonly stream: StreamName;
  readonly write: boolean;
  readonly buf: string;
  /** slot expression in the current iteration's terms; undefined = any slot */
  readonly slot?: Affine;
  readonly instr: string;
  /** element window in the current iteration's terms; undefined = anywhere in the buffer */
  readonly off?: Affine;
  readonly len: number;
  /** slot or window number as recorded (the event index), with the event array's length */
  readonly recordIndex?: Affine;
  readonly indexCount?: number;
  readonly indexLen?: number;
}

/** buffer -> its live accesses, by access identity (accessKey) */
type State = Map<string, Map<string, Access>>;

const shift = (a: Affine, varName: string, by: number): Affine => ({ c: a.c + (a.t[varName] ?? 0) * by, t: a.t });
const termKeys = new WeakMap<Affine, string>();
/** The loop-variable part of an affine expression as a string (cached: compared very often). */
function termsOf(a: Affine): string {
  let k = termKeys.get(a);
  if (k === undefined) {
    k = Object.keys(a.t)
      .filter((n) => a.t[n] !== 0)
      .sort()
      .map((n) => `${n}*${a.t[n]}`)
      .join('+');
    termKeys.set(a, k);
  }
  return k;
}
const sameTerms = (a: Affine, b: Affine) => termsOf(a) === termsOf(b);
const affKey = (a: Affine | undefined) => (a ? `${a.c}:${termsOf(a)}` : '-');
const mod = (x: number, n: number) => ((x % n) + n) % n;

/** 'no' when two slot expressions can never name the same slot, 'same' when they always do. */
function slotAlias(a: Affine | undefined, b: Affine | undefined, slots: number): 'no' | 'same' | 'maybe' {
  if (slots <= 1) return 'same';
  if (!a || !b || !sameTerms(a, b)) return 'maybe';
  return mod(a.c - b.c, slots) === 0 ? 'same' : 'no';
}

/** Whether two windows of one buffer can overlap: only windows in the same loop terms are told apart. */
function mayOverlap(a: { off?: Affine; len: number }, b: { off?: Affine; len: number }): boolean {
  if (!a.off || !b.off || !sameTerms(a.off, b.off)) return true;
  return a.off.c < b.off.c + b.len && b.off.c < a.off.c + a.len;
}

function cloneState(s: State): State {
  const out: State = new Map();
  for (const [k, v] of s) out.set(k, new Map(v));
  return out;
}

/** A buffer's accesses as a fresh map keyed by identity (for shifted or forgotten copies). */
function keyed(list: Iterable<Access>): Map<string, Access> {
  const m = new Map<string, Access>();
  for (const a of list) m.set(accessKey(a), a);
  return m;
}

const accessKeys = new WeakMap<Access, string>();
/** Identity of an access for merging states; accesses are immutable, so it is computed once. */
function accessKey(a: Access): string {
  let k = accessKeys.get(a);
  if (k === undefined) {
    k = `${a.instr}|${a.write}|${affKey(a.slot)}|${affKey(a.off)}`;
    accessKeys.set(a, k);
  }
  return k;
}

function mergeInto(into: State, from: State): void {
  for (const [k, m] of from) {
    let cur = into.get(k);
    if (!cur) into.set(k, (cur = new Map()));
    for (const [key, a] of m) if (!cur.has(key)) cur.set(key, a);
  }
}

/**
 * The event index an access records: its slot for rotating buffers, else its window number
 * when it touches an aligned window (chunk k of a stash). Waiting on index "my slot" or "my
 * window" then finds the latest access to exactly those bytes.
 */
const MAX_WINDOWS = 256;

function accessIndex(b: Buffer, r: Ref): { index: Affine; count: number; len: number } | undefined {
  if (b.slots > 1) return r.slot ? { index: r.slot, count: b.slots, len: -1 } : undefined;
  // windows only for buffers cut into few pieces (chunks, layers): a wait on "any window"
  // becomes one wait per window
  if (r.len <= 0 || r.len === b.elems || b.elems % r.len !== 0 || b.elems / r.len > MAX_WINDOWS) return undefined;
  const terms = Object.values(r.off.t);
  if (r.off.c % r.len !== 0 || terms.some((x) => x % r.len !== 0)) return undefined;
  const t: Record<string, number> = {};
  for (const [k, x] of Object.entries(r.off.t)) t[k] = x / r.len;
  return { index: { c: r.off.c / r.len, t }, count: b.elems / r.len, len: r.len };
}

class Sync {
  private eventCount = 0;
  /** instr id -> events to record right after it */
  readonly recordsAfter = new Map<string, { event: string; index?: Affine }[]>();
  /** access identity -> its event */
  private readonly eventOf = new Map<string, string>();
  readonly events: Record<string, number> = {};
  private readonly bufs: Map<string, Buffer>;

  /** instruction id -> the list (loop body) it sits in and its index there */
  private readonly place = new Map<string, { list: number; index: number }>();
  /** event -> the instruction after which it is recorded, and that instruction's stream */
  private readonly site = new Map<string, { instr: string; stream: StreamName }>();

  constructor(
    s: Schedule,
    /** buffers that the memory plan puts on the same bytes (at different times) */
    private readonly shared: ReadonlyMap<string, readonly string[]> = new Map(),
  ) {
    this.bufs = new Map(s.buffers.map((b) => [b.id, b]));
    let lists = 0;
    const number = (items: readonly Item[]) => {
      const list = lists++;
      items.forEach((it, index) => (it.kind === 'loop' ? number(it.body) : this.place.set(it.id, { list, index })));
    };
    number(s.body);
  }

  /**
   * Drops waits implied by others: of several events recorded on one stream after
   * instructions of this same loop body, with the same index, the most recently recorded one
   * orders all of them (instructions before the wait in the body ran in this iteration, those
   * after it in the previous one).
   */
  private reduce(it: Instr, waits: EventOp[]): EventOp[] {
    const here = this.place.get(it.id)!;
    const best = new Map<string, { key: number; w: EventOp }>();
    const keep: EventOp[] = [];
    for (const w of waits) {
      const site = this.site.get(w.event)!;
      const at = this.place.get(site.instr)!;
      if (at.list !== here.list) {
        keep.push(w);
        continue;
      }
      // same stream, same index into arrays of the same length (a slot and a chunk index differ)
      const group = `${site.stream}|${w.index ? affKey(w.index) : '-'}|${this.events[w.event]}`;
      const key = at.index < here.index ? at.index + 1e9 : at.index;
      const cur = best.get(group);
      if (!cur || key > cur.key) best.set(group, { key, w });
    }
    return [...keep, ...[...best.values()].map((x) => x.w)];
  }

  private eventFor(a: Access): string {
    const key = `${a.instr}|${a.write}|${a.buf}|${JSON.stringify(a.recordIndex)}`;
    let e = this.eventOf.get(key);
    if (!e) {
      e = `e${this.eventCount++}`;
      this.eventOf.set(key, e);
      this.site.set(e, { instr: a.instr, stream: a.stream });
      this.events[e] = a.recordIndex ? a.indexCount! : 1;
      const list = this.recordsAfter.get(a.instr) ?? [];
      list.push({ event: e, ...(a.recordIndex ? { index: a.recordIndex } : {}) });
      this.recordsAfter.set(a.instr, list);
    }
    return e;
  }

  walk(items: readonly Item[], state: State, emit: boolean): Item[] {
    const out: Item[] = [];
    // waits already issued on each stream in this straight-line stretch of program
    const done = new Set<string>();
    for (const it of items) {
      if (it.kind === 'loop') {
        done.clear();
        const { loop, hoisted } = this.loop(it, state, emit);
        out.push(...hoisted, loop);
      } else if (it.kind === 'instr') {
        if (emit)
          for (const w of this.reduce(it, this.waitsFor(it, state))) {
            const key = `${w.stream}|${w.event}|${JSON.stringify(w.index)}`;
            if (done.has(key)) continue;
            done.add(key);
            out.push(w);
          }
        this.touch(it, state);
        // waits issued before this instruction were for its earlier executions
        for (const r of this.recordsAfter.get(it.id) ?? []) for (const k of [...done]) if (k.split('|')[1] === r.event) done.delete(k);
        out.push(it);
      } else out.push(it);
    }
    return out;
  }

  private loop(l: Loop, state: State, emit: boolean): { loop: Loop; hoisted: EventOp[] } {
    if (!emit) {
      // Only the accesses the loop leaves behind matter here, not the waits inside it.
      const after = cloneState(state);
      this.walk(l.body, after, false);
      mergeInto(state, after);
      this.forget(state, l.var);
      return { loop: l, hoisted: [] };
    }
    const dry = cloneState(state);
    this.walk(l.body, dry, false);
    const entry = cloneState(state);
    const step = l.reverse ? 1 : -1; // previous iterations, in this iteration's terms
    for (const back of [1, 2]) {
      const carried: State = new Map();
      for (const [k, m] of dry)
        carried.set(
          k,
          keyed(
            [...m.values()].map((a) =>
              a.slot?.t[l.var] || a.off?.t[l.var] ? { ...a, ...(a.slot ? { slot: shift(a.slot, l.var, step * back) } : {}), ...(a.off ? { off: shift(a.off, l.var, step * back) } : {}) } : a,
            ),
          ),
        );
      mergeInto(entry, carried);
    }
    const walked = this.walk(l.body, entry, emit);
    // The loop may run no iteration at all: what came before it still stands beside what it left.
    mergeInto(state, entry);
    this.forget(state, l.var);
    // A wait for an event recorded outside the loop binds to the same record in every iteration:
    // it goes before the loop, once (unless its index moves with the loop).
    const inside = new Set<string>();
    const collect = (items: readonly Item[]) => items.forEach((x) => (x.kind === 'loop' ? collect(x.body) : inside.add(x.id)));
    collect(l.body);
    const hoisted: EventOp[] = [];
    const seen = new Set<string>();
    const body = walked.filter((x) => {
      if (x.kind !== 'wait' || inside.has(this.site.get(x.event)!.instr) || (x.index && x.index.t[l.var])) return true;
      const key = `${x.stream}|${x.event}|${x.index ? affKey(x.index) : '-'}`;
      if (!seen.has(key)) {
        seen.add(key);
        hoisted.push(x);
      }
      return false;
    });
    return { loop: { ...l, body }, hoisted };
  }

  /** After a loop, slot and offset expressions in its variable no longer mean anything. */
  private forget(state: State, varName: string): void {
    for (const [k, m] of state) {
      let touched = false;
      for (const a of m.values()) if (a.slot?.t[varName] || a.off?.t[varName]) touched = true;
      if (!touched) continue;
      state.set(
        k,
        keyed([...m.values()].map((a) => (a.slot?.t[varName] || a.off?.t[varName] ? { ...a, slot: a.slot && a.slot.t[varName] ? undefined : a.slot, off: a.off && a.off.t[varName] ? undefined : a.off } : a))),
      );
    }
  }

  private waitsFor(it: Instr, state: State): EventOp[] {
    const waits: EventOp[] = [];
    const seen = new Set<string>();
    const need = (r: Ref, write: boolean) => {
      const buf = this.bufs.get(r.buf)!;
      const mine = accessIndex(buf, r);
      for (const a of state.get(r.buf)?.values() ?? []) {
        if (a.stream === it.stream || (!write && !a.write) || !mayOverlap(a, r)) continue;
        if (slotAlias(a.slot, r.slot, buf.slots) === 'no') continue;
        const ev = this.eventFor(a);
        const indices: (Affine | undefined)[] = !a.recordIndex
          ? [undefined]
          : mine && mine.len === a.indexLen
            ? [mine.index]
            : [...Array(a.indexCount!).keys()].map((c) => ({ c, t: {} }));
        for (const index of indices) {
          const key = `${ev}|${JSON.stringify(index)}`;
          if (seen.has(key)) continue;
          seen.add(key);
          waits.push({ kind: 'wait', id: `w_${it.id}_${waits.length}`, stream: it.stream, event: ev, ...(index ? { index } : {}) });
        }
      }
    };
    // A write to bytes that an earlier buffer used must wait for that buffer's last accesses.
    const reuse = (r: Ref) => {
      for (const other of this.shared.get(r.buf) ?? [])
        for (const a of state.get(other)?.values() ?? []) {
          if (a.stream === it.stream) continue;
          const ev = this.eventFor(a);
          const indices: (Affine | undefined)[] = a.recordIndex ? [...Array(a.indexCount!).keys()].map((c) => ({ c, t: {} })) : [undefined];
          for (const index of indices) {
            const key = `${ev}|${JSON.stringify(index)}`;
            if (seen.has(key)) continue;
            seen.add(key);
            waits.push({ kind: 'wait', id: `w_${it.id}_${waits.length}`, stream: it.stream, event: ev, ...(index ? { index } : {}) });
          }
        }
    };
    it.reads.forEach((r) => need(r, false));
    it.writes.forEach((r) => need(r, true));
    it.writes.forEach(reuse);
    return waits;
  }

  private touch(it: Instr, state: State): void {
    const add = (r: Ref, write: boolean) => {
      const buf = this.bufs.get(r.buf)!;
      const idx = accessIndex(buf, r);
      const a: Access = {
        stream: it.stream,
        write,
        buf: r.buf,
        instr: it.id,
        off: r.off,
        len: r.len,
        ...(buf.slots > 1 && r.slot ? { slot: r.slot } : {}),
        ...(idx ? { recordIndex: idx.index, indexCount: idx.count, indexLen: idx.len } : {}),
      };
      // A later access by the same site to the same slot or window supersedes the earlier one
      // (a wait binds to that index's latest record anyway); one by the same stream to the
      // same bytes orders after them.
      let m = state.get(r.buf);
      if (!m) state.set(r.buf, (m = new Map()));
      for (const [key, x] of m)
        if (
          (x.instr === a.instr && x.write === a.write && affKey(x.recordIndex) === affKey(a.recordIndex) && affKey(x.slot) === affKey(a.slot)) ||
          (x.stream === a.stream &&
            (x.write === a.write || a.write) &&
            slotAlias(x.slot, a.slot, buf.slots) === 'same' &&
            !!x.slot === !!a.slot &&
            affKey(x.off) === affKey(a.off) &&
            x.len === a.len)
        )
          m.delete(key);
      m.set(accessKey(a), a);
    };
    it.reads.forEach((r) => add(r, false));
    it.writes.forEach((r) => add(r, true));
  }

  placeRecords(items: readonly Item[]): Item[] {
    const out: Item[] = [];
    for (const it of items) {
      if (it.kind === 'loop') {
        out.push({ ...it, body: this.placeRecords(it.body) });
        continue;
      }
      out.push(it);
      if (it.kind === 'instr')
        for (const r of this.recordsAfter.get(it.id) ?? [])
          out.push({ kind: 'record', id: `r_${it.id}_${r.event}`, stream: it.stream, event: r.event, ...(r.index ? { index: r.index } : {}) });
    }
    return out;
  }
}

/** Adds the events that order cross-stream accesses; the schedule's instructions are unchanged. */
export function syncStreams(s: Schedule, shared?: ReadonlyMap<string, readonly string[]>): Schedule {
  const sync = new Sync(s, shared);
  const body = sync.placeRecords(sync.walk(s.body, new Map(), true));
  return { ...s, body, events: { ...s.events, ...sync.events } };
}
