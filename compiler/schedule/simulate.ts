// Stream simulator: predicts one rank's step time from the schedule and the cost model.
//
// Semantics (those of CUDA streams and events, as in types.ts): each stream runs its items in
// program order; an instruction starts when its stream is free and every wait issued before it
// on that stream is satisfied; `record E` completes when the stream's earlier work (instructions
// and waits) has; `wait E` holds the stream until the most recent `record E` issued before it in
// program order has completed (no record yet: no-op). The host never blocks inside a step, so
// every item's times depend only on items before it in program order: one pass in program order
// computes them all, with no event queue.
//
// Windows and extrapolation: a 70B model at 4M tokens unrolls to ~10^6 items, so we never
// simulate every layer. Every layer loop (role 'layer', forward and backward alike) is capped
// to 2 layers; the compute-stream time, busy and exposed times of each loop's last simulated
// iteration stand for each of its iterations not simulated:
//   T = T(window) + Σ_loops (iterations not run) * (cost of the loop's last iteration)
// exact when a loop's iterations after its first cost the same (steady state), while the
// prologue (embedding, first gathers) and epilogue (loss, optimizer) are counted once. Layer
// loops may differ: layers that keep their attention skip the recompute. The trace spans come
// from the 2-layer window.
//
// Packed documents: given the window's document layout (`documents`, schedule/document-pricing.ts)
// the instructions a block whose chunks share no document reads are not issued, and packed
// attention blocks do only their documents' share of the flops. Without it, every block is priced
// in full: as one document spanning the window, an upper bound for any layout.
import { instrSeconds } from './cost.js';
import type { DeviceProfile } from './devices.js';
import type { DocumentPricing } from './document-pricing.js';
import { opKindOf } from './span-breakdown.js';
import { STREAMS, evalAff, groupsOf, type EventOp, type Item, type Instr, type Loop, type Schedule, type StreamName } from './types.js';
import { windowRange, type UnrollOptions } from './unroll.js';

export interface Span {
  readonly stream: StreamName;
  readonly op: string;
  readonly id: string;
  readonly start: number;
  readonly end: number;
  /** loop indices by role, when the instruction sits in such a loop */
  readonly layer?: number;
  readonly chunk?: number;
  readonly kv?: number;
  readonly q?: number;
}

/** Sizes for MFU by the ANCHORS.md convention. */
export interface ModelSize {
  readonly params: number;
  readonly layers: number;
  /** global tokens per step */
  readonly seq: number;
  readonly hidden: number;
}

/** Instructions of one op kind (copies by stream: 'copy h2d') and the time they keep their stream busy. */
export interface OpTotal {
  readonly count: number;
  readonly seconds: number;
}

/** What one simulated window gives. Times in seconds. */
export interface WindowResult {
  readonly stepSeconds: number;
  readonly busySeconds: Readonly<Record<StreamName, number>>;
  /** per op kind */
  readonly ops: Readonly<Record<string, OpTotal>>;
  /** instructions not issued because their chunks share no document (with `documents` only) */
  readonly skipped: number;
  /** time the compute stream sits idle because of copies (h2d/d2h) or collectives */
  readonly exposedCopySeconds: number;
  readonly exposedCommSeconds: number;
  readonly items: number;
  readonly spans: readonly Span[];
  /** per layer loop: iterations not simulated and what its last simulated iteration cost */
  readonly layerLoops: readonly LayerLoopCost[];
}

export interface LayerLoopCost {
  readonly missing: number;
  readonly step: number;
  readonly busy: Readonly<Record<StreamName, number>>;
  readonly ops: Readonly<Record<string, OpTotal>>;
  readonly skipped: number;
  readonly copy: number;
  readonly comm: number;
}

export interface Timeline extends Omit<WindowResult, 'spans' | 'items' | 'layerLoops'> {
  readonly utilization: Readonly<Record<StreamName, number>>;
  readonly spans: readonly Span[];
  /** layers the spans cover, and how the step was obtained */
  readonly windowLayers: number;
  readonly extrapolated: boolean;
  readonly simulatedItems: number;
  readonly modelFlops?: number;
  readonly mfu?: number;
}

