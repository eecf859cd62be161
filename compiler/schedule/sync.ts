// Stream synchronization: inserts the event records and waits that order every pair of
// accesses to one buffer from different streams where one of them writes. The schedule's
// instructions are unchanged; only records, waits and event arrays are added.
//
// Invariants of its output (the hazard checker, verify.ts, checks the result independently,
// by unrolling):
//  1. Every read-after-write, write-after-read and write-after-write between two streams on
//     overlapping bytes of one buffer slot is ordered by a record after the earlier access and
//     a wait before the later one, loop-carried pairs included.
//  2. Accesses to rotating slots are told apart by their slot expressions, so a fetch into slot
//     j+1 does not wait for the block reading slot j: that is what makes double buffering overlap.
//  3. An access records an event indexed by its slot (or by its chunk window of a stash), and a
//     wait uses the index of the bytes it is about to touch: with CUDA's most-recent-record rule
//     it binds to the last access of exactly those bytes, whatever the loops did.
//  4. Given the memory plan's byte sharing, a buffer's writes also wait for the last accesses of
//     the buffers whose bytes it reuses.
//  5. No wait is issued twice in a straight-line stretch; waits implied by a later record on the
//     same stream in the same loop body are dropped; waits on events recorded outside a loop go
//     before it, once, unless an instruction of their stream comes before them in its body.
//
// Loop-carried dependencies (1) are found by running each loop body against the state its
// previous iterations leave (slot and window expressions shifted back, CARRIED_ITERATIONS).
import {
  accessIndex,
  Accesses,
  cloneState,
  KeyTable,
  mergeInto,
  shifted,
  unplaced,
  waitIndices,
  type Access,
  type AffineKey,
  type EventIndex,
  type State,
} from './sync-access.js';
import type { Affine, Buffer, EventOp, Instr, Item, Loop, Ref, Schedule, StreamName } from './types.js';

/**
 * How many iterations back loop-carried accesses are looked for: the previous one, and the one
 * before it, which used the same slot of a double buffer (no buffer rotates through more slots).
 */
const CARRIED_ITERATIONS = [1, 2] as const;
/** The length of the event array of an access recorded without an index: one plain event. */
const PLAIN_EVENT = 1;

/** Where an instruction sits: which loop body (numbered in program order) and its position there. */
interface Position {
  readonly body: number;
  readonly at: number;
}

/**
 * Whether, seen from position `here` of one loop body, the instruction at position `a` last ran
 * before the one at `b`: positions before `here` ran in this iteration, the others in the previous one.
 */
function ranBefore(a: number, b: number, here: number): boolean {
  const aNow = a < here;
  const bNow = b < here;
  return aNow === bNow ? a < b : bNow;
}

/** A wait's identity: waits with equal keys are the same wait. */
interface WaitKey {
  readonly stream: StreamName;
  readonly event: string;
  readonly index: AffineKey | undefined;
}

/** Where an event is recorded: after one instruction's read or write of a buffer, at one index. */
interface SiteKey {
  readonly instr: string;
  readonly write: boolean;
  readonly buf: string;
  readonly index: AffineKey | undefined;
}

/** Waits that order the same thing: same stream, same index into arrays of the same length (a slot and a chunk index differ). */
interface OrderKey {
  readonly stream: StreamName;
  readonly index: AffineKey | undefined;
  readonly length: number;
}

class Sync {
  private eventCount = 0;
  /** instr id -> events to record right after it */
  private readonly recordsAfter = new Map<string, { event: string; index?: Affine }[]>();
  readonly events: Record<string, number> = {};
  private readonly bufs: Map<string, Buffer>;
  private readonly accesses = new Accesses();

  /** an access's site -> its event */
  private readonly eventOf = new Map<SiteKey, string>();
  private readonly siteKeys = new KeyTable<[instr: string, write: boolean, buf: string, index: AffineKey | undefined], SiteKey>((instr, write, buf, index) => ({
    instr,
    write,
    buf,
    index,
  }));
  private readonly waitKeys = new KeyTable<[stream: StreamName, event: string, index: AffineKey | undefined], WaitKey>((stream, event, index) => ({
    stream,
    event,
    index,
  }));
  private readonly orderKeys = new KeyTable<[stream: StreamName, index: AffineKey | undefined, length: number], OrderKey>((stream, index, length) => ({
    stream,
    index,
    length,
  }));

