// Packed documents (`packed: true`, `--packed`): a window of S tokens holds many documents, and
// no token may attend across a document boundary or predict the next document's first token.
//
// Inputs. Beside tokens and labels the step takes, per token, its position inside its document
// (`io.positions`, int32) and its document's id (`io.docs`, int32). Both are laid out exactly like
// the tokens: rank r holds pieces r, r+P, ... of C/P tokens (DESIGN.md section 2), chunked the
// same way. Document ids must not decrease along the window (documents numbered in order): the
// mask only compares ids for equality, the order is what lets a kernel skip a tile by comparing
// its ends (below). Labels need nothing new: the loader writes the ignore label (-1 on the CPU,
// FPDT_IGNORE_LABEL -100 on the GPU) at each document's last token and at masked tokens, and
// `io.nvalid` counts the rest, so the loss is the mean over counted tokens.
//
// The graph does not change: packing is a property of the step's data, like ignored labels, and
// lowering realizes it on the instructions that read positions and the blocks of attention:
// - RoPE (`rope`, `rope_bwd`) runs on a chunk's local rows before the Ulysses all-to-all, so it
//   reads the same rows of `io.positions` as a second operand instead of `pos0 + row`. (RoPE is
//   relative: with the mask, window positions give the same numbers in exact arithmetic. The
//   positions are an input because fp32 angles of positions near a million lose precision on
//   the GPU, where each document should train as it would alone, as transformers runs it.)
// - Attention runs on heads-layout chunks, the global tokens [kC, (k+1)C). Their document ids are
//   gathered once per step into `io.docs_seq` [S] in global order: per chunk, an all-gather over
//   the sequence-parallel group of each rank's C/P ids (what the all-to-all does to the sequence
//   dimension of a tensor without heads). With sp 1 the local ids are already in global order and
//   blocks read `io.docs` itself. Every `attn_fwd_block` and `attn_bwd_block` reads the ids of its
//   query chunk and its key chunk as two last operands (`packed: true`): a (q, k) pair counts only
//   when both ids are equal and, on the diagonal block, k is not after q. A query row whose
//   document has no key in a block gives o = 0, lse = -inf there, which the merge skips.
//
// Skipping what no document spans, at two levels. The schedule stays static (compiled once for
// every window): every block, its fetches and its events are in it whatever the documents are.
// - Whole blocks, on the host. Whoever runs the step is given the ids before it issues it
//   (fpdt_set_documents), so it knows each chunk's first and last id. A block off the diagonal
//   and what only it reads (its kv fetches in forward; its q, do, lse and delta fetches and its dq
//   partial's round trip in backward, but not the zeros that start a dq partial at kv step 0) are
//   emitted under `ifDocumentsMeet` (attribute DOCUMENTS_MEET, arguments docsQ and docsKv): they
//   run only when the two chunks' id ranges overlap, and their events are recorded either way, so
//   the sync pass's ordering still holds (a skipped copy fills a slot nothing then reads). The
//   float64 executor skips them alike (reference/documents-meet.ts). The diagonal block always
//   runs: a chunk shares its documents with itself.
// - Tiles, in the kernels. Inside a block that runs, a tile of query rows [a, b) and key rows
//   [c, d) holds no document pair when their id ranges do not overlap; ids do not decrease, so a
//   CTA finds the one range of tiles its rows meet by binary search over the block's two id
//   windows and visits only those; a tile that holds more than one document masks by equality.
//
// The layout is data, not known when the schedule is made: compile's prediction prices every
// block at full cost, as one document spanning the window, an upper bound (report.json
// `attention_pricing`); schedule/document-pricing.ts prices a layout known before the step
// (`fpdtc inspect --documents`), mirroring both levels of skipping above. The memory plan counts
// the new io buffers, and nothing else changes: it does not depend on the layout (every buffer
// is sized for the window and the chunk, and a skipped block's slots keep their place).
//
// With packing off nothing here runs, and every schedule is byte for byte what it was.
import { PACKED_BUFFERS, scaleAff, v, type Affine, type Ref } from '../schedule/types.js';
import type { Emitter } from './emitter.js';
import { spanAttr, type Geometry } from './geometry.js';

export { PACKED_BUFFERS };

/** The per-token inputs of a packed step (local rows, like io.tokens) and the gathered ids. */
export function declarePackedInputs(e: Emitter, geo: Geometry): void {
  const local = geo.S / geo.P;
  e.buffer(PACKED_BUFFERS.positions, 'gpu', 'int32', [local], 'io');
  e.buffer(PACKED_BUFFERS.docs, 'gpu', 'int32', [local], 'io');
  if (geo.P > 1) e.buffer(PACKED_BUFFERS.docsSeq, 'gpu', 'int32', [geo.S], 'io');
}

/** Chunk by chunk, the group's local ids into the global order of io.docs_seq (sp > 1 only). */
export function emitDocumentGather(e: Emitter, geo: Geometry): void {
  if (geo.P === 1) return;
  e.loop('i', 0, geo.u, 'chunk', () =>
    e.instr({
      stream: 'comm',
      op: 'all_gather',
      reads: { src: e.ref(PACKED_BUFFERS.docs, scaleAff(v('i'), geo.c), geo.c) },
      writes: { dst: e.ref(PACKED_BUFFERS.docsSeq, scaleAff(v('i'), geo.C), geo.C) },
      attrs: { ...spanAttr(geo.dp, 'sp'), ranks: geo.P, n: geo.c },
    }),
  );
}

/** The document ids of global chunk `k` (its C tokens in order), as an attention block reads them. */
export function documentIds(e: Emitter, geo: Geometry, k: Affine): Ref {
  return e.ref(geo.P > 1 ? PACKED_BUFFERS.docsSeq : PACKED_BUFFERS.docs, scaleAff(k, geo.C), geo.C);
}

/** The positions of this rank's rows of chunk `cv` (a loop variable), as RoPE reads them. */
export function positionRows(e: Emitter, geo: Geometry, cv: string): Ref {
  return e.ref(PACKED_BUFFERS.positions, scaleAff(v(cv), geo.c), geo.c);
}

/** The two id windows a block of query chunk `q` and key chunk `k` reads when packed (its operands qDocs, kvDocs). */
export function blockDocuments(e: Emitter, geo: Geometry, q: Affine, k: Affine): { qDocs?: Ref; kvDocs?: Ref } {
  return geo.packed ? { qDocs: documentIds(e, geo, q), kvDocs: documentIds(e, geo, k) } : {};
}

export const packedAttr = (geo: Geometry): { packed?: true } => (geo.packed ? { packed: true } : {});

/**
 * What `body` emits for one block off the diagonal (query chunk `q`, key chunk `kv`) and nothing
 * else reads: with packing, it runs only when the two chunks hold a document in common (the
 * step's runner knows from the ids before it issues the step), so the block and its transfers are
 * skipped together; without packing, as it is.
 */
export function ifDocumentsMeet<T>(e: Emitter, geo: Geometry, q: Affine, kv: Affine, body: () => T): T {
  return geo.packed ? e.whenDocumentsMeet(q, kv, body) : body();
}
