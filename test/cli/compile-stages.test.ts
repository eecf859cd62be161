// compile as one list of stages: the timings name every stage in order, --dump-after takes the
// schedule stages by name, and `fpdtc compile --timings` prints them.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatTimings } from '../../compiler/cli/compile.js';
import { compile } from '../../compiler/compile.js';
import { listSchedule } from '../../compiler/schedule/listing.js';
import { listPlan } from '../../compiler/schedule/plan-listing.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';
import { runCli } from './run-cli.js';

const GRAPH_PASSES = ['verify input', 'shapes', 'autodiff', 'shard', 'chunk', 'offload', 'checkpoint'];
const STAGES = ['load', 'build', ...GRAPH_PASSES, 'lower', 'sync', 'plan', 'hazards', 'simulate', 'offload-compare', 'report', 'write'];

describe('compile stages', () => {
  let out: string;
  before(() => {
    out = makeTempDir('fpdtc-stages-');
  });
  after(() => removeTempDir(out));

  it('times every stage, in the order they ran, the graph passes as one group', async () => {
    const r = await compile('tiny-llama', {}, { outDir: out, typeCheck: false });
    expect(r.timings.stages.map((t) => t.stage)).to.deep.equal(STAGES);
    expect(r.timings.stages.filter((t) => t.group === 'graph passes').map((t) => t.stage)).to.deep.equal(GRAPH_PASSES);
    const sum = r.timings.stages.reduce((a, t) => a + t.seconds, 0);
    expect(sum).to.be.at.most(r.timings.totalSeconds);
    const text = formatTimings(r.timings);
    const names = text.split('\n').slice(1, -1).map((l) => l.trim().replace(/\s+[\d.]+ ms$/, ''));
    expect(names).to.deep.equal(['load', 'build', 'graph passes', ...GRAPH_PASSES, ...STAGES.slice(2 + GRAPH_PASSES.length), 'total']);
  });

  it('--chunk auto adds its search as a stage before the graph is built', async () => {
    const r = await compile('tiny-llama', { chunk: 'auto' }, { write: false, typeCheck: false });
    expect(r.timings.stages.map((t) => t.stage).slice(0, 3)).to.deep.equal(['load', 'auto-chunk', 'build']);
    expect(r.timings.stages.map((t) => t.stage)).to.not.include('write');
  });

  it('--dump-after a schedule stage writes its output, numbered after the graph passes', async () => {
    const r = await compile('tiny-llama', {}, { outDir: out, typeCheck: false, dumpAfter: ['chunk', 'sync', 'plan'] });
    const dir = join(out, 'tiny-llama', 'passes');
    expect(readdirSync(dir).sort()).to.deep.equal(['004_chunk.txt', '008_sync.txt', '009_plan.txt']);
    expect(readFileSync(join(dir, '008_sync.txt'), 'utf8')).to.equal(listSchedule(r.planned!.schedule));
    expect(readFileSync(join(dir, '009_plan.txt'), 'utf8')).to.equal(listPlan(r.planned!.schedule, r.planned!.summary.plan));
  });

  it("--dump-after all writes every graph pass's and schedule stage's dump", async () => {
    await compile('tiny-llama', {}, { outDir: out, typeCheck: false, dumpAfter: ['all'] });
    const files = readdirSync(join(out, 'tiny-llama', 'passes')).sort();
    expect(files).to.deep.equal([
      '000_input.txt',
      '001_shapes.txt',
      '002_autodiff.txt',
      '003_shard.txt',
      '004_chunk.txt',
      '005_offload.txt',
      '006_checkpoint.txt',
      '007_lower.txt',
      '008_sync.txt',
      '009_plan.txt',
      '011_simulate.txt',
    ]);
    expect(readFileSync(join(out, 'tiny-llama', 'passes', '007_lower.txt'), 'utf8')).to.match(/^schedule tiny-llama: .*\n[^]*\nevents: -\n/);
  });

  it('an unknown --dump-after name lists the graph passes and the schedule stages', async () => {
    let err: Error | undefined;
    try {
      await compile('tiny-llama', {}, { write: false, typeCheck: false, dumpAfter: ['hazards'] });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.equal("--dump-after hazards: no pass named 'hazards'; passes: all, input, shapes, autodiff, shard, chunk, offload, checkpoint, lower, sync, plan, simulate");
  });

  it('fpdtc compile --timings prints each stage and the total after the summary', () => {
    const r = runCli(['compile', 'tiny-llama', '--out', out, '--timings', '--dump-after', 'sync']);
    expect(r.stderr).to.equal('');
    expect(r.code).to.equal(0);
    const at = r.stdout.indexOf('\ntimings\n');
    expect(at).to.be.greaterThan(0);
    const rows = r.stdout.slice(at + '\ntimings\n'.length).trimEnd().split('\n');
    expect(rows.map((l) => l.trim().split(/\s{2,}/)[0])).to.deep.equal(['load', 'build', 'graph passes', ...GRAPH_PASSES, ...STAGES.slice(2 + GRAPH_PASSES.length), 'total']);
    for (const l of rows) expect(l).to.match(/ \d+\.\d ms$/);
    expect(readdirSync(join(out, 'tiny-llama', 'passes'))).to.deep.equal(['008_sync.txt']);
  });
});
