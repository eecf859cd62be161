// FPDT attention on chunks.
// Forward, for q chunk i: kv chunks j < i stream in from the stash into two rotating slots
// while the previous block computes; the diagonal block uses the resident k_i, v_i. Blocks
// fold into fp32 (o, lse) accumulators (online softmax), finalized once per chunk.
// Backward: kv chunk j is the outer loop with fp32 dk, dv accumulators; q chunks i >= j stream
// in (q, do, lse, D and the partial fp32 dq) and dq goes back after each block. The diagonal
// block runs last, so dq_j is complete when the step ends and the chunk's projections'
// backward (`post`) runs right there.
import type { Node } from '../ir/types.js';
import type { Affine, Ref } from '../schedule/types.js';
import { aff, scaleAff, v } from '../schedule/types.js';
import type { Bindings, HeadsBind } from './bindings.js';
import { spanAttr } from './geometry.js';
import { blockDocuments, ifDocumentsMeet, packedAttr } from './packed.js';

export interface AttnNames {
  /** prefix for the buffers this attention node owns */
  readonly prefix: string;
  /** stash placement of streamed chunks */
  readonly space: 'gpu' | 'host';
}

function heads(b: Bindings, id: string): HeadsBind {
  const x = b.get(id);
  if (x.kind !== 'heads') throw new Error(`lowering: %${id} is not in heads layout`);
  return x;
}

/** Chunk k of a stashed value, ready for a kernel: fetched into slot `k` (of a rotating buffer) if the stash is on the host. */
function fetch(b: Bindings, id: string, k: Affine, slotBuf: string): Ref {
  const h = heads(b, id);
  const src = b.stashed(id, k);
  if (b.e.buffers.get(h.stash!)!.space === 'gpu') return src;
  const dst = b.e.ref(slotBuf, 0, h.per, b.e.buffers.get(slotBuf)!.slots > 1 ? k : undefined);
  b.e.copy(src, dst);
  return dst;
}

function slotBuffer(b: Bindings, id: string, name: string, slots = 2): string {
  const h = heads(b, id);
  const like = b.e.buffers.get(h.chunk)!;
  b.e.buffer(name, 'gpu', like.dtype, like.shape, 'attn', { slots });
  return name;
}

function blockAttrs(b: Bindings, causal: boolean): Record<string, number | boolean> {
  const { C, hqL, kvL, d, G } = b.geo;
  return { lq: C, lk: C, hq: hqL, hkv: kvL, d, group: G, causal, ...packedAttr(b.geo) };
}
const qHeadBase = (b: Bindings) => ({ qHeadBase: v('r', b.geo.hqL) });
const blockFlops = (b: Bindings, causal: boolean) => (4 * b.geo.C * b.geo.C * b.geo.d * b.geo.hqL) / (causal ? 2 : 1);

/** The forward of `attention(q, k, v) -> (o, lse)` for q chunk `cv`. */
export function emitAttentionFwd(n: Node, b: Bindings, cv: string, names: AttnNames): void {
  const { e, geo } = b;
  const [q, k, vv] = n.inputs;
  const [o, lse] = n.outputs;
  const oAcc = e.buffer(`${names.prefix}o_acc`, 'gpu', 'fp32', [geo.C, geo.hqL, geo.d], 'attn').id;
  const lAcc = e.buffer(`${names.prefix}lse_acc`, 'gpu', 'fp32', [geo.hqL, geo.C], 'attn').id;
  const kSlot = slotBuffer(b, k, `${names.prefix}k_slot`);
  const vSlot = slotBuffer(b, vv, `${names.prefix}v_slot`);
  e.instr({ stream: 'compute', op: 'attn_init', reads: {}, writes: { oAcc: e.whole(oAcc), lseAcc: e.whole(lAcc) }, attrs: {} });
  e.loop('j', 0, v(cv), 'kv', () =>
    ifDocumentsMeet(e, geo, v(cv), v('j'), () => {
      const kr = fetch(b, k, v('j'), kSlot);
      const vr = fetch(b, vv, v('j'), vSlot);
      e.instr({
        stream: 'compute',
        op: 'attn_fwd_block',
        reads: { q: b.chunk(q, cv), k: kr, v: vr, ...blockDocuments(e, geo, v(cv), v('j')) },
        writes: { oAcc: e.whole(oAcc), lseAcc: e.whole(lAcc) },
        attrs: blockAttrs(b, false),
        args: qHeadBase(b),
        flops: blockFlops(b, false),
      });
    }),
  );
  e.instr({
    stream: 'compute',
    op: 'attn_fwd_block',
    reads: { q: b.chunk(q, cv), k: b.chunk(k, cv), v: b.chunk(vv, cv), ...blockDocuments(e, geo, v(cv), v(cv)) },
    writes: { oAcc: e.whole(oAcc), lseAcc: e.whole(lAcc) },
    attrs: blockAttrs(b, true),
    args: qHeadBase(b),
    flops: blockFlops(b, true),
  });
  e.instr({ stream: 'compute', op: 'attn_finalize', reads: { oAcc: e.whole(oAcc), lseAcc: e.whole(lAcc) }, writes: { o: b.chunk(o, cv), lse: b.chunk(lse, cv) }, attrs: { rows: geo.C, heads: geo.hqL, d: geo.d } });
}

