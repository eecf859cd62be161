// `fpdtc inspect out/<model>`: what a compile decided, for people: memory per rank, one layer's
// forward and backward schedule, and the predicted timeline. Reads report.json and
// schedule.json; when the report lacks the memory plan or timeline, computes them here.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../errors.js';
import { compareDocuments, formatDocuments, readWindowLayout } from './inspect-documents.js';
import { compareWithMeasured, formatMeasured } from './inspect-measured.js';
import type { TrainConfig } from '../ir/types.js';
import { deviceProfile } from '../schedule/devices.js';
import { readTrace } from '../schedule/read-trace.js';
import type { Report } from '../report.js';
import { readScheduleJson, scheduleFromJson } from '../schedule/export-json.js';
import { checkReportAgainstSchedule, checkReportDoc, parseJsonText, readOutFile } from '../schedule/json.js';
import { formatBytes, listSchedule } from '../schedule/listing.js';
import type { ArenaSummary } from '../schedule/memory.js';
import { attentionPricing } from '../schedule/document-pricing.js';
import { summarizeSchedule, type MemorySummary, type TimelineSummary } from '../schedule/summary.js';
import { STREAMS, type Schedule } from '../schedule/types.js';

export function register(program: Command): void {
  program
    .command('inspect')
    .description('print the memory plan, one layer of the schedule and the predicted step of a compiled model')
    .argument('<dir>', 'the output folder of a compile, e.g. out/llama70b')
    .option('--events', 'show the event records and waits in the listing')
    .option('--measured <trace>', "compare with a measured step: the Chrome trace 'fpdtc run --trace' wrote (.json or .json.gz): time per op kind, the step, exposed copy time")
    .option('--documents <file>', "packed programs: price attention for the documents of the token stream's first window (start offsets, ascending, as text or a .npy, as 'fpdtc run --documents' takes them) beside the full-causal prediction")
    .action(async (dir: string, o: { events?: boolean; measured?: string; documents?: string }) => {
      const x = loadInspection(dir);
      const layout = o.documents === undefined ? undefined : await readWindowLayout(dir, x.schedule, o.documents);
      const documents = layout ? formatDocuments(compareDocuments(x.schedule, layout, o.documents!)) : undefined;
      const measured = o.measured ? formatMeasured(compareWithMeasured(x.schedule, readTrace(o.measured), o.measured)) : undefined;
      process.stdout.write(formatInspection(x, { events: o.events === true, measured, documents }));
    });
}

interface ReportFields {
  model?: string;
  params?: number;
  tokens?: number;
  layers?: number;
  hidden?: number;
  config?: TrainConfig;
  memory?: MemorySummary;
  timeline?: TimelineSummary;
}

export interface Inspection {
  readonly dir: string;
  readonly schedule: Schedule;
  readonly memory: MemorySummary;
  readonly timeline: TimelineSummary;
}

function readJson(path: string, what: string): unknown {
  if (!existsSync(path)) throw new UserError(`no ${what} at ${path}; run 'fpdtc compile' first`);
  return parseJsonText(readOutFile(path), path);
}

