// `fpdtc inspect DIR --measured TRACE`: the predicted step beside a measured one (the Chrome trace
// `fpdtc run --trace` writes): time per op kind, the step, and how much copying the compute stream
// hides. Both sides are judged by the same rules (schedule/span-breakdown.ts): the predicted side
// is the simulator's timeline of the whole step (not the one-layer window of trace.json), so its
// op totals count every instruction the program issues.
import { errors } from '../errors.js';
import { opClass } from '../schedule/cost.js';
import { deviceProfile } from '../schedule/devices.js';
import type { TraceFile } from '../schedule/read-trace.js';
import { simulateWindow } from '../schedule/simulate.js';
import { breakdownSpans, type StepBreakdown } from '../schedule/span-breakdown.js';
import { groupPosition, type Schedule } from '../schedule/types.js';

export interface MeasuredComparison {
  readonly rank: number;
  readonly tracePath: string;
  /** what the trace says of itself (step, date, the run's own step time) */
  readonly info: Readonly<Record<string, unknown>>;
  readonly predicted: StepBreakdown;
  readonly measured: StepBreakdown;
  /** the calibration the prediction used, as 'file (date)' */
  readonly rates: string;
}

/** The predicted whole step of `s` on its device beside the measured step of the trace's first rank. */
export function compareWithMeasured(s: Schedule, trace: TraceFile, tracePath: string): MeasuredComparison {
  const model = trace.otherData.model;
  if (typeof model === 'string' && model !== s.model) throw errors.traceOfOtherModel(tracePath, model, s.model);
  const { rank, spans } = trace.ranks[0];
  const dev = deviceProfile(s.config.device, { hostMemGiB: s.config.hostMemGiB });
  const sim = simulateWindow(s, dev, { rank: groupPosition(s, rank), spans: 'all' });
  const rates = dev.calibration ? `${dev.calibration.file} (${dev.calibration.source.date})` : `the hand-written ${dev.name} profile`;
  return { rank, tracePath, info: trace.otherData, predicted: breakdownSpans(sim.spans), measured: breakdownSpans(spans), rates };
}

const ms = (x: number): string => `${(x * 1e3).toFixed(1)} ms`;
const secs = (x: number): string => (x >= 1 ? `${x.toFixed(2)} s` : ms(x));
const ratio = (m: number, p: number): string => (p > 0 ? `${(m / p).toFixed(2)}` : '-');
const pct = (x: number): string => `${(100 * x).toFixed(0)}%`;

/** Op kinds each under this share of the measured step are summed into one row. */
const SMALL = 0.005;

function row(name: string, count: string, p: number, m: number, f: (x: number) => string = ms): string {
  return `  ${name.padEnd(24)}${count.padStart(7)}${f(p).padStart(12)}${f(m).padStart(12)}${ratio(m, p).padStart(10)}`;
}

/** The comparison as lines of text for `fpdtc inspect`. */
export function formatMeasured(c: MeasuredComparison): string[] {
  const { predicted: p, measured: m } = c;
  const step = typeof c.info.step === 'number' ? `step ${c.info.step}` : 'a step';
  const when = typeof c.info.date === 'string' ? `, ${c.info.date}` : '';
  const out = [`predicted vs measured (rank ${c.rank}; measured: ${step}${when}, ${c.tracePath}; predicted with ${c.rates})`];
  out.push(`  ${'op kind'.padEnd(24)}${'count'.padStart(7)}${'predicted'.padStart(12)}${'measured'.padStart(12)}${'meas/pred'.padStart(10)}`);
  // by class first (attention, GEMM, ...), then the op kinds, largest measured first
  const kinds = new Map<string, { count: number; p: number; m: number; cls: string }>();
  for (const [side, b] of [['p', p], ['m', m]] as const) {
    for (const o of b.ops) {
      const k = kinds.get(o.kind) ?? { count: 0, p: 0, m: 0, cls: o.kind.startsWith('copy ') ? 'copy' : opClass(o.kind) };
      k[side] += o.seconds;
      if (side === 'm' || !kinds.has(o.kind)) k.count = o.count;
      kinds.set(o.kind, k);
    }
  }
  const classes = new Map<string, { p: number; m: number }>();
  for (const k of kinds.values()) {
    const c2 = classes.get(k.cls) ?? { p: 0, m: 0 };
    c2.p += k.p;
    c2.m += k.m;
    classes.set(k.cls, c2);
  }
  for (const [cls, t] of [...classes].sort((a, b) => b[1].m - a[1].m)) out.push(row(`[${cls}]`, '', t.p, t.m));
  const sorted = [...kinds].sort((a, b) => b[1].m - a[1].m || b[1].p - a[1].p);
  const small = { n: 0, p: 0, m: 0 };
  for (const [kind, k] of sorted) {
    if (Math.max(k.m, k.p) < SMALL * m.stepSeconds) {
      small.n++;
      small.p += k.p;
      small.m += k.m;
    } else out.push(row(kind, String(k.count), k.p, k.m));
  }
  if (small.n) out.push(row(`other (${small.n} kinds)`, '', small.p, small.m));
  out.push(row('step (first to last span)', '', p.stepSeconds, m.stepSeconds, secs));
  if (typeof c.info.measuredStepSeconds === 'number') out.push(`  ${'step as the run timed it'.padEnd(31)}${''.padStart(12)}${secs(c.info.measuredStepSeconds).padStart(12)}`);
  out.push(row('compute stream busy', '', p.computeSeconds, m.computeSeconds, secs));
  out.push(row('copy streams busy', '', p.copySeconds, m.copySeconds, secs));
  out.push(row('exposed copy', '', p.exposedCopySeconds, m.exposedCopySeconds, secs));
  const hidden = (b: StepBreakdown) => (b.copySeconds > 0 ? pct(1 - b.exposedCopySeconds / b.copySeconds) : '-');
  out.push(`  ${'copies hidden'.padEnd(31)}${hidden(p).padStart(12)}${hidden(m).padStart(12)}`);
  out.push(row('exposed comm', '', p.exposedCommSeconds, m.exposedCommSeconds, secs));
  out.push('  (exposed: a copy or comm stream busy while the compute stream is idle; copy h2d and d2h overlapping count once)');
  const dropped = c.info.dropped;
  if (typeof dropped === 'number' && dropped > 0) out.push(`  the measured trace leaves out ${dropped} instructions (the program times the first ones of a step): its totals are partial`);
  return out;
}