/** D_i = rowsum(do_i * o_i), once per q chunk, right after do_i exists; stashed for the kv loop. */
export function emitAttentionBwdPrep(n: Node, b: Bindings, cv: string, names: AttnNames): void {
  const { e, geo } = b;
  const [dout, , , , o] = n.inputs;
  const oSlot = slotBuffer(b, o, `${names.prefix}o_slot`);
  const dBuf = e.buffer(`${names.prefix}delta`, 'gpu', 'fp32', [geo.hqL, geo.C], 'attn').id;
  const dStash = e.buffer(`${names.prefix}delta_stash`, names.space, 'fp32', [geo.u, geo.hqL * geo.C], 'stash').id;
  const oRef = fetch(b, o, v(cv), oSlot);
  e.instr({ stream: 'compute', op: 'attn_bwd_prep', reads: { do: b.chunk(dout, cv), o: oRef }, writes: { delta: e.whole(dBuf) }, attrs: { rows: geo.C, heads: geo.hqL, d: geo.d } });
  e.copy(e.whole(dBuf), e.ref(dStash, scaleAff(v(cv), geo.hqL * geo.C), geo.hqL * geo.C));
}

/**
 * The kv-outer loop of `attention_bwd(do, q, k, v, o, lse) -> (dq, dk, dv)`; `post(j)` emits
 * the backward of chunk j's projections once its dq, dk, dv are complete.
 */
