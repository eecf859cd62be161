// Lowering declares a region's values when it binds them, before it knows which the step touches: a
// kept layer's recompute buffers, the fetch slots of a backward whose stashes are on the GPU, the GEMM
// outputs of layers that keep their activations. A buffer no instruction reads or writes needs no
// bytes; the memory plan would otherwise hold it for the whole step. What lives beyond one step
// (parameters, gradients, optimizer states, checkpoints, inputs) stays declared.
import { PERSISTENT } from '../schedule/memory.js';
import type { Item, Schedule } from '../schedule/types.js';

function touched(items: readonly Item[], out: Set<string>): Set<string> {
  for (const it of items) {
    if (it.kind === 'loop') touched(it.body, out);
    else if (it.kind === 'instr') for (const r of [...it.reads, ...it.writes]) out.add(r.buf);
  }
  return out;
}

/** The schedule without the buffers nothing uses (persistent kinds kept). */
export function withoutUnusedBuffers(s: Schedule): Schedule {
  const used = touched(s.body, new Set());
  const buffers = s.buffers.filter((b) => PERSISTENT.has(b.kind) || used.has(b.id));
  return buffers.length === s.buffers.length ? s : { ...s, buffers };
}
