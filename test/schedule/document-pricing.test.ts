// Attention priced for a known document layout (schedule/document-pricing.ts): the pair counts
// against brute force, a window of one document against the full-causal prediction, 32 equal
// documents against a figure computed here, and the instructions not issued against the float64
// executor, which skips them as the GPU program does.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareDocuments, formatDocuments, readWindowLayout } from '../../compiler/cli/inspect-documents.js';
import { reportError } from '../../compiler/cli/report-error.js';
import { UserError } from '../../compiler/errors.js';
import { executeStep, prepareExecution } from '../../compiler/reference/executor.js';
import { initParams } from '../../compiler/reference/init.js';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { attentionWork, blockPairs, chunksMeet, documentLayout, documentPricing, type DocumentLayout } from '../../compiler/schedule/document-pricing.js';
import { planMemory } from '../../compiler/schedule/memory.js';
import { simulateStreams } from '../../compiler/schedule/simulate.js';
import { graphOf, scheduleOf, syncedSchedule } from '../lower/helpers.js';

/** Per token, its document's id. */
function idsOf(layout: DocumentLayout): Int32Array {
  const ids = new Int32Array(layout.seq);
  layout.starts.forEach((a, d) => ids.fill(d, a));
  return ids;
}

/** Pairs of the block (q, kv) in the same document, keys not after queries when causal: one by one. */
function brutePairs(ids: Int32Array, C: number, q: number, kv: number, causal: boolean): number {
  let n = 0;
  for (let t = q * C; t < (q + 1) * C; t++) for (let s = kv * C; s < (kv + 1) * C; s++) if (ids[t] === ids[s] && (!causal || s <= t)) n++;
  return n;
}

describe('schedule/document-pricing', () => {
  it('counts the pairs that share a document, per block, as brute force does (documents across chunk edges)', () => {
    const C = 16;
    const seq = 6 * C;
    for (const starts of [[0], [5, 16, 17, 40, 41, 42, 90], [8, 24, 56], [1, 2, 3, 4, 5, 6, 7, 8, 70], [47, 48, 49]]) {
      const layout = documentLayout(seq, starts);
      const ids = idsOf(layout);
      for (let q = 0; q < 6; q++)
        for (let kv = 0; kv <= q; kv++) {
          const causal = q === kv;
          expect(blockPairs(layout, C, q, kv, causal), `${starts} block (${q}, ${kv})`).to.equal(brutePairs(ids, C, q, kv, causal));
          // chunks meet exactly when their id ranges overlap (reference/documents-meet.ts)
          const meet = ids[q * C] <= ids[kv * C + C - 1] && ids[kv * C] <= ids[q * C + C - 1];
          expect(chunksMeet(layout, C, q, kv)).to.equal(meet);
        }
    }
  });

  it('a document spanning a chunk edge: the block below the diagonal runs with that document\'s rows only', () => {
    const C = 64;
    // chunk 0: [0, 32) and the head of [32, 96); chunk 1: its tail and [96, 128)
    const layout = documentLayout(2 * C, [0, 32, 96]);
    expect(chunksMeet(layout, C, 1, 0)).to.equal(true);
    expect(blockPairs(layout, C, 1, 0, false)).to.equal(32 * 32);
    expect(blockPairs(layout, C, 0, 0, true)).to.equal((32 * 33) / 2 + (32 * 33) / 2);
    expect(blockPairs(layout, C, 1, 1, true)).to.equal((32 * 33) / 2 + (32 * 33) / 2);
    // the edge between documents on the chunk edge: nothing shared
    expect(chunksMeet(documentLayout(2 * C, [64]), C, 1, 0)).to.equal(false);
  });

  it('reads starts as a window: 0 and starts past the window change nothing; they must ascend', () => {
    expect(documentLayout(100, [0, 10, 100, 250]).starts).to.deep.equal([0, 10]);
    expect(documentLayout(100, [10]).starts).to.deep.equal([0, 10]);
    expect(() => documentLayout(100, [10, 10])).to.throw(/must ascend/);
  });

  it('prices a window of one document exactly as the full-causal prediction', () => {
    const s = scheduleOf('tiny-llama', { packed: true, sp: 2, seq: 96, chunk: 24 });
    const dev = deviceProfile('h200');
    const one = documentPricing(s, documentLayout(96, [0]));
    const full = simulateStreams(s, dev, { spans: false });
    const priced = simulateStreams(s, dev, { spans: false, documents: one });
    expect(priced.stepSeconds).to.equal(full.stepSeconds);
    expect(priced.ops).to.deep.equal(full.ops);
    expect(priced.skipped).to.equal(0);
    const w = attentionWork(s, one);
    expect(w.flops).to.equal(w.fullFlops);
    expect(w.blocksRun).to.equal(w.blocks);
  });

  it('prices 32 equal documents at about 1/32 of full causal attention (8 chunks; the figure computed here)', () => {
    const seq = 256;
    const C = 32;
    const u = seq / C;
    const s = scheduleOf('tiny-llama', { packed: true, sp: 1, seq, chunk: C });
    const n = seq / 32;
    const layout = documentLayout(seq, Array.from({ length: 32 }, (_, k) => k * n));
    const w = attentionWork(s, documentPricing(s, layout));
    // each diagonal block keeps its 4 documents' triangles of its own triangle, C(C+1)/2 pairs;
    // no two chunks share a document, so every block off the diagonal is skipped
    const diagShare = (4 * (n * (n + 1)) / 2) / ((C * (C + 1)) / 2);
    // blocks per layer and direction: u on the diagonal at half the flops of the u(u-1)/2 below it
    const expected = w.fullFlops * ((u * 0.5 * diagShare) / (u * 0.5 + (u * (u - 1)) / 2));
    expect(w.flops).to.be.closeTo(expected, 1e-6 * expected);
    expect(w.flops / w.fullFlops).to.be.within(1 / 32, 1.15 / 32);
    expect(w.blocksRun / w.blocks).to.equal(u / (u + (u * (u - 1)) / 2));
    // the simulator issues and prices the same (tiny-llama has 2 layers: simulated whole)
    const dev = deviceProfile('h200');
    const priced = simulateStreams(s, dev, { spans: false, documents: documentPricing(s, layout) });
    const full = simulateStreams(s, dev, { spans: false });
    expect(priced.skipped).to.equal(w.skipped);
    expect(priced.ops.attn_fwd_block.count + priced.ops.attn_bwd_block.count).to.equal(w.blocksRun);
    expect(priced.stepSeconds).to.be.below(full.stepSeconds);
  });

  it('does not issue what the float64 executor skips for the same documents (sp 2, offloaded)', function () {
    this.timeout(20_000);
    const g = graphOf('tiny-llama', { packed: true, sp: 2, seq: 96, chunk: 24 });
    const s = syncedSchedule(g);
    // chunk 0 shares a document with chunk 1, chunk 1 with chunk 2; chunk 3 is on its own
    const layout = documentLayout(96, [10, 30, 50, 72, 80]);
    const docs = idsOf(layout);
    const tokens = Int32Array.from({ length: 96 }, (_, t) => (7 * t) % 50);
    const labels = Int32Array.from({ length: 96 }, (_, t) => (t + 1 < 96 && docs[t + 1] === docs[t] ? tokens[t + 1] : -1));
    const positions = Int32Array.from({ length: 96 }, (_, t) => t - layout.starts[docs[t]]);
    const run = executeStep(prepareExecution(s, planMemory(s, deviceProfile(s.config.device))), { params: initParams(g, 3), tokens, labels, positions, docs }, { order: 'program' });
    const w = attentionWork(s, documentPricing(s, layout));
    expect(w.skipped).to.be.greaterThan(0);
    // every rank of the group skips the same: the executor counts over both
    expect(run.skipped).to.equal(s.world * w.skipped);
  });
});

