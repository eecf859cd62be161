// `fpdtc plot`: a --metrics file in, one SVG out. The library function for parsing, drawing and
// every bad input; the command through commander once, and once as a subprocess (it is wired
// into main.ts, and a bad input exits 1 with one line).
import { expect } from 'chai';
import { Command } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultPlotPath, parseMetrics, plotMetrics, plotSummary, register } from '../../compiler/cli/plot.js';
import { metricsLine } from '../../compiler/train/loop.js';
import type { StepFigures } from '../../compiler/train/report.js';
import { niceAxis, renderMetricsPlot, tickFormatter } from '../../compiler/view/metrics-plot.js';
import { failsWithOneLine } from '../inputs/helpers.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';
import { runCli } from './run-cli.js';

/** Lines as `fpdtc run --metrics` writes them: loss falls 8.6 -> 2.1, lr warms up to 1e-3. */
function metricsText(steps: number, nanAt: readonly number[] = []): string {
  const lines: string[] = [];
  for (let step = 1; step <= steps; step++) {
    const loss = nanAt.includes(step) ? NaN : 8.6 - ((8.6 - 2.1) * (step - 1)) / (steps - 1);
    const figures: StepFigures = { step, loss, tokens: 12288, ms: 1200 + step * 10, mfu: 0.25, peakGpu: 123, plannedGpu: 120 };
    lines.push(metricsLine(figures, Math.min(1e-3, step * 2e-4), new Date(0)));
  }
  return lines.join('\n') + '\n';
}

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;
const panel = (svg: string, id: string) => svg.slice(svg.indexOf(`id="panel-${id}"`)).split('</g>')[0];
const ticks = (g: string, axis: 'x' | 'y') => [...g.matchAll(new RegExp(`class="${axis}-tick"[^>]*>([^<]*)<`, 'g'))].map((m) => m[1]);

