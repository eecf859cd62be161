// Packed documents (lower/packed.ts): a window of many documents trains exactly as its documents
// would, each run on its own. The seeded windows hold documents of random lengths, one spanning
// rank and chunk boundaries and one of length 1; the float64 interpreter with positions and
// document ids equals the token-weighted sum over the documents; the compiled step does too
// (tiny-llama, sp 1 and sp 2 with offload, dp 2); the schedule reads positions and document ids
// where it should; dropping the document mask or the positions on purpose is caught.
import { expect } from 'chai';
import { checkModel, packedWindows, relativeError, type CheckOptions, type CheckReport } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import { globalRow } from '../../compiler/reference/executor-layout.js';
import { initParams } from '../../compiler/reference/init.js';
import { interpret } from '../../compiler/reference/interpreter.js';
import { IGNORE_LABEL } from '../../compiler/reference/cpu-loss.js';
import { documentsOf, interpretDocuments, packedBatch } from '../../compiler/reference/packed.js';
import { autodiff } from '../../compiler/passes/autodiff.js';
import type { Instr, Item, Schedule } from '../../compiler/schedule/types.js';
import tinyLlama from '../../models/tiny-llama.js';
import { parseCompileFlags } from '../../compiler/cli/compile-flags.js';
import { runCli } from '../cli/run-cli.js';
import { scheduleOf } from '../lower/helpers.js';

const run = (o: TrainDefaults, opts: CheckOptions = {}): CheckReport =>
  checkModel(tinyLlama, resolveConfig(tinyLlama.def.train!, { packed: true, ...o }), { orders: 3, arena: 'planned', seed: 13, ...opts });

function* instrs(items: readonly Item[]): Generator<Instr> {
  for (const it of items) {
    if (it.kind === 'instr') yield it;
    else if (it.kind === 'loop') yield* instrs(it.body);
  }
}

/** Rewrites every instruction of a schedule, loops included. */
function rewrite(s: Schedule, f: (it: Instr) => Instr): Schedule {
  const walk = (items: readonly Item[]): Item[] => items.map((it) => (it.kind === 'loop' ? { ...it, body: walk(it.body) } : it.kind === 'instr' ? f(it) : it));
  return { ...s, body: walk(s.body) };
}

const ATTN_BLOCKS = new Set(['attn_fwd_block', 'attn_bwd_block']);

/** Attention blocks as without packing: no document ids, every pair of the window counts. */
function dropDocumentMask(s: Schedule): Schedule {
  let dropped = 0;
  const out = rewrite(s, (it) => {
    if (!ATTN_BLOCKS.has(it.op) || it.attrs.packed !== true) return it;
    dropped++;
    const { packed: _, ...attrs } = it.attrs;
    return { ...it, attrs, reads: it.reads.slice(0, -2) };
  });
  expect(dropped, 'blocks unmasked').to.be.greaterThan(0);
  return out;
}

/**
 * RoPE reads chunk 0's positions in every chunk: a document that crosses a chunk boundary then
 * sees its positions jump, which attention does see (RoPE is relative within a document).
 */
function firstChunkPositions(s: Schedule): Schedule {
  let changed = 0;
  const out = rewrite(s, (it) => {
    if ((it.op !== 'rope' && it.op !== 'rope_bwd') || it.attrs.packed !== true) return it;
    changed++;
    return { ...it, reads: [it.reads[0], { ...it.reads[1], off: { c: 0, t: {} } }] };
  });
  expect(changed, 'rope instructions').to.be.greaterThan(0);
  return out;
}

