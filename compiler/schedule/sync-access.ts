// What the sync pass (sync.ts) knows about each buffer: the accesses that later ones may
// conflict with, and how two of them relate.
//
// An access is one instruction's read or write of a window of a buffer, with its slot and
// window written in the current loop iteration's terms. Keys are interned objects, never
// strings: equal affine expressions (whatever the order or zero terms of `t`) share one
// AffineKey, and a composite key is one object per distinct tuple, so Maps and Sets compare
// keys by identity and nothing is joined into a string to be split again.
import type { Affine, Buffer, Ref, StreamName } from './types.js';

type Trie = Map<unknown, unknown>;
/** Marks, in a trie node, the key of the tuple that ends there (a tuple may prefix another). */
const END = Symbol('end of tuple');

/** One key object per distinct tuple of parts (compared with ===), built once by `make`. */
export class KeyTable<Parts extends readonly unknown[], Key extends object> {
  private readonly root: Trie = new Map();
  constructor(private readonly make: (...parts: Parts) => Key) {}

  of(...parts: Parts): Key {
    let node = this.root;
    for (const p of parts) {
      let next = node.get(p) as Trie | undefined;
      if (!next) node.set(p, (next = new Map()));
      node = next;
    }
    let key = node.get(END) as Key | undefined;
    if (!key) node.set(END, (key = this.make(...parts)));
    return key;
  }
}

/** The loop-variable part of an affine expression: its nonzero terms, sorted by variable. */
export interface Terms {
  readonly terms: readonly (readonly [variable: string, coef: number])[];
}
/** An affine expression, interned. */
export interface AffineKey {
  readonly c: number;
  readonly terms: Terms;
}

/** Interns affine expressions; one table per run of the pass (keys are compared very often). */
export class AffineKeys {
  private readonly termTable = new KeyTable<(string | number)[], Terms>((...flat) => ({
    terms: Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i] as string, flat[2 * i + 1] as number] as const),
  }));
  private readonly termsOfT = new WeakMap<Affine['t'], Terms>();
  private readonly exprTable = new KeyTable<[c: number, terms: Terms], AffineKey>((c, terms) => ({ c, terms }));
  private readonly exprOf = new WeakMap<Affine, AffineKey>();

  /** Cached by `t`: shifting an expression keeps its `t`. */
  terms(a: Affine): Terms {
    let k = this.termsOfT.get(a.t);
    if (k === undefined) {
      const names = Object.keys(a.t)
        .filter((n) => a.t[n] !== 0)
        .sort();
      k = this.termTable.of(...names.flatMap((n) => [n, a.t[n]]));
      this.termsOfT.set(a.t, k);
    }
    return k;
  }

  sameTerms(a: Affine, b: Affine): boolean {
    return this.terms(a) === this.terms(b);
  }

  /** undefined (any slot, anywhere) stays undefined, which is a valid Map key and equal to itself. */
  of(a: Affine | undefined): AffineKey | undefined {
    if (!a) return undefined;
    let k = this.exprOf.get(a);
    if (k === undefined) this.exprOf.set(a, (k = this.exprTable.of(a.c, this.terms(a))));
    return k;
  }
}

/** How an access's event is indexed: by slot of a rotating buffer, or by window of a buffer cut into equal windows. */
export interface EventIndex {
  /** the slot or window number, in the current iteration's terms */
  readonly index: Affine;
  /** the event array's length: slots, or windows */
  readonly count: number;
  /** elements per window; undefined when indexed by slot */
  readonly window?: number;
}

export interface Access {
  readonly stream: StreamName;
  readonly write: boolean;
  readonly buf: string;
  readonly instr: string;
  /** slot expression in the current iteration's terms; undefined = any slot */
  readonly slot?: Affine;
  /** element window in the current iteration's terms; undefined = anywhere in the buffer */
  readonly off?: Affine;
  readonly len: number;
  /** the index its event is recorded with, as recorded (not shifted with the loops) */
  readonly recorded?: EventIndex;
}

/** The identity of an access, for merging states: a later access with the same key replaces it. */
export interface AccessKey {
  readonly instr: string;
  readonly write: boolean;
  readonly slot: AffineKey | undefined;
  readonly off: AffineKey | undefined;
}

/** buffer -> its live accesses, by identity, in the order they were first seen */
export type State = Map<string, Map<AccessKey, Access>>;

/**
 * Windows get event indices only in buffers cut into few pieces (chunks, layers): a wait on
 * "any window" becomes one wait per window.
 */
const MAX_WINDOWS = 256;

/**
 * The event index an access records: its slot for rotating buffers, else its window number
 * when it touches an aligned window (chunk k of a stash). Waiting on index "my slot" or "my
 * window" then finds the latest access to exactly those bytes.
 */
export function accessIndex(b: Buffer, r: Ref): EventIndex | undefined {
  if (b.slots > 1) return r.slot ? { index: r.slot, count: b.slots } : undefined;
  if (r.len <= 0 || r.len === b.elems || b.elems % r.len !== 0 || b.elems / r.len > MAX_WINDOWS) return undefined;
  const terms = Object.values(r.off.t);
  if (r.off.c % r.len !== 0 || terms.some((x) => x % r.len !== 0)) return undefined;
  const t: Record<string, number> = {};
  for (const [k, x] of Object.entries(r.off.t)) t[k] = x / r.len;
  return { index: { c: r.off.c / r.len, t }, count: b.elems / r.len, window: r.len };
}

