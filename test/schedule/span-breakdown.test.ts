import { expect } from 'chai';
import { readTrace } from '../../compiler/schedule/read-trace.js';
import type { Span } from '../../compiler/schedule/simulate.js';
import { breakdownSpans } from '../../compiler/schedule/span-breakdown.js';
import type { StreamName } from '../../compiler/schedule/types.js';

const span = (stream: StreamName, op: string, start: number, end: number): Span => ({ stream, op, id: op, start, end });

/** Exposed copy time the slow way: over every interval between two span edges, copy busy and compute idle. */
function exposedBySweep(spans: readonly Span[]): number {
  const edges = [...new Set(spans.flatMap((s) => [s.start, s.end]))].sort((a, b) => a - b);
  let t = 0;
  for (let k = 0; k + 1 < edges.length; k++) {
    const mid = (edges[k] + edges[k + 1]) / 2;
    const on = (st: (s: StreamName) => boolean) => spans.some((s) => st(s.stream) && s.start <= mid && mid < s.end);
    if (on((s) => s === 'h2d' || s === 'd2h') && !on((s) => s === 'compute')) t += edges[k + 1] - edges[k];
  }
  return t;
}

describe('schedule/span-breakdown', () => {
  it('counts copy time with compute idle as exposed, both directions at once only once', () => {
    const b = breakdownSpans([
      span('compute', 'linear', 0, 4),
      span('h2d', 'copy', 1, 3), // hidden
      span('h2d', 'copy', 3, 6), // 2 exposed
      span('d2h', 'copy', 5, 7), // 5..6 already counted, 1 more
      span('compute', 'add', 7, 8),
      span('comm', 'all_to_all', 8, 9), // exposed comm
    ]);
    expect(b.stepSeconds).to.equal(9);
    expect(b.computeSeconds).to.equal(5);
    expect(b.copySeconds).to.equal(6);
    expect(b.exposedCopySeconds).to.equal(3);
    expect(b.exposedCommSeconds).to.equal(1);
    expect(b.ops.map((o) => [o.kind, o.count, o.seconds])).to.deep.equal([
      ['copy h2d', 2, 5],
      ['linear', 1, 4],
      ['copy d2h', 1, 2],
      ['add', 1, 1],
      ['all_to_all', 1, 1],
    ]);
  });

  it('gives a measured trace the same exposed copy time as a sweep over its edges', () => {
    const t = readTrace('test/fixtures/traces/llama1b-64K-head.trace.json.gz');
    const spans = t.ranks[0].spans;
    expect(spans).to.have.length(900);
    const b = breakdownSpans(spans);
    expect(b.exposedCopySeconds).to.be.closeTo(exposedBySweep(spans), 1e-12);
    expect(b.exposedCopySeconds).to.be.above(0);
    expect(b.copySeconds).to.be.above(b.exposedCopySeconds);
    const kinds = new Set(b.ops.map((o) => o.kind));
    for (const k of ['copy h2d', 'copy d2h', 'attn_fwd_block', 'linear', 'all_to_all']) expect(kinds).to.include(k);
  });
});
