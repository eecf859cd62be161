// The library function behind `fpdtc compile`: what it writes and what the report says.
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { graphFromJson } from '../../compiler/ir/json.js';
import { printGraph } from '../../compiler/ir/printer.js';
import { buildReport } from '../../compiler/report.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';

describe('compile', () => {
  let out: string;
  before(() => {
    out = makeTempDir('fpdtc-compile-');
  });
  after(() => removeTempDir(out));

  it('writes the graph, report and schedule files for tiny-llama', async () => {
    const r = await compile('models/tiny-llama.ts', {}, { outDir: out });
    const dir = join(out, 'tiny-llama');
    expect(r.files).to.deep.equal(['graph.txt', 'graph.json', 'report.json', 'schedule.json', 'schedule.dot', 'trace.json'].map((f) => join(dir, f)));
    expect(readFileSync(join(dir, 'graph.txt'), 'utf8')).to.equal(printGraph(r.graph));
    expect(printGraph(graphFromJson(JSON.parse(readFileSync(join(dir, 'graph.json'), 'utf8'))))).to.equal(printGraph(r.graph));
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(report).to.include({ model: 'tiny-llama', tokens: 96, layers: 2 });
    expect(report.params).to.equal(r.report.params);
    expect(report.config).to.include({ seq: 96, sp: 2, chunk: 24, zero: 3 });
    expect(report.passes).to.include('shapes');
  });

  it('overrides the model defaults with flags', async () => {
    const r = await compile('tiny-llama', { seq: 384, sp: 4, chunk: 96, checkpoint: 'gpu' }, { write: false });
    expect(r.report.config).to.include({ seq: 384, sp: 4, chunk: 96, checkpoint: 'gpu' });
    expect(r.graph.sizes.S).to.equal(384);
    expect(r.files).to.deep.equal([]);
  });

  it('leaves the previous outputs whole when a compile fails', async () => {
    const before = readFileSync(join(out, 'tiny-llama', 'report.json'), 'utf8');
    let failed = false;
    try {
      await compile('tiny-llama', { chunk: 25 }, { outDir: out });
    } catch {
      failed = true;
    }
    expect(failed).to.equal(true);
    expect(readFileSync(join(out, 'tiny-llama', 'report.json'), 'utf8')).to.equal(before);
  });

  it('keeps the type-check verdict under <out>/.cache', () => {
    expect(existsSync(join(out, '.cache', 'typecheck'))).to.equal(true);
  });

  it('counts FLOPs by the MFU convention', async () => {
    const { graph, report } = await compile('llama70b', {}, { write: false, typeCheck: false });
    const S = 4 * 1024 ** 2;
    expect(report.tokens).to.equal(S);
    expect(report.flops_per_step).to.equal(6 * report.params * S + 6 * 80 * S * S * 8192);
    expect(buildReport(graph, { memory: { peak: 1 } })).to.deep.include({ memory: { peak: 1 }, model: 'llama70b' });
  });
});
