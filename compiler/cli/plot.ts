// `fpdtc plot FILE [--out PATH]`: reads the JSON lines `fpdtc run --metrics FILE` appended and
// writes one SVG (loss, tokens/s and learning rate against step) beside it or at --out.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../atomic-write.js';
import { errors, isUserError } from '../errors.js';
import { type MetricsPoint, renderMetricsPlot } from '../view/metrics-plot.js';

export function register(program: Command): void {
  program
    .command('plot')
    .description('draw a --metrics file of fpdtc run (loss, tokens/s, learning rate against step) as one SVG')
    .argument('<file>', 'the JSON-lines file that fpdtc run --metrics wrote')
    .option('--out <path>', 'where to write the SVG (default: FILE with its extension replaced by .svg)')
    .action((file: string, o: { out?: string }) => {
      process.stdout.write(plotSummary(plotMetrics(file, o.out)) + '\n');
    });
}

export interface ParsedMetrics {
  /** sorted by step, one per step */
  points: MetricsPoint[];
  /** steps whose loss is NaN (or otherwise not finite): drawn as gaps */
  nanLoss: number;
  /** records replaced by a later one of the same step (a resumed run repeats steps) */
  repeated: number;
}

export interface PlotResult extends ParsedMetrics {
  path: string;
}

/** Reads `file`, writes the SVG, returns where and what it drew. */
export function plotMetrics(file: string, out?: string): PlotResult {
  const parsed = parseMetrics(readMetricsFile(file), file);
  const path = out ?? defaultPlotPath(file);
  checkPlotPath(path, file);
  try {
    writeFileAtomic(path, renderMetricsPlot({ points: parsed.points, source: basename(file) }));
  } catch (e) {
    throw isUserError(e) ? e : errors.cannotWrite(path, (e as Error).message);
  }
  return { ...parsed, path };
}

export function plotSummary(r: PlotResult): string {
  const n = r.points.length;
  return (
    `wrote ${r.path}: ${n} step${n === 1 ? '' : 's'}` +
    (r.nanLoss ? `, ${r.nanLoss} with loss NaN drawn as gaps` : '') +
    (r.repeated ? `, ${r.repeated} repeated step${r.repeated === 1 ? '' : 's'} (the later record kept)` : '')
  );
}

/** metrics.jsonl -> metrics.svg; a name without an extension gets one. */
export function defaultPlotPath(file: string): string {
  const ext = extname(file);
  return `${ext ? file.slice(0, -ext.length) : file}.svg`;
}

/**
 * The records of a metrics file, checked line by line (blank lines skipped). step and loss are
 * required; loss null (JSON's NaN, as JSON.stringify writes it), "NaN" or a bare NaN is a gap; lr
 * and tokens_per_s are optional. A later record of the same step replaces the earlier one.
 */
export function parseMetrics(text: string, path: string): ParsedMetrics {
  const byStep = new Map<number, MetricsPoint>();
  let repeated = 0;
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const point = parseRecord(line, path, i + 1);
    if (byStep.has(point.step)) {
      repeated++;
      byStep.delete(point.step);
    }
    byStep.set(point.step, point);
  });
  if (byStep.size === 0) throw errors.metricsEmpty(path);
  const points = [...byStep.values()].sort((a, b) => a.step - b.step);
  return { points, nanLoss: points.filter((p) => !Number.isFinite(p.loss)).length, repeated };
}

function parseRecord(line: string, path: string, lineNo: number): MetricsPoint {
  const bad = (what: string) => errors.metricsBadLine(path, lineNo, what);
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    // Python's json writes NaN and Infinity bare; read them as the gaps they are
    try {
      record = JSON.parse(line.replace(/([:,[]\s*)-?(NaN|Infinity)(?=\s*[,}\]])/g, '$1null'));
    } catch {
      throw bad(`not JSON: ${excerpt(line)}`);
    }
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) throw bad(`not a record: ${excerpt(line)}`);
  const r = record as Record<string, unknown>;
  if (!('step' in r)) throw bad('the record has no step');
  if (typeof r.step !== 'number' || !Number.isInteger(r.step) || r.step < 0) throw bad(`step is ${JSON.stringify(r.step)}, not a whole number`);
  if (!('loss' in r)) throw bad('the record has no loss');
  return { step: r.step, loss: lossValue(r.loss, bad), lr: optionalNumber(r.lr), tokensPerS: optionalNumber(r.tokens_per_s) };
}

function lossValue(v: unknown, bad: (what: string) => Error): number {
  if (typeof v === 'number') return v;
  if (v === null || v === 'NaN') return NaN;
  throw bad(`loss is ${JSON.stringify(v)}, not a number`);
}

const optionalNumber = (v: unknown) => (typeof v === 'number' ? v : NaN);

const excerpt = (line: string) => JSON.stringify(line.length > 40 ? `${line.slice(0, 40)}...` : line);

function readMetricsFile(file: string): string {
  if (!existsSync(file)) throw errors.metricsUnreadable(file, 'no such file');
  if (statSync(file).isDirectory()) throw errors.metricsUnreadable(file, 'it is a folder');
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw errors.metricsUnreadable(file, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
  }
}

/** The SVG's folder exists (plot makes none: a typo in --out should not grow a tree) and it is not the input. */
function checkPlotPath(path: string, input: string): void {
  const dir = dirname(path);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw errors.cannotWrite(path, `folder ${dir} does not exist`);
  if (existsSync(path) && statSync(path).isDirectory()) throw errors.cannotWrite(path, 'it is a folder; pass a file path for --out');
  if (resolve(path) === resolve(input)) throw errors.cannotWrite(path, 'it is the metrics file itself; pass another --out');
}
