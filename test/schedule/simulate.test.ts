import { expect } from 'chai';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { collectiveSeconds, copySeconds, instrSeconds } from '../../compiler/schedule/cost.js';
import { modelFlopsPerStep, simulateStreams, simulateWindow, walkWindow } from '../../compiler/schedule/simulate.js';
import { unroll } from '../../compiler/schedule/unroll.js';
import { fpdtLike, instr, loop, record, ref, roundDevice, scheduleOf, wait, buffer } from './fixtures.js';
import { v } from '../../compiler/schedule/types.js';

const ms = 1e-3;
const close = (x: number, y: number) => expect(x).to.be.closeTo(y, 1e-12);
const bufs = [buffer('a', 'gpu', 'chunk', [1 << 20]), buffer('b', 'gpu', 'chunk', [1 << 20]), buffer('h', 'host', 'stash', [1 << 20])];

/** A fetch of `fetchMs` on h2d beside 2 ms of unrelated compute, then a 1 ms kernel reading it. */
function fetchBesideCompute(fetchMs: number, withWait: boolean) {
  return scheduleOf(
    [
      instr('h2d', 'copy', [ref('h', 0, 8)], [ref('a', 0, 8)], { attrs: { dir: 'h2d' }, bytes: 2 * fetchMs * 1e6 }),
      record('h2d', 'ready'),
      instr('compute', 'linear', [ref('b', 0, 8)], [ref('b', 0, 8)], { flops: 2e9 }),
      ...(withWait ? [wait('compute', 'ready')] : []),
      instr('compute', 'linear', [ref('a', 0, 8)], [ref('b', 0, 8)], { flops: 1e9 }),
    ],
    bufs,
    { ready: 1 },
  );
}

describe('schedule/cost', () => {
  it('prices kernels, copies and collectives by their formulas', () => {
    const dev = roundDevice({ kernelOverheadS: 1e-6 });
    close(instrSeconds(instr('compute', 'linear', [], [], { flops: 1e9, bytes: 1 }), dev, { world: 1 }), 1 * ms + 1e-6);
    close(instrSeconds(instr('compute', 'add', [], [], { flops: 1e12, bytes: 1e9 }), dev, { world: 1 }), 1 * ms + 1e-6);
    close(copySeconds(1e6, 'h2d', dev), 1 * ms);
    // an instruction's bytes count its reads and writes: a copy of 1 MB counts 2 MB and moves 1 MB
    close(instrSeconds(instr('h2d', 'copy', [], [], { attrs: { dir: 'h2d' }, bytes: 2e6 }), dev, { world: 1 }), 1 * ms);
    close(copySeconds(1e6, 'd2d', dev), 2e6 / 1e12 + 1e-6);
    close(collectiveSeconds('all_to_all', 4e6, 4, dev), 3 * ms);
    close(collectiveSeconds('all_reduce', 4e6, 4, dev), 6 * ms);
    close(collectiveSeconds('all_gather', 4e6, 1, dev), 0);
    // one rank: the all-to-all's layout change is a device copy (reads and writes the buffer)
    close(collectiveSeconds('all_to_all', 1e9, 1, dev), 2e9 / (dev.elementwiseBps?.default ?? dev.hbmBps) + 1e-6);
  });
  it('slows a copy while the other direction shares the link (hand-written h200: 110.8/99.4)', () => {
    const h200 = deviceProfile('h200', { calibration: false });
    const alone = copySeconds(1e9, 'h2d', h200) - h200.copyOverheadS;
    const shared = copySeconds(1e9, 'h2d', h200, 1) - h200.copyOverheadS;
    expect(shared / alone).to.be.closeTo((55.5 + 55.3) / 99.4, 1e-9);
  });
});

