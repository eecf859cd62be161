// The timeline the page draws: the simulator's spans of its window (the prologue, one forward
// and one backward layer, the epilogue; see simulate.ts), each tied to its instruction's table
// row, the loop iterations they fall in, and the compute stream's gaps with what held it.
// Layer loops are never unrolled: the simulator runs a window of them and extrapolates, and the
// bands carry the trip counts so the page can say which iteration stands for how many.
import type { DeviceProfile } from '../schedule/devices.js';
import { simulateWindow, walkWindow, type Span } from '../schedule/simulate.js';
import type { UnrollOptions } from '../schedule/unroll.js';
import { STREAMS, type Ref, type Schedule, type StreamName } from '../schedule/types.js';
import type { ProgramIndex } from './program-index.js';

/** Layers of each layer loop the simulator runs before extrapolating (as simulateStreams does). */
export const SIMULATED_LAYERS = 2;

export interface InstrRow {
  readonly id: string;
  readonly op: string;
  readonly stream: StreamName;
  /** `buf[len]` of each ref */
  readonly reads: readonly string[];
  readonly writes: readonly string[];
  readonly bytes: number;
  readonly flops: number;
  readonly waits: readonly string[];
  readonly records: readonly string[];
  /** enclosing loops as `role var`, outermost first */
  readonly loops: readonly string[];
}

/** One drawn iteration of a layer or chunk loop. */
export interface LoopBand {
  readonly loop: string;
  readonly role: 'layer' | 'chunk';
  readonly index: number;
  readonly trips: number;
  readonly start: number;
  readonly end: number;
  /** layer loops: iterations simulated, and the time (µs) each one not simulated is counted as */
  readonly simulated?: number;
  readonly extrapolatedEach?: number;
  readonly reverse?: boolean;
}

export interface ExposedGap {
  readonly start: number;
  readonly end: number;
  readonly cause: 'copy' | 'comm';
}

/** A stretch of the window the simulator ran without keeping spans: layer iterations not drawn. */
export interface HiddenStretch {
  readonly start: number;
  readonly end: number;
  readonly layers: number;
}

export interface TimelineData {
  readonly streams: readonly StreamName[];
  readonly instrs: readonly InstrRow[];
  /** flat, SPAN_FIELDS per span: instr row, stream, start, end (µs), layer, chunk, kv, q (-1: none) */
  readonly spans: readonly number[];
  readonly bands: readonly LoopBand[];
  readonly exposed: readonly ExposedGap[];
  readonly hidden: readonly HiddenStretch[];
  /** µs: where the drawn window ends */
  readonly windowEnd: number;
  readonly extrapolated: boolean;
  readonly layers: number;
  readonly simulatedLayers: number;
}

export const SPAN_FIELDS = 8;
const US = 1e6;
/** µs to 1 ns: the page needs no finer, and the file stays small */
const round = (x: number): number => Math.round(x * US * 1e3) / 1e3;

const refText = (r: Ref): string => `${r.buf}[${r.len}]`;

function instrRows(index: ProgramIndex): { rows: InstrRow[]; rowOf: Map<string, number> } {
  const roleOf = new Map(index.loops.map((l) => [l.id, `${l.role} ${l.var}`]));
  const rows = index.instrs.map(({ instr: i, waits, records, loops }) => ({
    id: i.id,
    op: i.op,
    stream: i.stream,
    reads: i.reads.map(refText),
    writes: i.writes.map(refText),
    bytes: i.bytes,
    flops: i.flops,
    waits,
    records,
    loops: loops.map((l) => roleOf.get(l) ?? l),
  }));
  return { rows, rowOf: new Map(rows.map((r, k) => [r.id, k])) };
}

/** Loop iterations of role layer and chunk that the spans fall in, each as its time band. */
function loopBands(spans: readonly Span[], index: ProgramIndex, layerCosts: readonly number[]): LoopBand[] {
  const loops = new Map(index.loops.map((l) => [l.id, l]));
  const layerLoops = index.loops.filter((l) => l.role === 'layer' && l.trips > 0).sort((a, b) => a.first - b.first);
  const bands = new Map<string, { loop: string; role: 'layer' | 'chunk'; index: number; start: number; end: number }>();
  for (const s of spans) {
    const info = index.byId.get(s.id);
    if (!info) continue;
    for (const id of info.loops) {
      const l = loops.get(id);
      if (!l || (l.role !== 'layer' && l.role !== 'chunk')) continue;
      const value = s[l.role];
      if (value === undefined) continue;
      const key = `${id}#${value}`;
      const b = bands.get(key);
      if (b) {
        b.start = Math.min(b.start, s.start);
        b.end = Math.max(b.end, s.end);
      } else bands.set(key, { loop: id, role: l.role, index: value, start: s.start, end: s.end });
    }
  }
  return [...bands.values()].map((b) => {
    const l = loops.get(b.loop)!;
    const band: LoopBand = { ...b, start: round(b.start), end: round(b.end), trips: l.trips, reverse: l.reverse || undefined };
    if (b.role !== 'layer') return band;
    const k = layerLoops.indexOf(l);
    return { ...band, simulated: Math.min(l.trips, SIMULATED_LAYERS), extrapolatedEach: k >= 0 && layerCosts[k] !== undefined ? round(layerCosts[k]) : undefined };
  });
}