export function emitAttentionBwd(n: Node, b: Bindings, names: AttnNames, post: (cv: string) => void): void {
  const { e, geo } = b;
  const [dout, q, k, vv, , lse] = n.inputs;
  const [dq, dk, dv] = n.outputs;
  const per = geo.C * geo.hqL * geo.d;
  const dStash = `${names.prefix}delta_stash`;
  const dqStash = e.buffer(`${names.prefix}dq_stash`, names.space, 'fp32', [geo.u, per], 'stash').id;
  const dqSlot = e.buffer(`${names.prefix}dq_slot`, 'gpu', 'fp32', [geo.C, geo.hqL, geo.d], 'attn', { slots: 2 }).id;
  const dSlot = e.buffer(`${names.prefix}delta_slot`, 'gpu', 'fp32', [geo.hqL, geo.C], 'attn', { slots: 2 }).id;
  const dkAcc = e.buffer(`${names.prefix}dk_acc`, 'gpu', 'fp32', [geo.C, geo.kvL, geo.d], 'attn').id;
  const dvAcc = e.buffer(`${names.prefix}dv_acc`, 'gpu', 'fp32', [geo.C, geo.kvL, geo.d], 'attn').id;
  const slots = {
    k: slotBuffer(b, k, `${names.prefix}bk_slot`),
    v: slotBuffer(b, vv, `${names.prefix}bv_slot`),
    q: slotBuffer(b, q, `${names.prefix}q_slot`),
    do: slotBuffer(b, dout, `${names.prefix}do_slot`),
    lse: slotBuffer(b, lse, `${names.prefix}lse_slot`),
  };
  // The diagonal block has slots of its own: the off-diagonal blocks then alternate their two slots
  // without a gap, so the next kv step's first fetch goes into a slot no longer read while the
  // diagonal block and the projections' backward run (with one set of two slots indexed by q chunk,
  // every other kv step's first fetch waited for the diagonal block to finish).
  const onHost = names.space === 'host';
  // (q, dO and lse come from the host where their stash is there: kept tensors, or every stash with offload)
  const fromHost = [q, dout, lse].some((id) => e.buffers.get(heads(b, id).stash!)?.space === 'host');
  const diagIn = fromHost
    ? {
        q: slotBuffer(b, q, `${names.prefix}q_dslot`, 1),
        do: slotBuffer(b, dout, `${names.prefix}do_dslot`, 1),
        lse: slotBuffer(b, lse, `${names.prefix}lse_dslot`, 1),
      }
    : {};
  const diagAcc = onHost
    ? {
        delta: e.buffer(`${names.prefix}delta_dslot`, 'gpu', 'fp32', [geo.hqL, geo.C], 'attn').id,
        dq: e.buffer(`${names.prefix}dq_dslot`, 'gpu', 'fp32', [geo.C, geo.hqL, geo.d], 'attn').id,
      }
    : {};
  if (!onHost) e.fill(e.whole(dqStash), 0);
  // The last kv step has only its diagonal block, and the step before it ran chunk u-1's block
  // last but one, right before its own diagonal block (the q loop runs from u-1 down): chunk u-1's
  // q, dO, lse and D and its dq partial are still in slot u-1 of the rotating slots, so the last
  // diagonal block reads them there instead of fetching them again into the diagonal slots after
  // the previous diagonal block. Not with packed documents: that block may not have run.
  const reuseLast = geo.u >= 2 && !geo.packed && (fromHost || onHost);
  // kv step 0 starts with chunk u-1's block, whose dO the prep loop has just left in its chunk
  // buffer: it reads it there, not after a round trip through the host.
  const peelFirst = geo.u >= 2 && e.buffers.get(heads(b, dout).stash!)?.space === 'host';
  const doChunkRef = () => {
    const buf = heads(b, dout).chunk;
    return e.whole(buf, e.buffers.get(buf)!.slots > 1 ? aff(geo.u - 1) : undefined);
  };
  /** Chunk i of a stashed value as the last fetch into rotating slot buffer `slotBuf` left it. */
  const held = (id: string, i: Affine, slotBuf: string): Ref => {
    const h = heads(b, id);
    return e.buffers.get(h.stash!)!.space === 'gpu' ? b.stashed(id, i) : e.ref(slotBuf, 0, h.per, i);
  };

  /** How one block gets its inputs (block below). */
  interface BlockInputs {
    /** kv step 0: the dq partial starts at zero instead of being fetched */
    readonly firstStep: boolean;
    /** the inputs and dq partial are read where the previous block of chunk i left them */
    readonly inSlots?: boolean;
    /** dO read from here instead of fetched */
    readonly dO?: Ref;
  }
  /** One block (q chunk i, kv chunk j, whose k and v are kr and vr); returns where its dq partial is. */
  const block = (i: Affine, j: Affine, kr: Ref, vr: Ref, causal: boolean, { firstStep, inSlots = false, dO }: BlockInputs): Ref => {
    const dSrc = e.ref(dStash, scaleAff(i, geo.hqL * geo.C), geo.hqL * geo.C);
    const dqStashed = e.ref(dqStash, scaleAff(i, per), per);
    if (inSlots) {
      const dr = onHost ? e.ref(dSlot, 0, geo.hqL * geo.C, i) : dSrc;
      const dqr = onHost ? e.ref(dqSlot, 0, per, i) : dqStashed;
      // (with two chunks that block was kv step 0's first, which read dO from its chunk buffer)
      const dO = peelFirst && geo.u === 2 ? doChunkRef() : held(dout, i, slots.do);
      const reads = { q: held(q, i, slots.q), do: dO, lse: held(lse, i, slots.lse), delta: dr };
      e.instr({
        stream: 'compute',
        op: 'attn_bwd_block',
        reads: { ...reads, k: kr, v: vr },
        writes: { dqAcc: dqr, dkAcc: e.whole(dkAcc), dvAcc: e.whole(dvAcc) },
        attrs: blockAttrs(b, causal),
        args: qHeadBase(b),
        flops: 2.5 * blockFlops(b, causal),
      });
      return dqr;
    }
    // off the diagonal, packed: what only this block reads is skipped with it where chunks i and j
    // share no document; at kv step 0 the dq partial's zeros are still written (they start it)
    const only = <T>(body: () => T): T => (causal ? body() : ifDocumentsMeet(e, geo, i, j, body));
    const sl = { ...slots, delta: dSlot, dq: dqSlot, ...(causal ? { ...diagIn, ...diagAcc } : {}) };
    const slotOf = (buf: string) => (e.buffers.get(buf)!.slots > 1 ? i : undefined);
    const [qr, dor, lr, dr] = only(() => {
      const refs = [fetch(b, q, i, sl.q), dO ?? fetch(b, dout, i, sl.do), fetch(b, lse, i, sl.lse), dSrc];
      if (onHost) {
        refs[3] = e.ref(sl.delta, 0, geo.hqL * geo.C, slotOf(sl.delta));
        e.copy(dSrc, refs[3]);
      }
      return refs;
    });
    let dqr = dqStashed;
    if (onHost) {
      const slot = e.ref(sl.dq, 0, per, slotOf(sl.dq));
      const stash = dqr;
      if (firstStep) e.fill(slot, 0);
      else only(() => e.copy(stash, slot));
      dqr = slot;
    }
    only(() => e.instr({
      stream: 'compute',
      op: 'attn_bwd_block',
      reads: { q: qr, k: kr, v: vr, do: dor, lse: lr, delta: dr, ...blockDocuments(e, geo, i, j) },
      writes: { dqAcc: dqr, dkAcc: e.whole(dkAcc), dvAcc: e.whole(dvAcc) },
      attrs: blockAttrs(b, causal),
      args: qHeadBase(b),
      flops: 2.5 * blockFlops(b, causal),
    }));
    return dqr;
  };

  /** kv step j: `firstStep` starts the dq partials at zero; `lastStep` is reuseLast's; `stepZero` peels peelFirst's block. */
  const step = (j: Affine, { firstStep, lastStep = false, stepZero = false }: { firstStep: boolean; lastStep?: boolean; stepZero?: boolean }) => {
    const kr = fetch(b, k, j, slots.k);
    const vr = fetch(b, vv, j, slots.v);
    e.fill(e.whole(dkAcc), 0);
    e.fill(e.whole(dvAcc), 0);
    const offDiagonal = (i: Affine, dO?: Ref) => {
      const dqr = block(i, j, kr, vr, false, { firstStep, dO });
      const writeBack = () => e.copy(dqr, e.ref(dqStash, scaleAff(i, per), per));
      if (onHost && firstStep) writeBack();
      else if (onHost) ifDocumentsMeet(e, geo, i, j, writeBack);
    };
    const peel = stepZero && peelFirst;
    const last = aff(geo.u - 1);
    if (peel) offDiagonal(last, doChunkRef());
    const top = peel ? geo.u - 1 : geo.u;
    if (!lastStep && !(peel && top <= 1)) e.loop('i', { c: j.c + 1, t: j.t }, aff(top), 'q', () => offDiagonal(v('i')), true);
    const dqDiag = block(j, j, kr, vr, true, { firstStep, inSlots: lastStep });
    e.instr({
      stream: 'compute',
      op: 'attn_bwd_finalize',
      reads: { dqAcc: dqDiag, dkAcc: e.whole(dkAcc), dvAcc: e.whole(dvAcc) },
      writes: { dq: b.chunk(dq, 'j'), dk: b.chunk(dk, 'j'), dv: b.chunk(dv, 'j') },
      attrs: { rows: geo.C, hq: geo.hqL, hkv: geo.kvL, d: geo.d },
    });
  };

  // Step 0 starts every dq partial at zero; later steps fetch them.
  e.loop('j', 0, 1, 'kv', () => {
    step(v('j'), { firstStep: onHost, stepZero: true });
    post('j');
  });
  const middle = reuseLast ? geo.u - 1 : geo.u;
  if (!reuseLast || middle > 1)
    e.loop('j', 1, middle, 'kv', () => {
      step(v('j'), { firstStep: false });
      post('j');
    });
  if (reuseLast)
    e.loop('j', geo.u - 1, geo.u, 'kv', () => {
      step(v('j'), { firstStep: false, lastStep: true });
      post('j');
    });
}