export function loadInspection(dir: string): Inspection {
  const reportPath = join(dir, 'report.json');
  const report = checkReportDoc(readJson(reportPath, 'report.json'), reportPath) as ReportFields & Report;
  const schedPath = join(dir, 'schedule.json');
  if (!existsSync(schedPath)) throw new UserError(`no schedule.json in ${dir}: this compile produced no schedule; compile again with a version that lowers to a schedule`);
  const doc = readScheduleJson(readOutFile(schedPath), schedPath);
  checkReportAgainstSchedule(report, doc, reportPath);
  const schedule = scheduleFromJson(doc);
  if (report.memory && report.timeline) return { dir, schedule, memory: report.memory, timeline: report.timeline };
  const config = report.config ?? schedule.config;
  const dev = deviceProfile(config.device, { hostMemGiB: config.hostMemGiB });
  const model =
    report.params !== undefined && report.hidden !== undefined
      ? { params: report.params, layers: report.layers ?? schedule.layers, seq: report.tokens ?? config.seq, hidden: report.hidden }
      : undefined;
  const sum = summarizeSchedule(schedule, dev, model);
  return { dir, schedule, memory: report.memory ?? sum.memory, timeline: report.timeline ?? sum.timeline };
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const secs = (x: number): string => (x >= 1 ? `${x.toFixed(2)} s` : `${(x * 1e3).toFixed(2)} ms`);

function memoryTable(m: MemorySummary): string[] {
  const rows: [string, (a: ArenaSummary) => number][] = [
    ['params', (a) => a.breakdown.params],
    ['grads', (a) => a.breakdown.grads],
    ['optimizer', (a) => a.breakdown.optimizer],
    ['checkpoints', (a) => a.breakdown.checkpoints],
    ['working set', (a) => a.breakdown.working],
    ['collectives', (a) => a.breakdown.comm ?? 0],
    ['total (arena)', (a) => a.size],
    ['peak live', (a) => a.peakLive],
    ['budget', (a) => a.budget],
  ];
  const out = [`memory per rank (${m.device})`.padEnd(20) + 'GPU'.padStart(14) + 'pinned host'.padStart(14)];
  for (const [name, f] of rows) out.push(`  ${name.padEnd(18)}${formatBytes(f(m.gpu)).padStart(14)}${formatBytes(f(m.host)).padStart(14)}`);
  out.push(m.fits ? `  fits: GPU ${pct((m.gpu.need ?? m.gpu.size) / m.gpu.budget)} of budget, host ${pct(m.host.size / m.host.budget)}` : `  does not fit: ${m.advice}`);
  return out;
}

function timelineLines(t: TimelineSummary, s: Schedule): string[] {
  const how = t.extrapolated ? `simulated ${t.windowLayers} of ${t.layers} layers, extrapolated per layer` : `simulated all ${t.layers} layers`;
  const out = [`timeline per rank (predicted; ${how}; ${t.simulatedItems} items)`, `  step time       ${secs(t.stepSeconds)}`];
  if (s.config.packed) out.push(`  attention       ${attentionPricing(s)}`);
  if (t.mfu !== undefined) out.push(`  MFU             ${pct(t.mfu)} (6*params*tokens + 6*layers*S^2*hidden over ${(t.peakFlops / 1e12).toFixed(0)} TFLOP/s per GPU)`);
  out.push(`  exposed copy    ${secs(t.exposedCopySeconds)} (compute waiting on h2d/d2h)`);
  out.push(`  exposed comm    ${secs(t.exposedCommSeconds)} (compute waiting on collectives)`);
  out.push(`  streams busy    ${STREAMS.map((s) => `${s} ${pct(t.utilization[s])}`).join(', ')}`);
  return out;
}

/** The whole printout of `fpdtc inspect`; `documents`, `measured`: the lines of a priced document layout, of a comparison with a measured step. */
export function formatInspection(x: Inspection, opts: { events?: boolean; measured?: readonly string[]; documents?: readonly string[] } = {}): string {
  const s = x.schedule;
  const c = s.config;
  const head = `${s.model}: ${s.world} rank${s.world === 1 ? '' : 's'}, ${s.layers} layers, ${c.seq} tokens in ${s.chunks} chunks of ${s.chunk}, offload ${c.offload ? 'on' : 'off'}, checkpoints ${c.checkpoint}, ZeRO-${c.zero}, ${c.device}`;
  return [
    head,
    '',
    ...memoryTable(x.memory),
    '',
    ...timelineLines(x.timeline, s),
    '',
    ...(opts.documents ? [...opts.documents, ''] : []),
    ...(opts.measured ? [...opts.measured, ''] : []),
    `one layer, forward and backward (per rank${opts.events ? '' : '; --events shows the event records and waits'}):`,
    listSchedule(s, { layersOnly: true, header: false, events: opts.events ?? true }).trimEnd(),
    '',
  ].join('\n');
}