describe('fpdtc plot', () => {
  let dir: string;
  before(() => {
    dir = makeTempDir('fpdtc-plot-');
  });
  after(() => removeTempDir(dir));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('parses the lines fpdtc run writes; NaN loss (null in JSON) is a gap', () => {
    const m = parseMetrics(metricsText(6, [3]), 'm.jsonl');
    expect(m.points.map((p) => p.step)).to.deep.equal([1, 2, 3, 4, 5, 6]);
    expect(m.points[0]).to.include({ step: 1, loss: 8.6, lr: 2e-4 });
    expect(m.points[0].tokensPerS).to.be.closeTo(12288 / 1.21, 1e-6);
    expect(m.points[2].loss).to.be.NaN;
    expect(m.nanLoss).to.equal(1);
    expect(m.repeated).to.equal(0);
    // other writers: "NaN" as a string, or Python's bare NaN
    expect(parseMetrics('{"step":1,"loss":"NaN"}\n{"step":2,"loss":NaN,"lr":1e-3}\n', 'm').nanLoss).to.equal(2);
  });

  it('a resumed run repeats steps: the later record wins', () => {
    const text = ['{"step":1,"loss":5}', '{"step":2,"loss":4}', '{"step":3,"loss":3}', '{"step":2,"loss":3.5}', '{"step":3,"loss":2.5}', '{"step":4,"loss":2}'].join('\n');
    const m = parseMetrics(text, 'm');
    expect(m.points.map((p) => [p.step, p.loss])).to.deep.equal([[1, 5], [2, 3.5], [3, 2.5], [4, 2]]);
    expect(m.repeated).to.equal(2);
  });

  it('draws three panels, a path per series, axes with the data\'s ranges', () => {
    const svg = renderMetricsPlot({ points: parseMetrics(metricsText(20), 'm').points, source: 'm.jsonl' });
    expect(svg).to.match(/^<\?xml[^\n]*\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg.trimEnd()).to.match(/<\/svg>$/);
    expect(svg).not.to.match(/<script|href=/); // self-contained
    expect(count(svg, /class="panel"/g)).to.equal(3);
    expect(count(svg, /<path class="series"/g)).to.equal(3);
    for (const title of ['loss', 'throughput', 'learning rate']) expect(svg).to.include(`>${title}<tspan`);
    for (const unit of ['(nats/token)', '(tokens/s)', '(lr)']) expect(svg).to.include(unit);

    const loss = panel(svg, 'loss');
    expect(ticks(loss, 'y')).to.deep.equal(['2', '3', '4', '5', '6', '7', '8', '9']); // 2.1 .. 8.6
    expect(ticks(loss, 'x')).to.deep.equal(['0', '5', '10', '15', '20']); // steps 1 .. 20
    expect(loss).to.include('data-y-min="2" data-y-max="9"');
    const tps = panel(svg, 'tokens-per-s');
    expect(ticks(tps, 'y')).to.deep.equal(['0', '2K', '4K', '6K', '8K', '10K', '12K']); // 8.8K .. 10.1K, from 0
    const lr = panel(svg, 'lr');
    expect(ticks(lr, 'y')).to.deep.equal(['0', '2e-4', '4e-4', '6e-4', '8e-4', '1e-3']); // warmup to 1e-3
    expect(lr).to.include('last 1e-3');
    // one unbroken run of 20 points per series
    const d = (g: string) => /class="series" d="([^"]*)"/.exec(g)![1];
    expect(count(d(loss), /M/g)).to.equal(1);
    expect(count(d(loss), /L/g)).to.equal(19);
  });

  it('a NaN loss breaks the loss line and is marked; other series stay whole', () => {
    const svg = renderMetricsPlot({ points: parseMetrics(metricsText(10, [4, 9]), 'm').points, source: 'm' });
    const d = (id: string) => /class="series" d="([^"]*)"/.exec(panel(svg, id))![1];
    expect(count(d('loss'), /M/g)).to.equal(3); // 1-3, 5-8, 10 (a dot)
    expect(d('loss')).to.match(/h0$/);
    expect(count(d('tokens-per-s'), /M/g)).to.equal(1);
    expect(count(svg, /class="gap"/g)).to.equal(2);
    expect(svg).to.include('2 with loss NaN');
  });

  it('axes: nice bounds, one step, tick labels in one form', () => {
    expect(niceAxis(7, 7, 5, { integer: true })).to.deep.include({ lo: 6, hi: 8, step: 1 });
    expect(niceAxis(0, 3e-4, 5, { integer: false }).ticks).to.deep.equal([0, 5e-5, 1e-4, 1.5e-4, 2e-4, 2.5e-4, 3e-4]);
    expect(niceAxis(0, 3e-4, 5, { integer: false }).ticks.map(tickFormatter(niceAxis(0, 3e-4, 5, { integer: false })))).to.deep.equal(['0', '5e-5', '1e-4', '1.5e-4', '2e-4', '2.5e-4', '3e-4']);
    const a = niceAxis(2.05, 2.4, 5, { integer: false });
    expect(a.ticks.map(tickFormatter(a))).to.deep.equal(['2.0', '2.1', '2.2', '2.3', '2.4']);
    // a series with no values at all: the panel says so, no path
    const svg = renderMetricsPlot({ points: [{ step: 1, loss: 3, lr: NaN, tokensPerS: NaN }], source: 'm' });
    expect(count(svg, /<path class="series"/g)).to.equal(1);
    expect(count(svg, /no values in the file/g)).to.equal(2);
  });

  it('writes FILE.svg by default and says where and how many steps', () => {
    const path = file('run1.jsonl', metricsText(12, [5]) + '{"step":12,"loss":2.0}\n');
    const r = plotMetrics(path);
    expect(r.path).to.equal(join(dir, 'run1.svg'));
    expect(readFileSync(r.path, 'utf8')).to.include('<svg');
    expect(plotSummary(r)).to.equal(`wrote ${join(dir, 'run1.svg')}: 12 steps, 1 with loss NaN drawn as gaps, 1 repeated step (the later record kept)`);
    expect(defaultPlotPath('out/metrics.jsonl')).to.equal('out/metrics.svg');
    expect(defaultPlotPath('runs/a.b/metrics')).to.equal('runs/a.b/metrics.svg');
  });

  it('runs as a subcommand with --out', async () => {
    const path = file('run2.jsonl', metricsText(3));
    const out = join(dir, 'sub', 'pic.svg');
    mkdirSync(join(dir, 'sub'));
    const program = new Command('fpdtc').exitOverride();
    register(program);
    let stdout = '';
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string) => ((stdout += chunk), true)) as typeof process.stdout.write;
    try {
      await program.parseAsync(['plot', path, '--out', out], { from: 'user' });
    } finally {
      process.stdout.write = write;
    }
    expect(stdout).to.equal(`wrote ${out}: 3 steps\n`);
    expect(existsSync(out)).to.equal(true);
  });

  describe('bad input: one line, exit 1', () => {
    const cases: [string, () => string[], string | ((p: string) => string)][] = [
      ['a missing file', () => [join(dir, 'nope.jsonl')], (p) => `error: cannot read ${p} (no such file); pass the file that 'fpdtc run --metrics FILE' wrote`],
      ['an empty file', () => [file('empty.jsonl', '\n\n')], (p) => `${p}: error: the file holds no steps; pass the file that 'fpdtc run --metrics FILE' wrote, after at least one step`],
      [
        'a line that is not JSON',
        () => [file('garbled.jsonl', '{"step":1,"loss":3}\n\n{"step":2,"lo')],
        (p) => `${p}:3: error: not JSON: "{\\"step\\":2,\\"lo"; each line must be one JSON record with step and loss, as 'fpdtc run --metrics' writes them`,
      ],
      ['a record without step', () => [file('nostep.jsonl', '{"step":1,"loss":3}\n{"loss":2}\n')], (p) => `${p}:2: error: the record has no step; each line must be one JSON record with step and loss, as 'fpdtc run --metrics' writes them`],
      ['a record without loss', () => [file('noloss.jsonl', '{"step":1,"lr":0.1}\n')], (p) => `${p}:1: error: the record has no loss; each line must be one JSON record with step and loss, as 'fpdtc run --metrics' writes them`],
      ['a step that is not a whole number', () => [file('badstep.jsonl', '{"step":"1","loss":3}\n')], (p) => `${p}:1: error: step is "1", not a whole number; each line must be one JSON record with step and loss, as 'fpdtc run --metrics' writes them`],
      ['a line that is not a record', () => [file('array.jsonl', '[1, 2]\n')], (p) => `${p}:1: error: not a record: "[1, 2]"; each line must be one JSON record with step and loss, as 'fpdtc run --metrics' writes them`],
      ['an output folder that does not exist', () => [file('ok.jsonl', metricsText(2)), join(dir, 'missing', 'x.svg')], () => `error: cannot write ${join(dir, 'missing', 'x.svg')}: folder ${join(dir, 'missing')} does not exist`],
      ['--out the metrics file itself', () => [file('self.svg', metricsText(2))], (p) => `error: cannot write ${p}: it is the metrics file itself; pass another --out`],
    ];
    for (const [what, args, want] of cases)
      it(what, async () => {
        const [path, out] = args();
        const line = await failsWithOneLine(() => plotMetrics(path, out), what);
        expect(line).to.equal(typeof want === 'string' ? want : want(path));
      });
  });

  it('through bin/fpdtc.js: registered in main, a bad line exits 1 with one line', () => {
    const path = file('cli.jsonl', '{"step":1,"loss":3}\nnot json\n');
    const r = runCli(['plot', path]);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.equal('');
    expect(r.stderr).to.equal(`${path}:2: error: not JSON: "not json"; each line must be one JSON record with step and loss, as 'fpdtc run --metrics' writes them\n`);
  });
});
