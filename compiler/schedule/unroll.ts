// Unrolling a structured schedule into the dynamic sequence of items one rank issues.
// Used to inspect, verify, simulate and execute a window of the program: `window` caps
// the trip count of loops by role (a capped loop runs its first iterations, or its last
// ones when it runs in reverse).
import { evalAff, type EventOp, type Instr, type Item, type Loop, type Ref, type Schedule } from './types.js';

export interface ResolvedRef {
  readonly buf: string;
  readonly slot: number;
  readonly start: number;
  readonly end: number;
}

export interface DynInstr {
  readonly kind: 'instr';
  readonly seq: number;
  readonly item: Instr;
  readonly env: Readonly<Record<string, number>>;
  readonly reads: readonly ResolvedRef[];
  readonly writes: readonly ResolvedRef[];
}

export interface DynEvent {
  readonly kind: 'record' | 'wait';
  readonly seq: number;
  readonly item: EventOp;
  readonly env: Readonly<Record<string, number>>;
  /** event name with its resolved index, e.g. `kv_ready[1]` */
  readonly key: string;
}

export type DynItem = DynInstr | DynEvent;

export interface UnrollOptions {
  rank?: number;
  window?: Partial<Record<'layer' | 'chunk' | 'kv' | 'q', number>>;
}

/**
 * The iterations [lo, hi) of a loop that a window runs: all of them, or the first `cap` (the
 * last `cap` when the loop runs in reverse) where the window caps the loop's role.
 */
export function windowRange(loop: Loop, env: Readonly<Record<string, number>>, window: UnrollOptions['window']): [number, number] {
  const from = evalAff(loop.from, env);
  const to = evalAff(loop.to, env);
  const cap = window?.[loop.role];
  if (cap === undefined || to - from <= cap) return [from, to];
  return loop.reverse ? [to - cap, to] : [from, from + cap];
}

export function resolveRef(s: Schedule, ref: Ref, env: Readonly<Record<string, number>>): ResolvedRef {
  const b = s.buffers.find((x) => x.id === ref.buf);
  if (!b) throw new Error(`reference to unknown buffer '${ref.buf}'`);
  const slot = ref.slot ? ((evalAff(ref.slot, env) % b.slots) + b.slots) % b.slots : 0;
  const start = evalAff(ref.off, env);
  return { buf: ref.buf, slot, start, end: start + ref.len };
}

export function* unroll(s: Schedule, opts: UnrollOptions = {}): Generator<DynItem> {
  const bufIndex = new Map(s.buffers.map((b) => [b.id, b]));
  let seq = 0;
  const resolve = (ref: Ref, env: Record<string, number>): ResolvedRef => {
    const b = bufIndex.get(ref.buf);
    if (!b) throw new Error(`reference to unknown buffer '${ref.buf}'`);
    const slot = ref.slot ? ((evalAff(ref.slot, env) % b.slots) + b.slots) % b.slots : 0;
    const start = evalAff(ref.off, env);
    return { buf: ref.buf, slot, start, end: start + ref.len };
  };
  function* walk(items: readonly Item[], env: Record<string, number>): Generator<DynItem> {
    for (const it of items) {
      if (it.kind === 'loop') {
        const [lo, hi] = windowRange(it, env, opts.window);
        for (let k = 0; k < hi - lo; k++) {
          const x = it.reverse ? hi - 1 - k : lo + k;
          yield* walk(it.body, { ...env, [it.var]: x });
        }
      } else if (it.kind === 'instr') {
        yield { kind: 'instr', seq: seq++, item: it, env, reads: it.reads.map((r) => resolve(r, env)), writes: it.writes.map((r) => resolve(r, env)) };
      } else {
        const idx = it.index ? evalAff(it.index, env) : undefined;
        const n = s.events[it.event];
        const key = idx === undefined ? it.event : `${it.event}[${(((idx % n) + n) % n)}]`;
        yield { kind: it.kind, seq: seq++, item: it, env, key };
      }
    }
  }
  yield* walk(s.body, { r: opts.rank ?? 0 });
}