export function emitAllToAll(n: Node, b: Bindings, cv: string): void {
  const { e, geo } = b;
  const toHeads = n.op === 'seq_to_heads';
  const [inId, outId] = [n.inputs[0], n.outputs[0]];
  const headsId = toHeads ? outId : inId;
  const hb = b.get(headsId);
  const localHeads = hb.kind === 'heads' ? hb.per / (geo.C * geo.d) : 0;
  const kv = n.attrs.kv === true;
  e.instr({
    stream: 'comm',
    op: 'all_to_all',
    reads: { src: toHeads ? b.rows(inId, cv) : b.chunk(inId, cv) },
    writes: { dst: toHeads ? b.chunk(outId, cv) : b.rows(outId, cv) },
    attrs: {
      dir: n.op,
      rows: geo.c,
      ...spanAttr(geo.dp, 'sp'),
      ranks: geo.P,
      heads: kv ? geo.hqL * geo.P / geo.G : geo.hqL * geo.P,
      headDim: geo.d,
      localHeads,
      group: kv ? geo.G : 1,
      qHeadsPerRank: geo.hqL,
    },
  });
}

/** After a heads-layout value is produced in chunk `cv`, keep it in its stash. */
export function stashChunk(b: Bindings, id: string, cv: string): void {
  const h = b.get(id);
  if (h.kind !== 'heads' || !h.stash) return;
  b.e.copy(b.chunk(id, cv), b.stashed(id, v(cv)));
}