export interface SimulateOptions {
  readonly rank?: number;
  /** caps for chunk/kv/q loops (only layers are extrapolated; other caps shorten the step) */
  readonly window?: UnrollOptions['window'];
  readonly model?: ModelSize;
  /** keep spans for the trace (default true) */
  readonly spans?: boolean;
  /** packed programs: the window's document layout; without it every block is priced in full */
  readonly documents?: DocumentPricing;
}

/** 6 * params * tokens + 6 * layers * S^2 * hidden: the ANCHORS.md convention for model FLOPs. */
export const modelFlopsPerStep = (m: ModelSize): number => 6 * m.params * m.seq + 6 * m.layers * m.seq * m.seq * m.hidden;


const zeroByStream = (): Record<StreamName, number> => ({ compute: 0, h2d: 0, d2h: 0, comm: 0 });
const otherCopyStream: Partial<Record<StreamName, StreamName>> = { h2d: 'd2h', d2h: 'h2d' };

/** What the simulator needs of one dynamic item; `env` is live (copy what you keep). */
type Visit = (item: Instr | EventOp, env: Readonly<Record<string, number>>, event: number, byRole: Readonly<Record<string, number>>) => void;

/**
 * Walks the window of the program in issue order, like `unroll` (same caps), but with one
 * mutable environment, no resolved byte ranges, and events as dense integer ids: the
 * simulator visits ~10^6 items per compile, where generator nesting would dominate.
 */
/** Called at the start of each iteration `k` (0-based, of those run) of a layer loop, and with k = -1 after it. */
type OnLayer = (loop: Loop, k: number, tripCount: number) => void;

export function walkWindow(s: Schedule, opts: UnrollOptions, visit: Visit, onLayer?: OnLayer): void {
  const base = new Map<string, number>();
  let nEvents = 0;
  for (const [name, n] of Object.entries(s.events)) {
    base.set(name, nEvents);
    nEvents += n;
  }
  const env: Record<string, number> = { r: opts.rank ?? 0 };
  /** the index of the innermost enclosing loop of each role (spans carry them) */
  const byRole: Record<string, number> = {};
  const walk = (items: readonly Item[]): void => {
    for (const it of items) {
      if (it.kind === 'loop') {
        const [lo, hi] = windowRange(it, env, opts.window);
        const trips = evalAff(it.to, env) - evalAff(it.from, env);
        const saved = env[it.var];
        const savedRole = byRole[it.role];
        const layer = onLayer && it.role === 'layer';
        for (let k = 0; k < hi - lo; k++) {
          env[it.var] = it.reverse ? hi - 1 - k : lo + k;
          byRole[it.role] = env[it.var];
          if (layer) onLayer(it, k, trips);
          walk(it.body);
        }
        if (layer) onLayer(it, -1, trips);
        if (savedRole === undefined) delete byRole[it.role];
        else byRole[it.role] = savedRole;
        if (saved === undefined) delete env[it.var];
        else env[it.var] = saved;
      } else if (it.kind === 'instr') {
        visit(it, env, -1, byRole);
      } else {
        const n = s.events[it.event];
        const b = base.get(it.event);
        if (n === undefined || b === undefined) throw new Error(`${it.kind} of undeclared event '${it.event}'`);
        const idx = it.index ? evalAff(it.index, env) : 0;
        visit(it, env, b + (((idx % n) + n) % n), byRole);
      }
    }
  };
  walk(s.body);
}

