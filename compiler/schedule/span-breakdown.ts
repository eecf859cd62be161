// Where a step's time goes, from its spans (predicted by the simulator or read from a measured
// trace): time per op kind on its stream, and how much of the copies the compute stream hides.
//
// Exposed copy time is the time during which a copy stream (h2d or d2h) is busy and the compute
// stream is not: the measure of (union of copy spans) minus (union of compute spans). It is a
// property of the timeline alone, so the predicted and the measured step are judged by the same
// rule. (The simulator's own `exposedCopySeconds` is a different figure: the compute stream's
// waits that a copy caused.)
import type { Span } from './simulate.js';
import type { StreamName } from './types.js';

export interface OpTime {
  /** op name; copies are split by stream ('copy h2d', 'copy d2h') since the two links are separate */
  readonly kind: string;
  readonly stream: StreamName;
  readonly count: number;
  /** summed span durations, seconds */
  readonly seconds: number;
}

export interface StepBreakdown {
  /** first start to last end over every stream */
  readonly stepSeconds: number;
  /** time the compute stream runs something */
  readonly computeSeconds: number;
  /** time some copy stream runs a copy (both directions at once count once) */
  readonly copySeconds: number;
  /** copy time while compute is idle */
  readonly exposedCopySeconds: number;
  /** time the comm stream runs a collective while compute is idle */
  readonly exposedCommSeconds: number;
  readonly ops: readonly OpTime[];
}

type Interval = readonly [number, number];

/** Sorted, disjoint intervals covering the same time as `xs`. */
function union(xs: Interval[]): Interval[] {
  const sorted = [...xs].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const top = out.at(-1);
    if (top && a <= top[1]) top[1] = Math.max(top[1], b);
    else out.push([a, b]);
  }
  return out;
}

const measure = (xs: readonly Interval[]): number => xs.reduce((t, [a, b]) => t + (b - a), 0);

/** The measure of `a` minus `b`, both sorted and disjoint: a two-pointer sweep. */
function measureOutside(a: readonly Interval[], b: readonly Interval[]): number {
  let t = 0;
  let j = 0;
  for (const [s, e] of a) {
    let at = s;
    while (j < b.length && b[j][1] <= at) j++;
    for (let k = j; k < b.length && b[k][0] < e; k++) {
      if (b[k][0] > at) t += b[k][0] - at;
      at = Math.max(at, b[k][1]);
      if (at >= e) break;
    }
    if (at < e) t += e - at;
  }
  return t;
}

export const opKindOf = (s: Pick<Span, 'op' | 'stream'>): string => (s.op === 'copy' ? `copy ${s.stream}` : s.op);

/** Time per op kind and copy exposure of one rank's spans. */
export function breakdownSpans(spans: readonly Span[]): StepBreakdown {
  const byKind = new Map<string, { stream: StreamName; count: number; seconds: number }>();
  const compute: Interval[] = [];
  const copy: Interval[] = [];
  const comm: Interval[] = [];
  let first = Infinity;
  let last = -Infinity;
  for (const s of spans) {
    const kind = opKindOf(s);
    const k = byKind.get(kind) ?? { stream: s.stream, count: 0, seconds: 0 };
    k.count++;
    k.seconds += s.end - s.start;
    byKind.set(kind, k);
    first = Math.min(first, s.start);
    last = Math.max(last, s.end);
    if (s.end <= s.start) continue;
    if (s.stream === 'compute') compute.push([s.start, s.end]);
    else if (s.stream === 'comm') comm.push([s.start, s.end]);
    else copy.push([s.start, s.end]);
  }
  const c = union(compute);
  const cp = union(copy);
  const ops = [...byKind].map(([kind, k]) => ({ kind, ...k })).sort((a, b) => b.seconds - a.seconds || a.kind.localeCompare(b.kind));
  return {
    stepSeconds: spans.length ? last - first : 0,
    computeSeconds: measure(c),
    copySeconds: measure(cp),
    exposedCopySeconds: measureOutside(cp, c),
    exposedCommSeconds: measureOutside(union(comm), c),
    ops,
  };
}
