// Reads back a Chrome trace that fpdtc wrote (export-trace.ts: compile's trace.json, or the measured
// step of `fpdtc run --trace`), plain or gzipped, as spans per rank: processes are ranks, threads are
// streams named by their thread_name metadata, complete events are instruction spans.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { errors } from '../errors.js';
import { US, type RankSpans } from './export-trace.js';
import type { Span } from './simulate.js';
import { STREAMS, type StreamName } from './types.js';

export interface TraceFile {
  readonly ranks: readonly RankSpans[];
  readonly otherData: Readonly<Record<string, unknown>>;
}

interface RawEvent {
  name?: unknown;
  ph?: unknown;
  pid?: unknown;
  tid?: unknown;
  ts?: unknown;
  dur?: unknown;
  args?: Record<string, unknown>;
}

const isStream = (x: unknown): x is StreamName => typeof x === 'string' && (STREAMS as readonly string[]).includes(x);

/** The trace in `text` (JSON) as spans per rank, sorted by rank and then start. */
export function parseTrace(text: string, path: string): TraceFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw errors.traceUnreadable(path, `not JSON: ${(e as Error).message}`);
  }
  const events = (doc as { traceEvents?: unknown })?.traceEvents;
  if (!Array.isArray(events)) throw errors.traceUnreadable(path, 'no traceEvents array');
  // thread names first: the stream of (pid, tid); without them, tid i is STREAMS[i] as we write it
  const streams = new Map<string, StreamName>();
  for (const e of events as RawEvent[]) {
    if (e.ph === 'M' && e.name === 'thread_name' && isStream(e.args?.name)) streams.set(`${e.pid}/${e.tid}`, e.args.name);
  }
  const byRank = new Map<number, Span[]>();
  for (const e of events as RawEvent[]) {
    if (e.ph !== 'X') continue;
    if (typeof e.pid !== 'number' || typeof e.tid !== 'number' || typeof e.ts !== 'number' || typeof e.dur !== 'number' || typeof e.name !== 'string')
      throw errors.traceUnreadable(path, `a complete event without numeric pid, tid, ts, dur and a name: ${JSON.stringify(e).slice(0, 120)}`);
    const stream = streams.get(`${e.pid}/${e.tid}`) ?? STREAMS[e.tid];
    if (!stream) throw errors.traceUnreadable(path, `event ${e.name} on thread ${e.tid}, which names no stream`);
    const op = typeof e.args?.op === 'string' ? e.args.op : e.name;
    const id = typeof e.args?.id === 'string' ? e.args.id : '';
    const spans = byRank.get(e.pid) ?? [];
    spans.push({ stream, op, id, start: e.ts / US, end: (e.ts + e.dur) / US });
    byRank.set(e.pid, spans);
  }
  if (byRank.size === 0) throw errors.traceUnreadable(path, 'no complete (X) events');
  const ranks = [...byRank].sort((a, b) => a[0] - b[0]).map(([rank, spans]) => ({ rank, spans: spans.sort((a, b) => a.start - b.start) }));
  const otherData = (doc as { otherData?: unknown }).otherData;
  return { ranks, otherData: otherData && typeof otherData === 'object' ? (otherData as Record<string, unknown>) : {} };
}

/** Reads `path` (.json, or gzipped: .gz or gzip magic) as a trace. */
export function readTrace(path: string): TraceFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw errors.traceUnreadable(path, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw errors.traceUnreadable(path, `a damaged gzip file: ${(e as Error).message}`);
    }
  }
  return parseTrace(bytes.toString('utf8'), path);
}
