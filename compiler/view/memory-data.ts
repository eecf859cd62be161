// Arena usage over program positions for the memory plot: the memory plan's placements (kind,
// size, live [first, last]) summed per kind at every position where something changes, per
// space, with the peak and the budget. Bytes reserved, not bytes touched: what the plan holds.
import type { MemoryPlan, Placement, Space } from '../schedule/memory.js';
import type { ProgramIndex } from './program-index.js';

export interface SpaceUsage {
  readonly space: Space;
  readonly budget: number;
  /** GPU: what the collectives take beside the arena (drawn as its own band) */
  readonly beside: number;
  readonly kinds: readonly string[];
  /** positions where usage changes; usage holds until the next one */
  readonly at: readonly number[];
  /** bytes per kind (in `kinds` order) at each of `at` */
  readonly bytes: readonly (readonly number[])[];
  readonly peak: { readonly position: number; readonly bytes: number };
}

export interface BufferRow {
  readonly buf: string;
  readonly space: Space;
  readonly kind: string;
  readonly size: number;
  readonly offset: number;
  readonly first: number;
  readonly last: number;
}

/** A layer loop's positions, so the plot can say which part of the step a position is in. */
export interface LoopRange {
  readonly first: number;
  readonly last: number;
  readonly trips: number;
  readonly reverse: boolean;
}

export interface MemoryData {
  readonly positions: number;
  readonly layerLoops: readonly LoopRange[];
  readonly spaces: readonly SpaceUsage[];
  readonly buffers: readonly BufferRow[];
}

/** Stacked usage of one space: change points of the per-kind sums. */
export function spaceUsage(placements: readonly Placement[], space: Space, budget: number, beside: number): SpaceUsage {
  const mine = placements.filter((p) => p.space === space);
  const kinds = [...new Set(mine.map((p) => p.kind))].sort();
  const deltas = new Map<number, number[]>();
  const delta = (pos: number, k: number, d: number): void => {
    const row = deltas.get(pos) ?? new Array<number>(kinds.length).fill(0);
    row[k] += d;
    deltas.set(pos, row);
  };
  for (const p of mine) {
    const k = kinds.indexOf(p.kind);
    delta(p.live[0], k, p.size);
    delta(p.live[1] + 1, k, -p.size);
  }
  const at: number[] = [];
  const bytes: number[][] = [];
  const cur = new Array<number>(kinds.length).fill(0);
  let peak = { position: 0, bytes: 0 };
  for (const pos of [...deltas.keys()].sort((a, b) => a - b)) {
    deltas.get(pos)!.forEach((d, k) => (cur[k] += d));
    at.push(pos);
    bytes.push([...cur]);
    const total = cur.reduce((a, b) => a + b, 0);
    if (total > peak.bytes) peak = { position: pos, bytes: total };
  }
  return { space, budget, beside, kinds, at, bytes, peak };
}

export function memoryData(plan: MemoryPlan, index?: ProgramIndex): MemoryData {
  const layerLoops = (index?.loops ?? []).filter((l) => l.role === 'layer' && l.trips > 0).map((l) => ({ first: l.first, last: l.last, trips: l.trips, reverse: l.reverse }));
  return {
    positions: plan.positions,
    layerLoops,
    spaces: [spaceUsage(plan.placements, 'gpu', plan.gpu.budget, plan.gpu.breakdown.comm), spaceUsage(plan.placements, 'host', plan.host.budget, 0)],
    buffers: plan.placements.map((p) => ({ buf: p.buf, space: p.space, kind: p.kind, size: p.size, offset: p.offset, first: p.live[0], last: p.live[1] })),
  };
}
