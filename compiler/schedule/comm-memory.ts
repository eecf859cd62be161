// GPU memory the collectives take beside the planned arena, counted by the plan so that a
// multi-rank run's measured peak matches it:
//   - the collective scratch: the NCCL all-to-all packs its P pieces there (to heads) or lands
//     them there (to sequence), and the local backend sums an all-reduce there. All-gather and
//     reduce-scatter work in place, so the scratch is the largest all-to-all or all-reduce window;
//   - what NCCL allocates on the GPU for its peers once the collectives run (channel buffers of
//     each connection, set up at the first call, after the program measured its free memory);
//     with dp groups of sp > 1 ranks, the all-to-alls run on a second communicator (the group's,
//     split from the world's), which sets up connections of its own: planned as much again.
import { DTYPE_BYTES } from '../ir/types.js';
import { groupsOf, type Item, type Schedule } from './types.js';

/** Ops that use the scratch (see codegen-templates/host/program_comm.cuh). */
const USES_SCRATCH = new Set(['all_to_all', 'all_reduce']);

/**
 * NCCL's lazily allocated GPU buffers for one process of a multi-GPU world: measured on two
 * H200s over NVLink with NCCL 2.28 (results/step.md). A local world of ranks on one GPU does
 * not use NCCL; its plan overstates by this much.
 */
export const NCCL_PEER_BYTES = 1024 ** 3;

export interface CommMemory {
  /** the collective scratch, allocated by the program beside its arena */
  readonly scratch: number;
  /** NCCL's own buffers (0 for one rank) */
  readonly library: number;
}

function* instrs(items: readonly Item[]): Generator<Extract<Item, { kind: 'instr' }>> {
  for (const it of items) {
    if (it.kind === 'instr') yield it;
    else if (it.kind === 'loop') yield* instrs(it.body);
  }
}

export function commMemory(s: Schedule): CommMemory {
  if (s.world <= 1) return { scratch: 0, library: 0 };
  const bytesOf = new Map(s.buffers.map((b) => [b.id, DTYPE_BYTES[b.dtype]]));
  let most = 0;
  for (const it of instrs(s.body))
    if (USES_SCRATCH.has(it.op)) for (const r of [...it.reads, ...it.writes]) most = Math.max(most, r.len * (bytesOf.get(r.buf) ?? 0));
  const { sp, dp } = groupsOf(s);
  const communicators = dp > 1 && sp > 1 ? 2 : 1;
  return { scratch: Math.ceil(most / 256) * 256, library: communicators * NCCL_PEER_BYTES };
}
