// `fpdtc run --trace`: the measured step as a Chrome trace with the tracks of the predicted
// trace.json. Synthetic events of a compiled tiny model stand for a GPU's: each instruction the
// step issues, in issue order, one after another on its stream. The program's table of traced
// instructions (program.cu) must number them as the trace reader does; --trace's folder is
// checked before the GPU, as --metrics's is.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRunInputs } from '../../compiler/cli/run.js';
import { compile } from '../../compiler/compile.js';
import { tracedInstrs } from '../../compiler/codegen/host-body.js';
import { loadCompiled } from '../../compiler/codegen/host-files.js';
import { renderHostProgram } from '../../compiler/codegen/host-program.js';
import type { ChromeTrace, TraceEvent } from '../../compiler/schedule/export-trace.js';
import { STREAMS, type Schedule } from '../../compiler/schedule/types.js';
import { unroll } from '../../compiler/schedule/unroll.js';
import { measuredTrace, type MeasuredEvent } from '../../compiler/train/measured-trace.js';
import { failsWithOneLine } from '../inputs/helpers.js';

/** What a GPU would report: every instruction issued, in order, serial on its stream (ms from the step's start). */
function syntheticEvents(s: Schedule, rank = 0): MeasuredEvent[] {
  const index = new Map(tracedInstrs(s.body).map((it, i) => [it, i]));
  const free = [0, 0, 0, 0];
  const out: MeasuredEvent[] = [];
  let issued = 0;
  for (const d of unroll(s, { rank })) {
    if (d.kind !== 'instr') continue;
    const stream = STREAMS.indexOf(d.item.stream);
    // a little gap after the stream's last instruction, and a duration that varies
    const startMs = free[stream] + 0.001;
    const endMs = startMs + 0.01 + (issued++ % 7) * 0.003;
    free[stream] = endMs;
    out.push({ instr: index.get(d.item)!, id: d.item.id, op: d.item.op, stream, startMs, endMs });
  }
  return out;
}

const spans = (t: ChromeTrace) => t.traceEvents.filter((e) => e.ph === 'X');
const meta = (t: ChromeTrace) => t.traceEvents.filter((e) => e.ph === 'M');
const info = { model: 'tiny-llama', step: 3, date: '2026-12-01T00:00:00.000Z', stepMs: 12.5 };

