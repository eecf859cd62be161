import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { UserError } from '../../compiler/errors.js';
import { chromeTrace } from '../../compiler/schedule/export-trace.js';
import { parseTrace, readTrace } from '../../compiler/schedule/read-trace.js';
import type { Span } from '../../compiler/schedule/simulate.js';

const spans: Span[] = [
  { stream: 'compute', op: 'linear', id: 'i1', start: 0, end: 0.002, layer: 0 },
  { stream: 'd2h', op: 'copy', id: 'i2', start: 0.001, end: 0.004 },
  { stream: 'comm', op: 'all_to_all', id: 'i3', start: 0.004, end: 0.005 },
];

describe('schedule/read-trace', () => {
  let dir = '';
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'fpdtc-trace-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads back the spans export-trace writes, per rank, plain or gzipped', () => {
    const text = JSON.stringify(chromeTrace([{ rank: 1, spans }, { rank: 0, spans: spans.slice(0, 1) }], { model: 'm' }));
    const plain = join(dir, 't.json');
    const gz = join(dir, 't.json.gz');
    writeFileSync(plain, text);
    writeFileSync(gz, gzipSync(text));
    for (const t of [readTrace(plain), readTrace(gz)]) {
      expect(t.otherData.model).to.equal('m');
      expect(t.ranks.map((r) => r.rank)).to.deep.equal([0, 1]);
      const back = t.ranks[1].spans;
      expect(back.map((s) => [s.stream, s.op, s.id])).to.deep.equal(spans.map((s) => [s.stream, s.op, s.id]));
      back.forEach((s, k) => {
        expect(s.start).to.be.closeTo(spans[k].start, 1e-12);
        expect(s.end).to.be.closeTo(spans[k].end, 1e-12);
      });
    }
  });

  it('says what to pass when the file is not a trace', () => {
    const cases: [string, RegExp][] = [
      ['{', /not JSON/],
      ['{"traceEvents": 3}', /no traceEvents array/],
      ['{"traceEvents": []}', /no complete \(X\) events/],
      ['{"traceEvents": [{"ph": "X", "name": "a", "pid": 0, "tid": 9, "ts": 0, "dur": 1}]}', /thread 9, which names no stream/],
      ['{"traceEvents": [{"ph": "X", "name": "a", "pid": 0, "tid": 0, "ts": "0"}]}', /without numeric pid, tid, ts, dur/],
    ];
    for (const [text, why] of cases) {
      expect(() => parseTrace(text, 'x.json'))
        .to.throw(UserError, why)
        .with.property('message')
        .that.match(/^cannot read x\.json as a trace .*'fpdtc run --trace FILE'/);
    }
    expect(() => readTrace(join(dir, 'missing.json'))).to.throw(UserError, /ENOENT/);
  });
});