describe('packed documents: seeded windows', () => {
  const seq = 96, chunk = 24, sp = 2;
  const b = packedBatch(seq, 64, chunk, sp, 5);
  const docs = documentsOf(b.docs);

  it('fill the window with documents of several lengths, one of length 1', () => {
    expect(docs.reduce((n, d) => n + d.length, 0)).to.equal(seq);
    expect(docs.length).to.be.greaterThan(4);
    expect(docs.some((d) => d.length === 1)).to.equal(true);
    expect(new Set(docs.map((d) => d.length)).size).to.be.greaterThan(3);
  });

  it('one document spans a chunk boundary and, after it, a rank boundary (its rows live on both ranks)', () => {
    const c = chunk / sp;
    const spans = (d: { start: number; length: number }, every: number) => Math.floor(d.start / every) !== Math.floor((d.start + d.length - 1) / every);
    expect(docs.some((d) => spans(d, chunk))).to.equal(true);
    const across = docs.find((d) => spans(d, chunk) && Math.floor((d.start + d.length - 1) % chunk) >= c);
    expect(across, 'a document past the chunk boundary and the next rank piece').to.not.equal(undefined);
    // the rows of that document sit on both ranks under the token layout
    const onRank = (r: number) => Array.from({ length: seq / sp }, (_, t) => globalRow(t, r, chunk, sp)).some((g) => g >= across!.start && g < across!.start + across!.length);
    expect(onRank(0) && onRank(1)).to.equal(true);
  });

  it('positions restart at 0 in each document, ids grow by one, the last label of each document is ignored', () => {
    for (const [k, d] of docs.entries()) {
      expect(Array.from(b.positions.subarray(d.start, d.start + d.length))).to.deep.equal(Array.from({ length: d.length }, (_, i) => i));
      expect(b.docs[d.start]).to.equal(k);
      expect(b.labels[d.start + d.length - 1]).to.equal(IGNORE_LABEL);
    }
    // the loss mask ignores some other tokens too
    const ignored = Array.from(b.labels).filter((l) => l === IGNORE_LABEL).length;
    expect(ignored).to.be.greaterThan(docs.length);
  });

  it('document ids that decrease are refused', () => {
    expect(() => documentsOf(Int32Array.of(0, 0, 1, 0))).to.throw(/must not decrease/);
  });

  it('differ by seed, and each dp group has its own window', () => {
    const cfg = resolveConfig(tinyLlama.def.train!, { packed: true, dp: 2 });
    const [w0, w1] = packedWindows(cfg, 24, 64, 5);
    expect(Array.from(w0.tokens)).to.not.deep.equal(Array.from(w1.tokens));
    expect(Array.from(w0.tokens)).to.deep.equal(Array.from(packedBatch(cfg.seq, 64, 24, cfg.sp, 5).tokens));
  });
});

describe('packed documents: the float64 interpreter', () => {
  const graphAt = (n: number) => autodiff.run(tinyLlama.build(resolveConfig(tinyLlama.def.train!, { seq: n })));
  const seq = 48;
  const g = graphAt(seq);
  const params = initParams(g, 3);
  const b = packedBatch(seq, g.sizes.V, 12, 2, 9);

  it('a window with positions and document ids equals the sum over its documents run on their own (1e-9)', () => {
    const packed = interpret(g, b, params);
    const sum = interpretDocuments(graphAt, [b], params);
    expect(relativeError([packed.loss], [sum.loss])).to.be.below(1e-9);
    for (const p of g.params) expect(relativeError(packed.grads[p], sum.grads[p]), p).to.be.below(1e-9);
  });

  it('without document ids (one long document) it does not', () => {
    const sum = interpretDocuments(graphAt, [b], params);
    for (const inputs of [{ tokens: b.tokens, labels: b.labels }, { tokens: b.tokens, labels: b.labels, positions: b.positions }])
      expect(relativeError([interpret(g, inputs, params).loss], [sum.loss])).to.be.above(1e-6);
  });

  it('with ids, window positions give the same numbers in float64: RoPE is relative inside a document', () => {
    // (on the GPU the angles of positions near a million lose precision in fp32: hence positions as an input)
    const ids = interpret(g, { tokens: b.tokens, labels: b.labels, docs: b.docs }, params);
    const sum = interpretDocuments(graphAt, [b], params);
    expect(relativeError([ids.loss], [sum.loss])).to.be.below(1e-9);
  });
});

describe('packed documents: the compiled step equals its documents run on their own', () => {
  for (const [name, o] of [
    ['sp 1, offload', { sp: 1, seq: 64, chunk: 16, offload: true }],
    ['sp 2, offload', { sp: 2, seq: 96, chunk: 24, offload: true }],
    ['sp 2, offload, kept attention', { sp: 2, seq: 96, chunk: 24, offload: true, keepAttention: 1 }],
    ['dp 2 x sp 2', { dp: 2, sp: 2, seq: 48, chunk: 24 }],
  ] as const)
    it(`${name} (1e-9)`, () => {
      const r = run(o);
      expect(r.ok, `max error ${r.maxError}`).to.equal(true);
      expect(r.documents).to.be.greaterThan(3);
      expect(r.config.packed).to.equal(true);
    });

  it('dropping the document mask is caught', () => {
    const r = run({ sp: 2, seq: 96, chunk: 24 }, { mutate: dropDocumentMask, verify: false, orders: 1 });
    expect(r.ok).to.equal(false);
    expect(r.loss.error).to.be.greaterThan(1e-6);
  });

  it('positions that do not follow the chunking (chunk 0\'s in every chunk) are caught', () => {
    const r = run({ sp: 2, seq: 96, chunk: 24 }, { mutate: firstChunkPositions, verify: false, orders: 1 });
    expect(r.ok).to.equal(false);
    expect(r.maxError).to.be.greaterThan(1e-6);
  });
});

