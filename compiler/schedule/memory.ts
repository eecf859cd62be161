// Static memory plan: every buffer gets an offset in one GPU arena or one pinned-host arena per
// rank, decided before anything runs. Invariants `verifyPlan` checks:
//   1. two buffers of one space whose live intervals intersect never share a byte;
//   2. every buffer lies inside its arena; offsets and sizes are 256-byte aligned.
//
// Liveness is computed on the structured program (never unrolled): items get positions in
// program order and a loop spans the positions of its body. A buffer of a persistent kind
// (param, grad, optim, ckpt, io) lives the whole step. Otherwise, when all of its uses sit in
// one loop it lives across that whole loop (its bytes are reused by every iteration, and a
// value may be carried from one iteration to the next). When its first access reads, the value
// comes from before it (an earlier instance of the loop, or the previous step), so it lives the
// whole step. A buffer used outside any common loop lives from its first to its last use, each
// use widened to the whole of its outermost loop (a loop's bytes are reserved for all of it).
import { DTYPE_BYTES } from '../ir/types.js';
import { commMemory, type CommMemory } from './comm-memory.js';
import type { DeviceProfile } from './devices.js';
import type { Buffer, BufferKind, Item, Loop, Schedule } from './types.js';

export const ALIGN = 256;
const GiB = 1024 ** 3;
export const PERSISTENT: ReadonlySet<BufferKind> = new Set(['param', 'grad', 'optim', 'ckpt', 'io']);

export type Space = 'gpu' | 'host';

export interface Placement {
  readonly buf: string;
  readonly space: Space;
  readonly kind: BufferKind;
  readonly offset: number;
  /** elems * slots * dtype bytes, rounded up to ALIGN */
  readonly size: number;
  /** first and last program position (inclusive) during which the bytes are reserved */
  readonly live: readonly [number, number];
}

export interface Breakdown {
  readonly params: number;
  readonly grads: number;
  readonly optimizer: number;
  readonly checkpoints: number;
  /** the rest (gathered params, stashes, activations, chunks, io), after sharing bytes */
  readonly working: number;
  /** beside the arena: the collective scratch and NCCL's buffers (GPU, several ranks) */
  readonly comm: number;
  /** the arena and what lies beside it */
  readonly total: number;
}

export interface ArenaSummary {
  /** bytes the arena needs (highest offset + size) */
  readonly size: number;
  /** bytes the arena and what the collectives take beside it need: checked against the budget */
  readonly need: number;
  /** most bytes live at one position: a lower bound for any plan */
  readonly peakLive: number;
  readonly budget: number;
  readonly breakdown: Breakdown;
}

export interface OverBudget {
  readonly space: Space;
  readonly need: number;
  readonly have: number;
}

export interface MemoryPlan {
  readonly positions: number;
  readonly placements: readonly Placement[];
  readonly gpu: ArenaSummary;
  readonly host: ArenaSummary;
  readonly fits: boolean;
  readonly over: readonly OverBudget[];
  /** GPU memory of the collectives beside the arena */
  readonly comm: CommMemory;
  /** one line for people when it does not fit, empty otherwise */
  readonly advice: string;
}

export const alignUp = (n: number, a = ALIGN): number => Math.ceil(n / a) * a;
export const bufferBytes = (b: Buffer): number => alignUp(b.elems * b.slots * DTYPE_BYTES[b.dtype]);

interface LoopSpan {
  readonly loop: Loop;
  readonly start: number;
  end: number;
}
interface Use {
  readonly pos: number;
  /** enclosing loops, outermost first */
  readonly loops: readonly LoopSpan[];
  readonly reads: boolean;
}

/** Positions in program order and every buffer's uses, from the structured program. */
function collectUses(s: Schedule): { uses: Map<string, Use[]>; positions: number } {
  const uses = new Map<string, Use[]>();
  let pos = 0;
  const walk = (items: readonly Item[], stack: LoopSpan[]): void => {
    for (const it of items) {
      if (it.kind === 'loop') {
        const span: LoopSpan = { loop: it, start: pos, end: pos };
        walk(it.body, [...stack, span]);
        span.end = Math.max(span.start, pos - 1);
        continue;
      }
      if (it.kind === 'instr') {
        const touched = new Map<string, boolean>();
        for (const r of it.writes) touched.set(r.buf, touched.get(r.buf) ?? false);
        for (const r of it.reads) touched.set(r.buf, true);
        for (const [buf, reads] of touched) {
          const list = uses.get(buf) ?? [];
          list.push({ pos, loops: stack, reads });
          uses.set(buf, list);
        }
        // Only instructions take positions, so a plan made before the sync pass adds events
        // is the plan of the synced schedule too.
        pos++;
      }
    }
  };
  walk(s.body, []);
  return { uses, positions: pos };
}