  /** instruction id -> where it sits */
  private readonly position = new Map<string, Position>();
  /** event -> the instruction after which it is recorded, and that instruction's stream */
  private readonly site = new Map<string, { instr: string; stream: StreamName }>();

  constructor(
    s: Schedule,
    /** buffers that the memory plan puts on the same bytes (at different times) */
    private readonly shared: ReadonlyMap<string, readonly string[]> = new Map(),
  ) {
    this.bufs = new Map(s.buffers.map((b) => [b.id, b]));
    let bodies = 0;
    const number = (items: readonly Item[]) => {
      const body = bodies++;
      items.forEach((it, at) => (it.kind === 'loop' ? number(it.body) : this.position.set(it.id, { body, at })));
    };
    number(s.body);
  }

  private waitKey(stream: StreamName, event: string, index: Affine | undefined): WaitKey {
    return this.waitKeys.of(stream, event, this.accesses.affine.of(index));
  }

  /**
   * Drops waits implied by others: of several events recorded on one stream after
   * instructions of this same loop body, with the same index, the most recently recorded one
   * orders all of them.
   */
  private reduce(it: Instr, waits: EventOp[]): EventOp[] {
    const here = this.position.get(it.id)!;
    const latest = new Map<OrderKey, { at: number; w: EventOp }>();
    const keep: EventOp[] = [];
    for (const w of waits) {
      const site = this.site.get(w.event)!;
      const { body, at } = this.position.get(site.instr)!;
      if (body !== here.body) {
        keep.push(w);
        continue;
      }
      const group = this.orderKeys.of(site.stream, this.accesses.affine.of(w.index), this.events[w.event]);
      const cur = latest.get(group);
      if (!cur || ranBefore(cur.at, at, here.at)) latest.set(group, { at, w });
    }
    return [...keep, ...[...latest.values()].map((x) => x.w)];
  }

  private eventFor(a: Access): string {
    const key = this.siteKeys.of(a.instr, a.write, a.buf, this.accesses.affine.of(a.recorded?.index));
    let e = this.eventOf.get(key);
    if (!e) {
      e = `e${this.eventCount++}`;
      this.eventOf.set(key, e);
      this.site.set(e, { instr: a.instr, stream: a.stream });
      this.events[e] = a.recorded?.count ?? PLAIN_EVENT;
      const list = this.recordsAfter.get(a.instr) ?? [];
      list.push({ event: e, ...(a.recorded ? { index: a.recorded.index } : {}) });
      this.recordsAfter.set(a.instr, list);
    }
    return e;
  }

