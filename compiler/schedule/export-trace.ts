// trace.json in the Chrome trace event format (opens in Perfetto and chrome://tracing): one
// process per rank, one thread per stream, a complete ('X') event per instruction span. The
// measured trace of `fpdtc run --trace` (compiler/train/measured-trace.ts) is laid out with the
// same helpers, so the predicted and the measured step open side by side with the same tracks.
import type { Span } from './simulate.js';
import { STREAMS } from './types.js';

export interface TraceEvent {
  readonly name: string;
  readonly ph: 'X' | 'M';
  readonly pid: number;
  readonly tid: number;
  readonly ts?: number;
  readonly dur?: number;
  readonly cat?: string;
  readonly args?: Readonly<Record<string, string | number>>;
}

export interface ChromeTrace {
  readonly traceEvents: readonly TraceEvent[];
  readonly displayTimeUnit: 'ms';
  readonly otherData?: Readonly<Record<string, string | number>>;
}

export interface RankSpans {
  readonly rank: number;
  readonly spans: readonly Span[];
}

/** Trace timestamps are microseconds; spans are in seconds. */
export const US = 1e6;

/** The metadata of one rank's tracks: process `rank` named "rank N", thread i the stream STREAMS[i]. */
export function rankTracks(rank: number): TraceEvent[] {
  const ev: TraceEvent[] = [{ name: 'process_name', ph: 'M', pid: rank, tid: 0, args: { name: `rank ${rank}` } }];
  STREAMS.forEach((st, tid) => {
    ev.push({ name: 'thread_name', ph: 'M', pid: rank, tid, args: { name: st } });
    ev.push({ name: 'thread_sort_index', ph: 'M', pid: rank, tid, args: { sort_index: tid } });
  });
  return ev;
}

/** One span as a complete event on its rank's stream track: named by its op, args its id and loop indices, then `extra`. */
export function spanEvent(rank: number, s: Span, extra: Readonly<Record<string, string | number>> = {}): TraceEvent {
  const args: Record<string, string | number> = { id: s.id };
  for (const k of ['layer', 'chunk', 'kv', 'q'] as const) if (s[k] !== undefined) args[k] = s[k];
  return { name: s.op, cat: s.stream, ph: 'X', pid: rank, tid: STREAMS.indexOf(s.stream), ts: s.start * US, dur: (s.end - s.start) * US, args: { ...args, ...extra } };
}

export function chromeTrace(ranks: readonly RankSpans[], otherData: Record<string, string | number> = {}): ChromeTrace {
  const ev: TraceEvent[] = [];
  for (const { rank, spans } of ranks) {
    ev.push(...rankTracks(rank));
    for (const s of spans) ev.push(spanEvent(rank, s));
  }
  return { traceEvents: ev, displayTimeUnit: 'ms', otherData };
}