describe('fpdtc inspect --documents', () => {
  let dir = '';
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'fpdtc-docs-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const s = scheduleOf('tiny-llama', { packed: true, sp: 1, seq: 256, chunk: 32 });

  it('prints the step for the layout beside the full-causal one, per op kind', async () => {
    const path = join(dir, 'docs.txt');
    writeFileSync(path, Array.from({ length: 32 }, (_, k) => k * 8).join('\n'));
    const layout = await readWindowLayout(dir, s, path);
    expect(layout.starts).to.have.length(32);
    const text = formatDocuments(compareDocuments(s, layout, path)).join('\n');
    expect(text).to.match(/^timeline per rank for the documents of .*docs\.txt \(its first window, tokens 0\.\.255: 32 documents, longest 8, mean 8\)/);
    expect(text).to.match(/\n {2}step time\s+[\d.]+ ms\s+[\d.]+ ms\s+0\.\d+\n/);
    expect(text).to.match(/\n {2}attn_fwd_block\s+16 of 72\s+/);
    expect(text).to.match(/\n {2}\d+ instructions not issued/);
  });

  it('refuses a bad file, or a program compiled without --packed, in one line (exit 2)', async () => {
    const cases: [string, string, RegExp][] = [
      ['down.txt', '0 5 3', /^error: --documents: .*down\.txt: entry 3 \(3\) does not come after entry 2 \(5\); write one start offset/],
      ['word.txt', '0 x', /^error: --documents: .*word\.txt: entry 2 'x' is not a whole number/],
      ['empty.txt', ' \n', /^error: --documents: .*empty\.txt: lists no document start/],
    ];
    for (const [name, text, want] of cases) {
      writeFileSync(join(dir, name), text);
      const e = await readWindowLayout(dir, s, join(dir, name)).then(() => undefined, (x: unknown) => x);
      expect(e).to.be.instanceOf(UserError);
      expect((e as UserError).exitCode).to.equal(2);
      expect((e as UserError).line()).to.match(want);
      expect((e as UserError).line()).to.not.include('\n');
    }
    const missing = await readWindowLayout(dir, s, join(dir, 'nope.txt')).then(() => undefined, (x: unknown) => x);
    expect((missing as UserError).line()).to.match(/nope\.txt: cannot be read \(ENOENT\); check the --documents path$/);
    const plain = scheduleOf('tiny-llama', { sp: 1, seq: 256, chunk: 32 });
    const e = await readWindowLayout(dir, plain, join(dir, 'down.txt')).then(() => undefined, (x: unknown) => x);
    expect((e as UserError).line()).to.match(/^error: --documents: .* was compiled without --packed/);
    const stderr = process.stderr.write;
    let printed = '';
    process.stderr.write = ((x: string) => ((printed += x), true)) as typeof process.stderr.write;
    try {
      expect(reportError(e)).to.equal(2);
    } finally {
      process.stderr.write = stderr;
    }
    expect(printed.trim().split('\n')).to.have.length(1);
  });
});
