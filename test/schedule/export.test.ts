import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { scheduleToDot } from '../../compiler/schedule/export-dot.js';
import { writeScheduleOutputs } from '../../compiler/schedule/export-files.js';
import { parseScheduleJson, scheduleToJson, stringifySchedule } from '../../compiler/schedule/export-json.js';
import { chromeTrace } from '../../compiler/schedule/export-trace.js';
import { planMemory } from '../../compiler/schedule/memory.js';
import { simulateStreams } from '../../compiler/schedule/simulate.js';
import { fpdtLike } from './fixtures.js';

describe('schedule/export', () => {
  const s = fpdtLike();
  const dev = deviceProfile('h200');

  it('schedule.json round-trips the IR and carries the plan', () => {
    const plan = planMemory(s, dev);
    const j = scheduleToJson(s, plan);
    expect(j.format).to.equal('fpdtc.schedule');
    expect(j.version).to.equal(4);
    expect(j.memory).to.deep.equal({ gpuBytes: plan.gpu.size, hostBytes: plan.host.size, commScratchBytes: plan.comm.scratch, commLibraryBytes: plan.comm.library });
    expect(j.streams).to.deep.equal(['compute', 'h2d', 'd2h', 'comm']);
    const kv = j.buffers.find((b) => b.id === 'kv')!;
    expect(kv.bytes).to.equal(2 * 1024 * 512 * 2);
    expect(kv.offset).to.be.a('number');
    expect(j.body[0].kind).to.equal('loop');
    expect(parseScheduleJson(stringifySchedule(s, plan))).to.deep.equal(JSON.parse(JSON.stringify(s)));
  });

  it('schedule.json errors are one line for people', () => {
    expect(() => parseScheduleJson('{', 'out/x/schedule.json')).to.throw(/not JSON/);
    expect(() => parseScheduleJson('{"format":"fpdtc.schedule","version":0}')).to.throw(/version 0; this fpdtc reads version 4: compile again/);
  });

  it('trace.json is a Chrome trace: metadata per rank and stream, X spans in microseconds', () => {
    const t = simulateStreams(s, dev);
    const tr = JSON.parse(JSON.stringify(chromeTrace([{ rank: 0, spans: t.spans }, { rank: 1, spans: t.spans.slice(0, 3) }])));
    expect(tr.displayTimeUnit).to.equal('ms');
    const meta = tr.traceEvents.filter((e: { ph: string }) => e.ph === 'M');
    expect(meta.filter((e: { name: string }) => e.name === 'thread_name').map((e: { pid: number; args: { name: string } }) => `${e.pid}:${e.args.name}`)).to.deep.equal([
      '0:compute', '0:h2d', '0:d2h', '0:comm', '1:compute', '1:h2d', '1:d2h', '1:comm',
    ]);
    const xs = tr.traceEvents.filter((e: { ph: string }) => e.ph === 'X');
    expect(xs).to.have.length(t.spans.length + 3);
    for (const e of xs) {
      expect(e).to.include.keys('name', 'ts', 'dur', 'pid', 'tid', 'cat');
      expect(e.dur).to.be.at.least(0);
    }
    const block = xs.find((e: { name: string }) => e.name === 'attn_fwd_block');
    expect(block.args).to.include.keys('layer', 'chunk', 'kv');
    expect(block.ts).to.be.closeTo(t.spans.find((x) => x.op === 'attn_fwd_block')!.start * 1e6, 1e-6);
  });

  it('schedule.dot has a cluster per stream, stream-order and event edges', () => {
    const dot = scheduleToDot(s);
    expect(dot).to.match(/^digraph "fpdt-like" \{/);
    for (const st of ['compute', 'h2d', 'd2h']) expect(dot).to.include(`subgraph cluster_${st}`);
    expect(dot).to.not.include('cluster_comm');
    expect(dot).to.match(/-> n\d+ \[style=dashed, label="kv_ready\[0\]"/);
    expect(dot).to.match(/-> n\d+ \[style=dashed, label="kv_made"/);
    // one layer, two chunks: forward kv blocks 1 + 2, backward blocks 2
    expect(dot.match(/attn_fwd_block/g)).to.have.length(3);
    expect(dot.match(/attn_bwd_block/g)).to.have.length(2);
    expect(dot.split('{').length).to.equal(dot.split('}').length);
  });

  it('writes schedule.json, schedule.dot and trace.json', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fpdtc-export-'));
    try {
      const paths = writeScheduleOutputs(dir, { schedule: s, plan: planMemory(s, dev), timeline: simulateStreams(s, dev) });
      expect(paths.map((p) => p.slice(dir.length + 1))).to.deep.equal(['schedule.json', 'schedule.dot', 'trace.json']);
      expect(JSON.parse(readFileSync(join(dir, 'trace.json'), 'utf8')).traceEvents.length).to.be.above(10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
