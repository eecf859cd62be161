// Measured rates for the cost model: one JSON file per device profile under ./calibration/,
// written on the GPU host by `test/bench/calibrate.py` (which times our own rendered kernels,
// cuBLAS GEMMs and pinned copies) and committed with its date, machine and commit. devices.ts
// lays a file's rates over the hand-written profile; a profile without a file keeps its
// hand-written rates. The file is read once per process; the compiled output is a function of
// the file's contents, so a committed file gives reproducible predictions.
//
// Attention rates are FLOP/s in the schedule's count (lower/attention.ts: 4*lq*lk*d*heads, halved
// for a causal diagonal block; the backward block 2.5x that), by kernel family ('sm90': the wgmma
// kernels of H100/H200 at head dims 64 and 128; 'mma': the mma.sync kernels every target has,
// which Hopper programs fall back to for packed documents and odd lengths), head dim, direction,
// block form (causal diagonal or full), and block length (lq = lk = the chunk): a table that
// attentionRate interpolates in log2(length) and clamps at its ends.
import { readFileSync } from 'node:fs';
import { errors } from '../errors.js';
import { isOpName, type OpName } from './ops.js';

export type AttnKernel = 'sm90' | 'mma';

export interface AttentionCurve {
  readonly kernel: AttnKernel;
  readonly headDim: number;
  readonly dir: 'fwd' | 'bwd';
  readonly causal: boolean;
  /** [block length, FLOP/s], lengths increasing */
  readonly points: readonly (readonly [number, number])[];
}

export interface Calibration {
  readonly file: string;
  readonly device: string;
  /** machine, date (YYYY-MM-DD), commit, command, and what is measured vs assumed */
  readonly source: Readonly<Record<string, string>>;
  /** bf16 GEMM FLOP/s (cuBLAS at the shapes the bench lists) */
  readonly gemmFlops?: number;
  /** pinned host <-> device bytes/s, one way each and both at once (total) */
  readonly h2dBps?: number;
  readonly d2hBps?: number;
  readonly bothWaysBps?: number;
  /** device-to-device copy, bytes read + written per second */
  readonly d2dBps?: number;
  /** our element-wise kernels, bytes (the schedule's count) per second, by op of the catalog; 'default' for the rest */
  readonly elementwiseBps?: Readonly<Partial<Record<OpName | 'default', number>>>;
  readonly attention: readonly AttentionCurve[];
}

const positive = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** Checks a parsed calibration document; `file` names it in errors. */
export function checkCalibration(doc: unknown, file: string): Calibration {
  const bad = (what: string) => errors.badCalibration(file, what);
  if (!doc || typeof doc !== 'object') throw bad('not a JSON object');
  const d = doc as Record<string, unknown>;
  if (d.format !== 'fpdtc calibration' || d.version !== 1) throw bad(`format must be "fpdtc calibration" version 1`);
  if (typeof d.device !== 'string') throw bad('no device');
  const source = d.source as Record<string, unknown> | undefined;
  if (!source || typeof source !== 'object' || !/^\d{4}-\d\d-\d\d/.test(String(source.date))) throw bad('source.date must be YYYY-MM-DD');
  for (const k of ['gemmFlops', 'h2dBps', 'd2hBps', 'bothWaysBps', 'd2dBps'] as const) {
    if (d[k] !== undefined && !positive(d[k])) throw bad(`${k} must be a positive number`);
  }
  const ew = d.elementwiseBps as Record<string, unknown> | undefined;
  if (ew !== undefined && (typeof ew !== 'object' || !Object.values(ew).every(positive))) throw bad('elementwiseBps must map op names to positive rates');
  // a rate under a name the schedule never uses would price nothing, silently
  const stray = Object.keys(ew ?? {}).find((k) => k !== 'default' && !isOpName(k));
  if (stray) throw bad(`elementwiseBps names '${stray}', which is not a schedule op (compiler/schedule/ops.ts) nor 'default'`);
  if (!Array.isArray(d.attention)) throw bad('attention must be a list');
  for (const [i, c] of (d.attention as AttentionCurve[]).entries()) {
    const where = `attention[${i}]`;
    if ((c.kernel !== 'sm90' && c.kernel !== 'mma') || !positive(c.headDim) || (c.dir !== 'fwd' && c.dir !== 'bwd') || typeof c.causal !== 'boolean')
      throw bad(`${where} needs kernel 'sm90' | 'mma', headDim, dir 'fwd' | 'bwd' and causal`);
    if (!Array.isArray(c.points) || c.points.length === 0 || !c.points.every((p) => Array.isArray(p) && positive(p[0]) && positive(p[1])))
      throw bad(`${where}.points must be [length, FLOP/s] pairs`);
    if (c.points.some((p, k) => k > 0 && p[0] <= c.points[k - 1][0])) throw bad(`${where}.points must be in increasing length`);
  }
  return { ...(d as unknown as Omit<Calibration, 'file'>), source: Object.fromEntries(Object.entries(source).map(([k, v]) => [k, String(v)])), file };
}

const loaded = new Map<string, Calibration>();

/** The committed calibration file `name` (e.g. 'h200.json'), read and checked once. */
export function loadCalibration(name: string): Calibration {
  const hit = loaded.get(name);
  if (hit) return hit;
  const url = new URL(`./calibration/${name}`, import.meta.url);
  const file = `compiler/schedule/calibration/${name}`;
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(url, 'utf8'));
  } catch (e) {
    throw errors.badCalibration(file, (e as Error).message);
  }
  const c = checkCalibration(doc, file);
  loaded.set(name, c);
  return c;
}

/** A curve's rate at block length `len`: linear in log2(length) between points, clamped at the ends. */
export function curveRate(points: AttentionCurve['points'], len: number): number {
  if (len <= points[0][0]) return points[0][1];
  const last = points[points.length - 1];
  if (len >= last[0]) return last[1];
  const k = points.findIndex((p) => p[0] >= len);
  const [l0, r0] = points[k - 1];
  const [l1, r1] = points[k];
  const t = (Math.log2(len) - Math.log2(l0)) / (Math.log2(l1) - Math.log2(l0));
  return r0 + t * (r1 - r0);
}

/** The measured rate of an attention block, or undefined when the calibration has no curve for it. */
export function attentionRate(
  curves: readonly AttentionCurve[],
  q: { readonly kernel: AttnKernel; readonly headDim: number; readonly dir: 'fwd' | 'bwd'; readonly causal: boolean; readonly len: number },
): number | undefined {
  const c = curves.find((x) => x.kernel === q.kernel && x.headDim === q.headDim && x.dir === q.dir && x.causal === q.causal);
  return c ? curveRate(c.points, q.len) : undefined;
}