  walk(items: readonly Item[], state: State, emit: boolean): Item[] {
    const out: Item[] = [];
    // waits already issued in this straight-line stretch of program
    const issued = new Set<WaitKey>();
    for (const it of items) {
      if (it.kind === 'loop') {
        issued.clear();
        const { loop, hoisted } = this.loop(it, state, emit);
        out.push(...hoisted, loop);
      } else if (it.kind === 'instr') {
        if (emit)
          for (const w of this.reduce(it, this.waitsFor(it, state))) {
            const key = this.waitKey(w.stream, w.event, w.index);
            if (issued.has(key)) continue;
            issued.add(key);
            out.push(w);
          }
        this.touch(it, state);
        // waits issued before this instruction were for its earlier executions
        for (const r of this.recordsAfter.get(it.id) ?? []) for (const k of issued) if (k.event === r.event) issued.delete(k);
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
    const earlier = l.reverse ? 1 : -1; // previous iterations, in this iteration's terms
    for (const back of CARRIED_ITERATIONS) mergeInto(entry, this.accesses.moved(dry, l.var, (a) => shifted(a, l.var, earlier * back)));
    const walked = this.walk(l.body, entry, emit);
    // The loop may run no iteration at all: what came before it still stands beside what it left.
    mergeInto(state, entry);
    this.forget(state, l.var);
    // A wait for an event recorded outside the loop binds to the same record in every iteration:
    // it goes before the loop, once (unless its index moves with the loop), where no instruction
    // of its stream comes before it in the body. Where one does, it stays: hoisted, it would hold
    // that earlier instruction too (a fetch at the top of a layer's backward would wait for the
    // last reader of the bytes a later fetch reuses), and waiting again on a completed record
    // costs the host one call an iteration.
    const inside = new Set<string>();
    const collect = (items: readonly Item[]) => items.forEach((x) => (x.kind === 'loop' ? collect(x.body) : inside.add(x.id)));
    collect(l.body);
    const started = new Set<StreamName>();
    const mark = (items: readonly Item[]) => items.forEach((x) => (x.kind === 'loop' ? mark(x.body) : x.kind === 'instr' && started.add(x.stream)));
    const hoisted: EventOp[] = [];
    const seen = new Set<WaitKey>();
    const body = walked.filter((x) => {
      if (x.kind === 'loop' || x.kind === 'instr') mark([x]);
      if (x.kind !== 'wait' || started.has(x.stream) || inside.has(this.site.get(x.event)!.instr) || (x.index && x.index.t[l.var])) return true;
      const key = this.waitKey(x.stream, x.event, x.index);
      if (!seen.has(key)) {
        seen.add(key);
        hoisted.push(x);
      }
      return false;
    });
    return { loop: { ...l, body }, hoisted };
  }

  /** After a loop, slot and window expressions in its variable no longer mean anything. */
  private forget(state: State, variable: string): void {
    for (const [buf, m] of this.accesses.moved(state, variable, (a) => unplaced(a, variable))) state.set(buf, m);
  }

  private waitsFor(it: Instr, state: State): EventOp[] {
    const waits: EventOp[] = [];
    const seen = new Set<WaitKey>();
    /** Waits for `a`'s event, at the indices `mine` (the bytes about to be touched) needs. */
    const waitOn = (a: Access, mine?: EventIndex) => {
      const event = this.eventFor(a);
      for (const index of waitIndices(a, mine)) {
        const key = this.waitKey(it.stream, event, index);
        if (seen.has(key)) continue;
        seen.add(key);
        waits.push({ kind: 'wait', id: `w_${it.id}_${waits.length}`, stream: it.stream, event, ...(index ? { index } : {}) });
      }
    };
    const conflicts = (r: Ref, write: boolean) => {
      const buf = this.bufs.get(r.buf)!;
      const mine = accessIndex(buf, r);
      for (const a of state.get(r.buf)?.values() ?? []) {
        if (a.stream === it.stream || (!write && !a.write) || !this.accesses.mayOverlap(a, r)) continue;
        if (this.accesses.slotAlias(a.slot, r.slot, buf.slots) === 'no') continue;
        waitOn(a, mine);
      }
    };
    // A write to bytes that an earlier buffer used must wait for that buffer's last accesses.
    const reuse = (r: Ref) => {
      for (const other of this.shared.get(r.buf) ?? []) for (const a of state.get(other)?.values() ?? []) if (a.stream !== it.stream) waitOn(a);
    };
    it.reads.forEach((r) => conflicts(r, false));
    it.writes.forEach((r) => conflicts(r, true));
    it.writes.forEach(reuse);
    return waits;
  }

  private touch(it: Instr, state: State): void {
    const add = (r: Ref, write: boolean) => {
      const buf = this.bufs.get(r.buf)!;
      const recorded = accessIndex(buf, r);
      const a: Access = {
        stream: it.stream,
        write,
        buf: r.buf,
        instr: it.id,
        off: r.off,
        len: r.len,
        ...(buf.slots > 1 && r.slot ? { slot: r.slot } : {}),
        ...(recorded ? { recorded } : {}),
      };
      let m = state.get(r.buf);
      if (!m) state.set(r.buf, (m = new Map()));
      for (const [key, x] of m) if (this.accesses.supersedes(a, x, buf.slots)) m.delete(key);
      m.set(this.accesses.key(a), a);
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