describe('packed documents: the schedule', () => {
  const packed = scheduleOf('tiny-llama', { sp: 2, seq: 96, chunk: 24, packed: true });
  const all = [...instrs(packed.body)];

  it('takes positions and document ids laid out like the tokens, and gathers the ids chunk by chunk', () => {
    const buf = (id: string) => packed.buffers.find((b) => b.id === id);
    expect(buf('io.positions')).to.include({ dtype: 'int32', elems: 48, kind: 'io' });
    expect(buf('io.docs')).to.include({ dtype: 'int32', elems: 48, kind: 'io' });
    expect(buf('io.docs_seq')).to.include({ dtype: 'int32', elems: 96, kind: 'io' });
    const gathers = all.filter((x) => x.op === 'all_gather' && x.reads[0].buf === 'io.docs');
    expect(gathers).to.have.length(1);
    expect(gathers[0].attrs).to.include({ ranks: 2, n: 12 });
    expect(gathers[0].writes[0]).to.include({ buf: 'io.docs_seq', len: 24 });
  });

  it('RoPE reads its rows\' positions (no pos0); every attention block reads its two id windows', () => {
    const ropes = all.filter((x) => x.op === 'rope' || x.op === 'rope_bwd');
    expect(ropes.length).to.be.greaterThan(0);
    for (const x of ropes) {
      expect(x.attrs.packed).to.equal(true);
      expect(x.args?.pos0).to.equal(undefined);
      expect(x.reads[1]).to.include({ buf: 'io.positions', len: 12 });
    }
    const blocks = all.filter((x) => ATTN_BLOCKS.has(x.op));
    expect(blocks.length).to.be.greaterThan(0);
    for (const x of blocks) {
      expect(x.attrs.packed).to.equal(true);
      expect(x.reads.slice(-2).map((r) => [r.buf, r.len])).to.deep.equal([
        ['io.docs_seq', 24],
        ['io.docs_seq', 24],
      ]);
    }
  });

  it('at sp 1 the blocks read the local ids, already in window order, and nothing is gathered', () => {
    const one = scheduleOf('tiny-llama', { sp: 1, seq: 64, chunk: 16, packed: true });
    expect(one.buffers.some((b) => b.id === 'io.docs_seq')).to.equal(false);
    const blocks = [...instrs(one.body)].filter((x) => ATTN_BLOCKS.has(x.op));
    for (const x of blocks) expect(x.reads.at(-1)!.buf).to.equal('io.docs');
  });

  it('the cost model prices every block in full (no skipping assumed), as without packing', () => {
    const plain = scheduleOf('tiny-llama', { sp: 2, seq: 96, chunk: 24 });
    // (the plain schedule's last kv step reads its diagonal block's inputs where the step before left
    // them, a block instruction of its own: compare the blocks each schedule prices, by kind)
    const flops = (s: Schedule) => [...new Set([...instrs(s.body)].filter((x) => ATTN_BLOCKS.has(x.op)).map((x) => `${x.op} ${x.attrs.causal} ${x.flops}`))].sort();
    expect(flops(packed)).to.deep.equal(flops(plain));
  });

  it('without packing nothing of it appears', () => {
    const plain = scheduleOf('tiny-llama', { sp: 2, seq: 96, chunk: 24, packed: false });
    expect(plain.config.packed).to.equal(undefined);
    expect(plain.buffers.some((b) => b.id.startsWith('io.positions') || b.id.startsWith('io.docs'))).to.equal(false);
    for (const x of instrs(plain.body)) expect(x.attrs.packed, x.id).to.equal(undefined);
  });
});

describe('packed documents: flags and config', () => {
  it('--packed turns it on; off, the config does not say it at all', () => {
    expect(parseCompileFlags({ packed: true })).to.deep.equal({ packed: true });
    expect(parseCompileFlags({})).to.deep.equal({});
    expect(resolveConfig({}, { packed: true }).packed).to.equal(true);
    expect('packed' in resolveConfig({}, {})).to.equal(false);
    expect('packed' in resolveConfig({ packed: true }, { packed: false })).to.equal(false);
  });

  it('fpdtc check --packed runs the windows against their documents and says how many', () => {
    const r = runCli(['check', 'tiny-llama', '--packed', '--orders', '1', '--seed', '4']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^tiny-llama: seq 96, sp 2, chunk 24, .*packed \(\d+ documents, each also run on its own; \d+ instructions of blocks without a shared document skipped\)/);
    expect(r.stdout).to.match(/max relative error \S+: ok \(limit 1\.0e-9\)/);
  });
});
