// `fpdtc inspect DIR --documents FILE`: a packed program's predicted step for a document layout
// known before the step, beside the full-causal prediction that compile records (which prices
// every attention block in full, as one document spanning the window: an upper bound). FILE is
// what `fpdtc run --documents` takes (start offsets in the token stream, text or .npy); the layout
// priced is the stream's first window, tokens [0, seq), cut as run cuts it (a document starts at
// the window's first token), the window the simulated rank's group trains at step 0.
import { RuntimeError } from '../../runtime/errors.js';
import { readDocumentStarts } from '../../runtime/document-boundaries.js';
import { errors } from '../errors.js';
import { opClass } from '../schedule/cost.js';
import { deviceProfile } from '../schedule/devices.js';
import { documentLayout, documentPricing, type DocumentLayout } from '../schedule/document-pricing.js';
import { simulateStreams, type OpTotal, type Timeline } from '../schedule/simulate.js';
import type { Schedule } from '../schedule/types.js';

export interface DocumentComparison {
  readonly path: string;
  readonly layout: DocumentLayout;
  /** every block in full (what report.json's predicted step says) */
  readonly full: Timeline;
  /** the blocks and tiles the layout leaves */
  readonly documents: Timeline;
}

/** The first window's layout from a --documents FILE; a bad file, or a program compiled without --packed, is one line (exit 2). */
export async function readWindowLayout(dir: string, s: Schedule, path: string): Promise<DocumentLayout> {
  if (!s.config.packed) throw errors.documentsNeedPacked(dir, 'documents');
  let starts: number[];
  try {
    starts = await readDocumentStarts(path);
  } catch (e) {
    throw e instanceof RuntimeError ? errors.badDocumentsFile(e.message) : e;
  }
  return documentLayout(s.config.seq, starts);
}

/** Both predictions of the whole step (extrapolated per layer, as compile's). */
export function compareDocuments(s: Schedule, layout: DocumentLayout, path: string): DocumentComparison {
  const dev = deviceProfile(s.config.device, { hostMemGiB: s.config.hostMemGiB });
  const full = simulateStreams(s, dev, { spans: false });
  const documents = simulateStreams(s, dev, { spans: false, documents: documentPricing(s, layout) });
  return { path, layout, full, documents };
}

const secs = (x: number): string => (x >= 1 ? `${x.toFixed(2)} s` : `${(x * 1e3).toFixed(2)} ms`);
const ratio = (a: number, b: number): string => (b > 0 ? (a / b).toFixed(3) : '-');

function row(name: string, issued: string, full: string, docs: string, r: string): string {
  return `  ${name.padEnd(20)}${issued.padStart(14)}${full.padStart(12)}${docs.padStart(12)}${r.padStart(11)}`;
}

/** Op kinds each under this share of the step with the documents are summed into one row. */
const SMALL = 0.005;

/** The comparison as lines of text for `fpdtc inspect`: the step, then time per op class and op kind. */
export function formatDocuments(c: DocumentComparison): string[] {
  const { full: f, documents: d, layout } = c;
  const lengths = layout.starts.map((a, k) => (k + 1 < layout.starts.length ? layout.starts[k + 1] : layout.seq) - a);
  const n = lengths.length;
  const out = [
    `timeline per rank for the documents of ${c.path} (its first window, tokens 0..${layout.seq - 1}: ${n} document${n === 1 ? '' : 's'}, longest ${Math.max(...lengths)}, mean ${Math.round(layout.seq / n)})`,
    row('op kind', 'issued', 'full causal', 'documents', 'docs/full'),
    row('step time', '', secs(f.stepSeconds), secs(d.stepSeconds), ratio(d.stepSeconds, f.stepSeconds)),
  ];
  const kinds = new Map<string, { f: OpTotal; d: OpTotal }>();
  const none = { count: 0, seconds: 0 };
  for (const k of new Set([...Object.keys(f.ops), ...Object.keys(d.ops)])) kinds.set(k, { f: f.ops[k] ?? none, d: d.ops[k] ?? none });
  const classOf = (k: string) => (k.startsWith('copy ') ? 'copy' : opClass(k));
  const classes = new Map<string, { f: number; d: number }>();
  for (const [k, x] of kinds) {
    const t = classes.get(classOf(k)) ?? { f: 0, d: 0 };
    t.f += x.f.seconds;
    t.d += x.d.seconds;
    classes.set(classOf(k), t);
  }
  for (const [cls, t] of [...classes].sort((a, b) => b[1].f - a[1].f)) if (t.f > 0) out.push(row(`[${cls}]`, '', secs(t.f), secs(t.d), ratio(t.d, t.f)));
  const small = { n: 0, f: 0, d: 0 };
  for (const [k, x] of [...kinds].sort((a, b) => b[1].f.seconds - a[1].f.seconds)) {
    if (Math.max(x.f.seconds, x.d.seconds) < SMALL * d.stepSeconds) {
      small.n++;
      small.f += x.f.seconds;
      small.d += x.d.seconds;
    } else out.push(row(k, `${x.d.count} of ${x.f.count}`, secs(x.f.seconds), secs(x.d.seconds), ratio(x.d.seconds, x.f.seconds)));
  }
  if (small.n) out.push(row(`other (${small.n} kinds)`, '', secs(small.f), secs(small.d), ratio(small.d, small.f)));
  out.push(row('exposed copy', '', secs(f.exposedCopySeconds), secs(d.exposedCopySeconds), ratio(d.exposedCopySeconds, f.exposedCopySeconds)));
  out.push(row('exposed comm', '', secs(f.exposedCommSeconds), secs(d.exposedCommSeconds), ratio(d.exposedCommSeconds, f.exposedCommSeconds)));
  out.push(`  ${d.skipped} instructions not issued: the blocks whose chunks share no document and the transfers only they read`);
  out.push("  (per op kind: time busy on its stream over the whole step; a block that runs does its documents' (query, key) pairs, counted exactly, not in kernel tiles)");
  return out;
}