/** Simulates the window `opts` selects, in one pass over the items in program order. */
export function simulateWindow(s: Schedule, dev: DeviceProfile, opts: UnrollOptions & { spans?: boolean | 'all'; documents?: DocumentPricing } = {}): WindowResult {
  const keepSpans = opts.spans !== false;
  // 'all': every span of the window (a whole step to compare with a measured trace), not one layer each way
  const allSpans = opts.spans === 'all';
  const durations = new Map<Instr, number>();
  const docs = opts.documents;
  // packed blocks under a layout: by their share of the full flops
  const shared = new Map<Instr, Map<number, number>>();
  const ops: Record<string, { count: number; seconds: number }> = {};
  let skipped = 0;
  const free = zeroByStream(); // when the stream's last instruction ends
  const gate = zeroByStream(); // the latest time a wait holds the stream until
  const gateCause: Record<StreamName, StreamName> = { compute: 'compute', h2d: 'h2d', d2h: 'd2h', comm: 'comm' };
  const last: Record<StreamName, [number, number]> = { compute: [0, 0], h2d: [0, 0], d2h: [0, 0], comm: [0, 0] };
  const busy = zeroByStream();
  const nEvents = Object.values(s.events).reduce((a, b) => a + b, 0);
  const recTime = new Float64Array(nEvents).fill(-1); // -1: not recorded yet
  const recCause: StreamName[] = new Array(nEvents).fill('compute');
  const spans: Span[] = [];
  let exposedCopy = 0;
  let exposedComm = 0;
  let items = 0;
  const blame = (cause: StreamName, gap: number): void => {
    if (cause === 'comm') exposedComm += gap;
    else if (cause === 'h2d' || cause === 'd2h') exposedCopy += gap;
  };

  const marks = new Map<Loop, { at: Snapshot; trips: number; run: number; last?: Snapshot }>();
  const snapshot = (): Snapshot => ({
    t: free.compute,
    busy: { ...busy },
    copy: exposedCopy,
    comm: exposedComm,
    ops: Object.fromEntries(Object.entries(ops).map(([k, o]) => [k, { ...o }])),
    skipped,
  });
  // spans are kept outside layer loops and for the first iteration of the first forward and the
  // first backward layer loop: one layer each way is the trace's window
  let layerK = -1;
  let traced = false;
  const tracedKinds = new Set<boolean>();
  const onLayer: OnLayer = (loop, k, trips) => {
    layerK = k;
    if (k === 0) {
      traced = !tracedKinds.has(!!loop.reverse);
      tracedKinds.add(!!loop.reverse);
    }
    if (k >= 0) {
      marks.set(loop, { at: snapshot(), trips, run: k + 1 });
      return;
    }
    const m = marks.get(loop);
    if (m) m.last = snapshot(); // a loop of no iterations leaves no mark
  };
  walkWindow(s, opts, (it, env, ev, byRole) => {
    items++;
    const st = it.stream;
    if (it.kind !== 'instr') {
      if (it.kind === 'record') {
        const gated = gate[st] > free[st];
        recTime[ev] = gated ? gate[st] : free[st];
        recCause[ev] = gated ? gateCause[st] : st;
      } else if (recTime[ev] > gate[st]) {
        gate[st] = recTime[ev];
        gateCause[st] = recCause[ev];
      }
      return;
    }
    if (docs && !docs.runs(it, env)) {
      // not issued: the stream moves on (the waits before it still hold it)
      skipped++;
      return;
    }
    const start = Math.max(free[st], gate[st]);
    const share = docs ? docs.flopsShare(it, env) : 1;
    let dur = share === 1 ? durations.get(it) : shared.get(it)?.get(share);
    if (dur === undefined) {
      dur = instrSeconds(share === 1 ? it : { ...it, flops: it.flops * share }, dev, { world: s.world });
      if (share === 1) durations.set(it, dur);
      else shared.set(it, (shared.get(it) ?? new Map<number, number>()).set(share, dur));
    }
    const other = otherCopyStream[st];
    if (other && it.op === 'copy' && dur > 0) {
      // the opposite direction's latest copy, if it overlaps this one, shares the PCIe link
      const [a, b] = last[other];
      const overlap = Math.max(0, Math.min(b, start + dur) - Math.max(a, start));
      if (overlap > 0) dur = instrSeconds(it, dev, { world: s.world, bothWays: overlap / dur });
    }
    if (st === 'compute' && start > free.compute && gate.compute > free.compute) blame(gateCause.compute, start - free.compute);
    const end = start + dur;
    // an instruction of no time (a collective over one rank) leaves the stream's free time, so a
    // record after it still blames what the stream waited for
    if (dur > 0) {
      free[st] = end;
      last[st] = [start, end];
    }
    busy[st] += dur;
    const kind = opKindOf(it);
    const o = (ops[kind] ??= { count: 0, seconds: 0 });
    o.count++;
    o.seconds += dur;
    if (keepSpans && (allSpans || layerK < 0 || (layerK === 0 && traced))) spans.push({ stream: st, op: it.op, id: it.id, start, end, ...byRole });
  }, onLayer);
  const stepSeconds = Math.max(...STREAMS.map((x) => Math.max(free[x], gate[x])));
  // compute done, copies or collectives still running: the tail is exposed too
  const tail = stepSeconds - free.compute;
  if (tail > 0) {
    const lastStream = STREAMS.reduce((m, x) => (free[x] > free[m] ? x : m), 'compute' as StreamName);
    blame(lastStream, tail);
  }
  // each layer loop's last simulated iteration: its cost, and how many iterations were not run
  const layerLoops = [...marks.values()].map((m) => {
    const a = m.at;
    const b = m.last!;
    const busyD = zeroByStream();
    for (const x of STREAMS) busyD[x] = b.busy[x] - a.busy[x];
    const opsD: Record<string, OpTotal> = {};
    for (const [k, o] of Object.entries(b.ops)) {
      const before = a.ops[k] ?? { count: 0, seconds: 0 };
      if (o.count > before.count) opsD[k] = { count: o.count - before.count, seconds: o.seconds - before.seconds };
    }
    return { missing: m.trips - m.run, step: b.t - a.t, busy: busyD, copy: b.copy - a.copy, comm: b.comm - a.comm, ops: opsD, skipped: b.skipped - a.skipped };
  });
  return { stepSeconds, busySeconds: busy, ops, skipped, exposedCopySeconds: exposedCopy, exposedCommSeconds: exposedComm, items, spans, layerLoops };
}

