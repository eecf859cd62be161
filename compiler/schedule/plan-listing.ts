// A memory plan as text, for `--dump-after plan` and diffs: each arena's size against its
// budget, then every buffer's bytes and the program positions they are reserved for.
//
//   buffer              space kind           offset           size  live
//   io.tokens           gpu   io                  0            256  0..4211
import { formatBytes } from './listing.js';
import type { ArenaSummary, MemoryPlan } from './memory.js';
import type { Schedule } from './types.js';

export function listPlan(s: Schedule, p: MemoryPlan): string {
  const arena = (space: string, a: ArenaSummary) =>
    `${space.padEnd(5)} arena ${formatBytes(a.size)} (${formatBytes(a.peakLive)} live at most); ${formatBytes(a.need)} with the collectives' memory beside it, of ${formatBytes(a.budget)}`;
  const width = Math.max(20, ...p.placements.map((x) => x.buf.length + 1));
  return [
    `memory plan ${s.model}: ${p.fits ? 'fits' : `does not fit: ${p.advice}`}`,
    arena('gpu', p.gpu),
    arena('host', p.host),
    `buffers (bytes; live over program positions 0..${p.positions - 1}):`,
    `  ${'buffer'.padEnd(width)}space kind     ${'offset'.padStart(14)} ${'size'.padStart(14)}  live`,
    ...p.placements.map((x) => `  ${x.buf.padEnd(width)}${x.space.padEnd(6)}${x.kind.padEnd(8)} ${String(x.offset).padStart(14)} ${String(x.size).padStart(14)}  ${x.live[0]}..${x.live[1]}`),
    '',
  ].join('\n');
}