/**
 * Gaps in the compute stream that a copy or collective ends: the compute stream waited on it.
 * The simulator blames the stream whose record gated the wait; the stream whose span ends right
 * where compute resumes is that stream in every schedule we emit.
 */
export function exposedGaps(spans: readonly Span[], hidden: readonly HiddenStretch[] = []): ExposedGap[] {
  const compute = spans.filter((s) => s.stream === 'compute').sort((a, b) => a.start - b.start);
  const others = spans.filter((s) => s.stream !== 'compute').sort((a, b) => a.end - b.end);
  const ends = others.map((s) => s.end);
  const out: ExposedGap[] = [];
  const eps = 1e-12;
  let free = 0;
  for (const c of compute) {
    if (c.start > free + eps) {
      // the last other span to end at or before compute resumed
      let lo = 0;
      let hi = ends.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ends[mid] <= c.start + eps) lo = mid + 1;
        else hi = mid;
      }
      const by = others[lo - 1];
      const inHidden = hidden.some((h) => h.start < c.start * US && h.end > free * US);
      if (by && by.end > free + eps && !inHidden) out.push({ start: round(free), end: round(c.start), cause: by.stream === 'comm' ? 'comm' : 'copy' });
    }
    free = Math.max(free, c.end);
  }
  return out;
}

/**
 * Where the simulator ran layer iterations whose spans it does not keep (every iteration but the
 * first of the first forward and the first backward layer loop; see simulate.ts). The same walk
 * in the same order tells kept from not kept, so each run of unkept instructions lies between
 * the kept spans around it.
 */
export function hiddenStretches(s: Schedule, spans: readonly Span[], window: UnrollOptions['window'], endSeconds: number): HiddenStretch[] {
  const out: HiddenStretch[] = [];
  let layerK = -1;
  let traced = false;
  const tracedKinds = new Set<boolean>();
  let kept = 0;
  let keptEnd = 0;
  let hiddenInstrs = 0;
  let hiddenLayers = 0;
  walkWindow(
    s,
    { window },
    (it) => {
      if (it.kind !== 'instr') return;
      const keep = layerK < 0 || (layerK === 0 && traced);
      if (!keep) {
        hiddenInstrs++;
        return;
      }
      if (hiddenInstrs > 0) {
        const after = spans[kept]?.start ?? keptEnd;
        if (after > keptEnd) out.push({ start: round(keptEnd), end: round(after), layers: hiddenLayers });
        hiddenInstrs = 0;
        hiddenLayers = 0;
      }
      keptEnd = Math.max(keptEnd, spans[kept]?.end ?? 0);
      kept++;
    },
    (loop, k) => {
      layerK = k;
      if (k === 0) {
        traced = !tracedKinds.has(!!loop.reverse);
        tracedKinds.add(!!loop.reverse);
      }
      if (k >= 0 && !(k === 0 && traced)) hiddenLayers++;
    },
  );
  // unkept iterations at the very end run until the window does
  if (hiddenInstrs > 0 && endSeconds > keptEnd) out.push({ start: round(keptEnd), end: round(endSeconds), layers: hiddenLayers });
  return out;
}

export function timelineData(s: Schedule, dev: DeviceProfile, index: ProgramIndex): TimelineData {
  const extrapolated = s.layers > SIMULATED_LAYERS;
  const window = extrapolated ? { layer: SIMULATED_LAYERS } : {};
  const w = simulateWindow(s, dev, { window });
  const hidden = hiddenStretches(s, w.spans, window, w.stepSeconds);
  const { rows, rowOf } = instrRows(index);
  const spans: number[] = [];
  for (const sp of w.spans) {
    const row = rowOf.get(sp.id) ?? -1;
    spans.push(row, STREAMS.indexOf(sp.stream), round(sp.start), round(sp.end), sp.layer ?? -1, sp.chunk ?? -1, sp.kv ?? -1, sp.q ?? -1);
  }
  // the window's own step (simulateWindow does not extrapolate)
  const windowEnd = w.stepSeconds;
  return {
    streams: [...STREAMS],
    instrs: rows,
    spans,
    bands: loopBands(w.spans, index, w.layerLoops.map((l) => l.step)),
    exposed: exposedGaps(w.spans, hidden),
    hidden,
    windowEnd: round(windowEnd),
    extrapolated,
    layers: s.layers,
    simulatedLayers: extrapolated ? SIMULATED_LAYERS : s.layers,
  };
}