describe('schedule/simulate', () => {
  const dev = roundDevice();
  it('hides a fetch behind compute', () => {
    const t = simulateWindow(fetchBesideCompute(1, true), dev);
    close(t.stepSeconds, 3 * ms);
    close(t.exposedCopySeconds, 0);
    close(t.busySeconds.h2d, 1 * ms);
  });
  it('exposes the part of a fetch that compute cannot hide', () => {
    const t = simulateWindow(fetchBesideCompute(3, true), dev);
    close(t.stepSeconds, 4 * ms);
    close(t.exposedCopySeconds, 1 * ms);
    expect(t.spans.map((s) => [s.stream, s.start / ms, s.end / ms])).to.deep.equal([
      ['h2d', 0, 3],
      ['compute', 0, 2],
      ['compute', 3, 4],
    ]);
  });
  it('a missing wait lets the reader run early', () => {
    const t = simulateWindow(fetchBesideCompute(3, false), dev);
    close(t.stepSeconds, 3 * ms);
    close(t.exposedCopySeconds, 0);
    close(t.spans[2].start, 2 * ms);
  });
  it('blames a wait on what held the stream before an instruction of no time (a collective over one rank)', () => {
    const s = scheduleOf(
      [
        instr('h2d', 'copy', [ref('h', 0, 8)], [ref('a', 0, 8)], { attrs: { dir: 'h2d' }, bytes: 6e6 }),
        record('h2d', 'ready'),
        wait('comm', 'ready'),
        instr('comm', 'all_gather', [ref('a', 0, 8)], [ref('b', 0, 8)], { attrs: { ranks: 1, n: 8 }, bytes: 8 }),
        record('comm', 'gathered'),
        wait('compute', 'gathered'),
        instr('compute', 'linear', [ref('b', 0, 8)], [ref('b', 0, 8)], { flops: 1e9 }),
      ],
      bufs,
      { ready: 1, gathered: 1 },
    );
    const t = simulateWindow(s, dev);
    close(t.stepSeconds, 4 * ms);
    close(t.exposedCopySeconds, 3 * ms);
    close(t.exposedCommSeconds, 0);
  });
  it('a wait before any record is a no-op', () => {
    const s = scheduleOf([wait('compute', 'never'), instr('compute', 'linear', [], [], { flops: 1e9 })], bufs, { never: 1 });
    close(simulateWindow(s, dev).stepSeconds, 1 * ms);
  });
  it('pipelines a double-buffered kv loop (fetch 1 ms, block 2 ms, 4 blocks)', () => {
    const s = scheduleOf(
      [
        loop('j', 0, 4, 'kv', [
          wait('h2d', 'free', v('j')),
          instr('h2d', 'copy', [ref('h', v('j', 8), 8)], [ref('a', 0, 8, v('j'))], { attrs: { dir: 'h2d' }, bytes: 2e6 }),
          record('h2d', 'ready', v('j')),
          wait('compute', 'ready', v('j')),
          instr('compute', 'attn_fwd_block', [ref('a', 0, 8, v('j'))], [ref('b', 0, 8)], { flops: 2e9 }),
          record('compute', 'free', v('j')),
        ]),
      ],
      [buffer('a', 'gpu', 'chunk', [8], 2), bufs[1], bufs[2]],
      { ready: 2, free: 2 },
    );
    const t = simulateWindow(s, dev);
    // fetches 0-1, 1-2, 3-4, 5-6 (slot reuse waits for block j-2); blocks 1-3, 3-5, 5-7, 7-9
    close(t.stepSeconds, 9 * ms);
    close(t.exposedCopySeconds, 1 * ms);
    expect(t.spans.filter((x) => x.stream === 'h2d').map((x) => x.start / ms)).to.deep.equal([0, 1, 3, 5]);
    expect(t.spans.filter((x) => x.stream === 'h2d').map((x) => x.kv)).to.deep.equal([0, 1, 2, 3]);
  });
  it('extrapolates layers from the last simulated iteration of each layer loop', () => {
    const full = simulateStreams(fpdtLike({ layers: 2 }), dev);
    const ext = simulateStreams(fpdtLike({ layers: 6 }), dev);
    const one = simulateWindow(fpdtLike({ layers: 6 }), dev, { window: { layer: 1 } });
    expect(ext.extrapolated).to.equal(true);
    close(ext.stepSeconds, full.stepSeconds + 4 * (full.stepSeconds - one.stepSeconds));
    // with no prologue the layers repeat exactly, so the 6-layer step is 6 single layers here
    const exact = simulateStreams(fpdtLike({ layers: 6 }), dev, { window: { layer: 6 } });
    expect(ext.stepSeconds / exact.stepSeconds).to.be.closeTo(1, 0.05);
  });
  it('walks the same items in the same order as unroll, caps included', () => {
    const s = fpdtLike({ layers: 3, chunks: 5 });
    for (const window of [{}, { layer: 1 }, { layer: 2, kv: 2 }]) {
      const ours: string[] = [];
      walkWindow(s, { window }, (it, env) => ours.push(`${it.id}:${JSON.stringify(env)}`));
      const theirs = [...unroll(s, { window })].map((d) => `${d.item.id}:${JSON.stringify(d.env)}`);
      expect(ours).to.deep.equal(theirs);
    }
  });
  it('reports MFU by the ANCHORS convention', () => {
    const s = { ...fpdtLike({ layers: 2 }), world: 2 };
    const m = { params: 1e6, layers: 2, seq: 4096, hidden: 256 };
    const t = simulateStreams(s, dev, { model: m });
    expect(modelFlopsPerStep(m)).to.equal(6 * 1e6 * 4096 + 6 * 2 * 4096 * 4096 * 256);
    close(t.mfu!, modelFlopsPerStep(m) / 2 / (t.stepSeconds * 1e12));
  });
});