/** The live interval of one buffer; see the file header. */
export function liveInterval(b: Buffer, list: readonly Use[] | undefined, positions: number): [number, number] {
  const whole: [number, number] = [0, Math.max(0, positions - 1)];
  if (PERSISTENT.has(b.kind) || !list || list.length === 0) return whole;
  const first = list.reduce((m, u) => (u.pos < m.pos ? u : m), list[0]);
  // deepest loop enclosing every use
  let depth = 0;
  while (list.every((u) => u.loops.length > depth && u.loops[depth] === list[0].loops[depth])) depth++;
  if (depth > 0) {
    return first.reads ? whole : [list[0].loops[depth - 1].start, list[0].loops[depth - 1].end];
  }
  if (first.reads) return whole;
  let lo = Infinity;
  let hi = -Infinity;
  for (const u of list) {
    const outer = u.loops[0];
    lo = Math.min(lo, outer ? outer.start : u.pos);
    hi = Math.max(hi, outer ? outer.end : u.pos);
  }
  return [lo, hi];
}

interface Pending {
  readonly b: Buffer;
  readonly size: number;
  readonly live: [number, number];
}

const intersects = (a: readonly [number, number], b: readonly [number, number]): boolean => a[0] <= b[1] && b[0] <= a[1];

/**
 * Greedy best-fit: largest buffers first; each goes into the smallest gap left between the
 * already placed buffers it is live together with, or on top of them when no gap fits.
 */
export function assignOffsets(space: Space, items: readonly Pending[]): Placement[] {
  const order = [...items].sort((x, y) => y.size - x.size || x.live[0] - y.live[0] || (x.b.id < y.b.id ? -1 : 1));
  const placed: Placement[] = [];
  for (const p of order) {
    const conflicts = placed.filter((q) => intersects(q.live, p.live)).sort((x, y) => x.offset - y.offset);
    let cursor = 0;
    let best = -1;
    let bestGap = Infinity;
    for (const q of conflicts) {
      const gap = q.offset - cursor;
      if (gap >= p.size && gap < bestGap) {
        best = cursor;
        bestGap = gap;
      }
      cursor = Math.max(cursor, q.offset + q.size);
    }
    placed.push({ buf: p.b.id, space, kind: p.b.kind, offset: best >= 0 ? best : cursor, size: p.size, live: p.live });
  }
  return placed;
}

/** Most bytes live at one position (sweep over interval ends). */
function peakLiveBytes(ps: readonly Placement[]): number {
  const deltas: [number, number][] = [];
  for (const p of ps) deltas.push([p.live[0], p.size], [p.live[1] + 1, -p.size]);
  deltas.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let peak = 0;
  for (const [, d] of deltas) {
    cur += d;
    peak = Math.max(peak, cur);
  }
  return peak;
}

function summarize(ps: readonly Placement[], budget: number, beside = 0): ArenaSummary {
  const size = ps.reduce((m, p) => Math.max(m, p.offset + p.size), 0);
  const sum = (kinds: readonly BufferKind[]): number => ps.filter((p) => kinds.includes(p.kind)).reduce((n, p) => n + p.size, 0);
  const params = sum(['param']);
  const grads = sum(['grad']);
  const optimizer = sum(['optim']);
  const checkpoints = sum(['ckpt']);
  const working = Math.max(0, size - params - grads - optimizer - checkpoints);
  return { size, need: size + beside, peakLive: peakLiveBytes(ps), budget, breakdown: { params, grads, optimizer, checkpoints, working, comm: beside, total: size + beside } };
}

const gib = (n: number): string => `${(n / GiB).toFixed(1)} GiB`;