interface Snapshot {
  readonly t: number;
  readonly busy: Record<StreamName, number>;
  readonly copy: number;
  readonly comm: number;
  readonly ops: Readonly<Record<string, OpTotal>>;
  readonly skipped: number;
}


/**
 * Predicted step of one rank: step time, busy and exposed time per stream, spans of a 2-layer
 * window, and MFU when `model` is given (model FLOPs of the dp sequences / world ranks / (step * peak)).
 */
export function simulateStreams(s: Schedule, dev: DeviceProfile, opts: SimulateOptions = {}): Timeline {
  const base = { rank: opts.rank, window: opts.window ?? {}, documents: opts.documents };
  const L = s.layers;
  let w: WindowResult;
  let extrapolated = false;
  let simulatedItems: number;
  let windowLayers = L;
  if (L <= 2 || opts.window?.layer !== undefined) {
    w = simulateWindow(s, dev, { ...base, spans: opts.spans });
    simulatedItems = w.items;
    windowLayers = Math.min(L, opts.window?.layer ?? L);
  } else {
    // Two layers of every layer loop, then each loop's last (steady) iteration stands for the
    // iterations not simulated: layer loops may differ (layers that keep attention skip recompute).
    const w2 = simulateWindow(s, dev, { ...base, window: { ...base.window, layer: 2 }, spans: opts.spans });
    const busySeconds = { ...w2.busySeconds };
    let step = w2.stepSeconds;
    let copy = w2.exposedCopySeconds;
    let comm = w2.exposedCommSeconds;
    let skipped = w2.skipped;
    const ops: Record<string, OpTotal> = { ...w2.ops };
    for (const l of w2.layerLoops) {
      step += l.missing * l.step;
      copy += l.missing * l.copy;
      comm += l.missing * l.comm;
      skipped += l.missing * l.skipped;
      for (const x of STREAMS) busySeconds[x] += l.missing * l.busy[x];
      for (const [k, o] of Object.entries(l.ops)) {
        const had = ops[k] ?? { count: 0, seconds: 0 };
        ops[k] = { count: had.count + l.missing * o.count, seconds: had.seconds + l.missing * o.seconds };
      }
    }
    w = { ...w2, stepSeconds: step, busySeconds, ops, skipped, exposedCopySeconds: copy, exposedCommSeconds: comm };
    extrapolated = true;
    simulatedItems = w.items;
    windowLayers = 2;
  }
  const utilization = zeroByStream();
  for (const x of STREAMS) utilization[x] = w.stepSeconds > 0 ? w.busySeconds[x] / w.stepSeconds : 0;
  const { items: _items, layerLoops: _loops, ...rest } = w;
  const out: Timeline = { ...rest, utilization, windowLayers, extrapolated, simulatedItems };
  if (!opts.model) return out;
  // a step trains one sequence per dp group, over the whole world of ranks
  const modelFlops = modelFlopsPerStep(opts.model) * groupsOf(s).dp;
  const mfu = w.stepSeconds > 0 ? modelFlops / s.world / (w.stepSeconds * dev.peakFlops) : 0;
  return { ...out, modelFlops, mfu };
}