describe('fpdtc run --trace: the measured step as a Chrome trace', function () {
  this.timeout(120_000);
  let root: string;
  let dir: string;
  let s: Schedule;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'fpdtc-measured-trace-'));
    dir = (await compile('tiny-llama', {}, { outDir: join(root, 'out'), typeCheck: false })).modelOutDir;
    s = loadCompiled(dir).schedule;
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("has the predicted trace.json's tracks: a process per rank, a thread per stream", () => {
    const predicted = JSON.parse(readFileSync(join(dir, 'trace.json'), 'utf8')) as ChromeTrace;
    const measured = JSON.parse(JSON.stringify(measuredTrace(s, [{ rank: 0, events: syntheticEvents(s) }], info))) as ChromeTrace;
    expect(meta(measured)).to.deep.equal(meta(predicted));
    expect(measured.displayTimeUnit).to.equal(predicted.displayTimeUnit);
    // both name spans by op, with the instruction's id in args, on the track of its stream
    const ops = new Set(spans(predicted).map((e) => `${e.name} ${e.tid}`));
    expect(spans(measured).filter((e) => ops.has(`${e.name} ${e.tid}`)).length).to.be.greaterThan(spans(measured).length / 2);
    expect(measured.otherData).to.deep.include({ model: 'tiny-llama', source: 'measured on GPU', step: 3, date: info.date, measuredStepSeconds: 0.0125, dropped: 0 });
  });

  it('gives every instruction issued, in issue order, its id resolving to the schedule', () => {
    const events = syntheticEvents(s);
    const trace = measuredTrace(s, [{ rank: 0, events }], info);
    const xs = spans(trace);
    expect(xs).to.have.length(events.length);
    const byId = new Map(tracedInstrs(s.body).map((it) => [it.id, it]));
    const dyn = [...unroll(s, { rank: 0 })].filter((d) => d.kind === 'instr');
    const lastOnTrack = new Map<number, number>();
    xs.forEach((e: TraceEvent, k) => {
      const it = byId.get(String(e.args!.id))!;
      expect(it, `event ${k}`).to.not.equal(undefined);
      expect(e.args!.id).to.equal(dyn[k].item.id);
      expect([e.name, e.args!.op, e.cat, e.tid, e.pid]).to.deep.equal([it.op, it.op, it.stream, STREAMS.indexOf(it.stream), 0]);
      expect(e.ts).to.be.closeTo(events[k].startMs * 1e3, 1e-6);
      expect(e.dur).to.be.closeTo((events[k].endMs - events[k].startMs) * 1e3, 1e-6);
      // a stream runs one instruction at a time: its track's events follow one another
      expect(e.ts!).to.be.at.least(lastOnTrack.get(e.tid) ?? 0);
      lastOnTrack.set(e.tid, e.ts! + e.dur!);
    });
    // the loop indices come from walking the schedule's loops: each layer's instructions say which
    const blocks = xs.filter((e) => e.name === 'attn_fwd_block');
    expect(blocks.length).to.be.greaterThan(1);
    for (const b of blocks) expect(b.args).to.include.keys('layer', 'chunk');
    expect(new Set(blocks.map((b) => b.args!.layer)).size).to.equal(s.layers);
    // one instruction of a loop, several events: its iterations share the program's index
    expect(new Set(xs.map((e) => e.args!.instr)).size).to.equal(tracedInstrs(s.body).length);
  });

  it("the program's table numbers instructions as the trace reader does", () => {
    const program = renderHostProgram(loadCompiled(dir)).find((f) => f.file === 'program.cu')!.text;
    const table = [...program.slice(program.indexOf('TRACED[FPDT_TRACED] = {')).matchAll(/^ {2}\{"(\w+)", (\d+)\},$/gm)].map((m) => m[1]);
    const traced = tracedInstrs(s.body);
    expect(table).to.deep.equal(traced.map((it) => it.id));
    // each FPDT_PROF pair brackets the calls of the instruction its index names, on its stream
    // the phases' functions (zero, micro, update) in issue order
    const issue = program.slice(program.indexOf('static int issue_zero'));
    let open: number | undefined;
    let pairs = 0;
    let named = 0;
    for (const line of issue.split('\n')) {
      const m = /FPDT_PROF\((\d), (\d+), (\d+), ([01])\);/.exec(line);
      if (m) {
        const [st, n, end] = [Number(m[1]), Number(m[3]), m[4] === '1'];
        expect(STREAMS[st], traced[n].id).to.equal(traced[n].stream);
        if (end) {
          expect(n).to.equal(open);
          open = undefined;
          pairs++;
        } else open = n;
      } else if (open !== undefined) {
        const where = /, "(\w+) (\w+)"\);$/.exec(line);
        if (where) {
          expect([where[1], where[2]]).to.deep.equal([traced[open].id, traced[open].op]);
          named++;
        }
      }
    }
    expect(pairs).to.equal(traced.length);
    expect(named).to.be.greaterThan(traced.length / 2);
  });

  it('says in its metadata how many instructions were left untimed, and takes one process per rank', () => {
    const events = syntheticEvents(s);
    const cut = measuredTrace(s, [{ rank: 0, events: events.slice(0, 10) }], info);
    expect(spans(cut)).to.have.length(10);
    expect(cut.otherData).to.deep.include({ instructions: events.length, events: 10, dropped: events.length - 10 });
    expect(String(cut.otherData!.droppedNote)).to.match(/first 65536 instructions of a step/);
    const two = measuredTrace(s, [{ rank: 0, events }, { rank: 1, events: syntheticEvents(s, 1) }], info);
    expect(meta(two).filter((e) => e.name === 'process_name').map((e) => e.args!.name)).to.deep.equal(['rank 0', 'rank 1']);
    expect(new Set(spans(two).map((e) => e.pid))).to.deep.equal(new Set([0, 1]));
  });

  it('refuses events that are not of this schedule, naming the event', () => {
    const events = syntheticEvents(s);
    const swapped = [events[1], events[0], ...events.slice(2)];
    expect(() => measuredTrace(s, [{ rank: 0, events: swapped }], info)).to.throw(/^--trace: event 0 of rank 0 is instruction \d+ of the program, where the schedule issues i\d+ .*the build is not of this schedule.json/);
    const renamed = [{ ...events[0], id: 'i9999' }, ...events.slice(1)];
    expect(() => measuredTrace(s, [{ rank: 0, events: renamed }], info)).to.throw(/event 0 of rank 0 names i9999/);
    expect(() => measuredTrace(s, [{ rank: 0, events: [...events, events[0]] }], info)).to.throw(/is past the \d+ instructions the schedule issues/);
  });

  it('--trace needs a writable folder, checked with the other inputs before the GPU', async () => {
    const check = (o: object) => failsWithOneLine(() => checkRunInputs(dir, { steps: 1, gpus: 2, launching: true, ...o }));
    const nowhere = join(root, 'nowhere', 't.json');
    expect(await check({ trace: nowhere })).to.equal(`error: cannot write ${nowhere}: its folder ${join(root, 'nowhere')} does not exist; create it first`);
    mkdirSync(join(root, 'a-folder'));
    expect(await check({ trace: join(root, 'a-folder') })).to.match(/a-folder: it is not a file; pass a file path for --trace$/);
    await checkRunInputs(dir, { steps: 1, gpus: 2, launching: true, trace: join(root, 't.json') });
  });
});