/** One line: what is over, by how much, and what to change, led by the biggest part. */
export function memoryAdvice(over: readonly OverBudget[], gpu: Breakdown, host: Breakdown): string {
  if (over.length === 0) return '';
  return over
    .map((o) => {
      const head = `${o.space === 'gpu' ? 'GPU' : 'pinned host'} memory over budget by ${gib(o.need - o.have)} (need ${gib(o.need)}, have ${gib(o.have)})`;
      const b = o.space === 'gpu' ? gpu : host;
      const states = b.params + b.grads + b.optimizer;
      let fix: string;
      if (o.space === 'host') fix = 'use more ranks (--sp), keep checkpoints on the GPU (--checkpoint gpu), or raise --host-mem if the host has more';
      else if (b.checkpoints >= Math.max(states, b.working)) fix = 'move checkpoints to host (--checkpoint host) or use more ranks (--sp)';
      else if (b.optimizer >= Math.max(b.params + b.grads, b.working)) fix = 'keep the AdamW states in host memory (--optimizer host) or use more ranks (--sp) so ZeRO-3 shards them further';
      else if (states >= b.working) fix = 'use more ranks (--sp) so ZeRO-3 shards parameters, gradients and optimizer states further';
      else fix = 'use a smaller chunk (--chunk), turn offload on (--offload), or use more ranks (--sp)';
      return `${head}: ${fix}`;
    })
    .join('; ');
}

/** Plans both arenas of one rank and checks them against the device's budgets. */
export function planMemory(s: Schedule, dev: DeviceProfile): MemoryPlan {
  const { uses, positions } = collectUses(s);
  const pending: Record<Space, Pending[]> = { gpu: [], host: [] };
  for (const b of s.buffers) pending[b.space].push({ b, size: bufferBytes(b), live: liveInterval(b, uses.get(b.id), positions) });
  const gpuP = assignOffsets('gpu', pending.gpu);
  const hostP = assignOffsets('host', pending.host);
  const hostBudget = s.config.hostMemGiB !== undefined ? s.config.hostMemGiB * GiB : dev.hostMemBytes;
  const comm = commMemory(s);
  const gpu = summarize(gpuP, dev.gpuMemBytes, comm.scratch + comm.library);
  const host = summarize(hostP, hostBudget);
  const over: OverBudget[] = [];
  if (gpu.need > gpu.budget) over.push({ space: 'gpu', need: gpu.need, have: gpu.budget });
  if (host.need > host.budget) over.push({ space: 'host', need: host.need, have: host.budget });
  const byId = new Map(s.buffers.map((b, i) => [b.id, i]));
  const placements = [...gpuP, ...hostP].sort((a, b) => (byId.get(a.buf) ?? 0) - (byId.get(b.buf) ?? 0));
  return { positions, placements, gpu, host, fits: over.length === 0, over, comm, advice: memoryAdvice(over, gpu.breakdown, host.breakdown) };
}

/** For each buffer, the other buffers of its space whose bytes overlap its own (at other times). */
export function sharedBytes(plan: Pick<MemoryPlan, 'placements'>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const space of ['gpu', 'host'] as const) {
    const ps = plan.placements.filter((p) => p.space === space && p.size > 0).sort((a, b) => a.offset - b.offset);
    for (let i = 0; i < ps.length; i++)
      for (let j = i + 1; j < ps.length && ps[j].offset < ps[i].offset + ps[i].size; j++) {
        out.set(ps[i].buf, [...(out.get(ps[i].buf) ?? []), ps[j].buf]);
        out.set(ps[j].buf, [...(out.get(ps[j].buf) ?? []), ps[i].buf]);
      }
  }
  return out;
}

/** Problems with a plan (invariants 1-2 in the header); empty when it is sound. */
export function verifyPlan(plan: Pick<MemoryPlan, 'placements' | 'gpu' | 'host'>): string[] {
  const problems: string[] = [];
  for (const space of ['gpu', 'host'] as const) {
    const arena = plan[space].size;
    const ps = plan.placements.filter((p) => p.space === space).sort((a, b) => a.offset - b.offset);
    for (const p of ps) {
      if (p.offset < 0 || p.offset + p.size > arena) problems.push(`${space} buffer ${p.buf} [${p.offset}, ${p.offset + p.size}) lies outside the arena of ${arena} bytes`);
      if (p.offset % ALIGN !== 0 || p.size % ALIGN !== 0) problems.push(`${space} buffer ${p.buf} is not ${ALIGN}-byte aligned`);
    }
    // sorted by offset: only later buffers that start before this one ends can share bytes
    for (let i = 0; i < ps.length; i++) {
      const a = ps[i];
      for (let j = i + 1; j < ps.length && ps[j].offset < a.offset + a.size; j++) {
        const b = ps[j];
        if (b.size > 0 && a.size > 0 && intersects(a.live, b.live))
          problems.push(`${space} buffers ${a.buf} and ${b.buf} are live together (positions ${a.live.join('..')} and ${b.live.join('..')}) and share bytes at ${b.offset}`);
      }
    }
  }
  return problems;
}
