// Packed documents (lower/packed.ts): whether query chunk q and key chunk kv of a rank's sequence
// hold a document in common, as the GPU program decides it before it issues a step (from the ids
// fpdt_set_documents took): instructions that carry DOCUMENTS_MEET run only then. Ids do not
// decrease along a sequence, so each chunk's ids span [first, last] and two chunks meet when
// those ranges overlap.
import { groupsOf, type Schedule } from '../schedule/types.js';
import type { StepInputs } from './executor-layout.js';

export type DocumentsMeet = (rank: number, q: number, kv: number) => boolean;

export function documentsMeet(s: Schedule, inputs: StepInputs): DocumentsMeet | undefined {
  if (!s.config.packed) return undefined;
  const docs = inputs.docs;
  if (!docs) throw new Error('executor: a packed step needs document ids');
  const { sp } = groupsOf(s);
  const seq = s.sizes.S;
  const C = s.chunk;
  return (rank, q, kv) => {
    // rank r trains its group's sequence, group floor(r / sp), as the program does
    const base = Math.floor(rank / sp) * seq;
    const first = (k: number) => docs[base + k * C];
    const last = (k: number) => docs[base + (k + 1) * C - 1];
    return first(q) <= last(kv) && first(kv) <= last(q);
  };
}