/**
 * The indices a wait on `a`'s event names: none for a plain event; the index of the bytes
 * about to be touched (`mine`) when it cuts the buffer as `a`'s record does; else every index.
 */
export function waitIndices(a: Access, mine?: EventIndex): readonly (Affine | undefined)[] {
  if (!a.recorded) return [undefined];
  if (mine && mine.window === a.recorded.window) return [mine.index];
  return Array.from({ length: a.recorded.count }, (_, c) => ({ c, t: {} }));
}

const mod = (x: number, n: number) => ((x % n) + n) % n;
const shift = (a: Affine, variable: string, by: number): Affine => ({ c: a.c + (a.t[variable] ?? 0) * by, t: a.t });

/** Whether the access's slot or window moves with loop variable `variable`. */
export const movesWith = (a: Access, variable: string): boolean => !!(a.slot?.t[variable] || a.off?.t[variable]);

/** The access as seen `by` iterations of `variable` away (slot and window moved with it). */
export const shifted = (a: Access, variable: string, by: number): Access => ({
  ...a,
  ...(a.slot ? { slot: shift(a.slot, variable, by) } : {}),
  ...(a.off ? { off: shift(a.off, variable, by) } : {}),
});

/** The access once loop `variable` is over: a slot or window that moved with it could be any. */
export const unplaced = (a: Access, variable: string): Access => ({
  ...a,
  slot: a.slot?.t[variable] ? undefined : a.slot,
  off: a.off?.t[variable] ? undefined : a.off,
});

export function cloneState(s: State): State {
  const out: State = new Map();
  for (const [buf, m] of s) out.set(buf, new Map(m));
  return out;
}

/** Adds to `into` the accesses of `from` it lacks. */
export function mergeInto(into: State, from: State): void {
  for (const [buf, m] of from) {
    let cur = into.get(buf);
    if (!cur) into.set(buf, (cur = new Map()));
    for (const [key, a] of m) if (!cur.has(key)) cur.set(key, a);
  }
}

/** Keys and relations of the accesses of one run of the pass. */
export class Accesses {
  readonly affine = new AffineKeys();
  private readonly table = new KeyTable<[instr: string, write: boolean, slot: AffineKey | undefined, off: AffineKey | undefined], AccessKey>(
    (instr, write, slot, off) => ({ instr, write, slot, off }),
  );
  /** accesses are immutable, so each one's key is computed once */
  private readonly keyOf = new WeakMap<Access, AccessKey>();

  key(a: Access): AccessKey {
    let k = this.keyOf.get(a);
    if (k === undefined) this.keyOf.set(a, (k = this.table.of(a.instr, a.write, this.affine.of(a.slot), this.affine.of(a.off))));
    return k;
  }

  /** 'no' when two slot expressions can never name the same slot, 'same' when they always do. */
  slotAlias(a: Affine | undefined, b: Affine | undefined, slots: number): 'no' | 'same' | 'maybe' {
    if (slots <= 1) return 'same';
    if (!a || !b || !this.affine.sameTerms(a, b)) return 'maybe';
    return mod(a.c - b.c, slots) === 0 ? 'same' : 'no';
  }

  /** Whether two windows of one buffer can overlap: only windows in the same loop terms are told apart. */
  mayOverlap(a: { off?: Affine; len: number }, b: { off?: Affine; len: number }): boolean {
    if (!a.off || !b.off || !this.affine.sameTerms(a.off, b.off)) return true;
    return a.off.c < b.off.c + b.len && b.off.c < a.off.c + a.len;
  }

  /**
   * Whether a new access `a` makes the live access `x` irrelevant: the same site recording the
   * same index in the same slot (a wait binds to that index's latest record anyway), or the
   * same stream touching the same bytes (it orders after them), unless `a` only reads what `x` wrote.
   */
  supersedes(a: Access, x: Access, slots: number): boolean {
    const k = this.affine;
    if (x.instr === a.instr && x.write === a.write && k.of(x.recorded?.index) === k.of(a.recorded?.index) && k.of(x.slot) === k.of(a.slot)) return true;
    return (
      x.stream === a.stream &&
      (x.write === a.write || a.write) &&
      this.slotAlias(x.slot, a.slot, slots) === 'same' &&
      !!x.slot === !!a.slot &&
      k.of(x.off) === k.of(a.off) &&
      x.len === a.len
    );
  }

  /**
   * `state` with every access that moves with loop variable `variable` replaced by `f(access)`
   * and rekeyed (two may become one); buffers with none keep their map.
   */
  moved(state: State, variable: string, f: (a: Access) => Access): State {
    const out: State = new Map();
    for (const [buf, m] of state) {
      if (![...m.values()].some((a) => movesWith(a, variable))) {
        out.set(buf, m);
        continue;
      }
      const rekeyed = new Map<AccessKey, Access>();
      for (const a of m.values()) {
        const b = movesWith(a, variable) ? f(a) : a;
        rekeyed.set(this.key(b), b);
      }
      out.set(buf, rekeyed);
    }
    return out;
  }
}
