// The view's data functions, on the fixture schedules and one real compile: what the page draws
// must be what the simulator and the memory plan computed, and stay small.
import { expect } from 'chai';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { planMemory, type Placement } from '../../compiler/schedule/memory.js';
import { simulateWindow } from '../../compiler/schedule/simulate.js';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { dataflowData, MAX_NODES } from '../../compiler/view/dataflow-data.js';
import { memoryData, spaceUsage } from '../../compiler/view/memory-data.js';
import { indexProgram } from '../../compiler/view/program-index.js';
import { renderViewPage, scriptSafeJson } from '../../compiler/view/render-page.js';
import { exposedGaps, SPAN_FIELDS, timelineData } from '../../compiler/view/timeline-data.js';
import { loadViewData } from '../../compiler/view/view-data.js';
import { runCli } from '../cli/run-cli.js';
import { buffer, fpdtLike, instr, record, ref, roundDevice, scheduleOf, wait } from '../schedule/fixtures.js';

const ms = 1e-3;

describe('view/program-index', () => {
  it('numbers instructions as the memory plan does and ties events to the instructions around them', () => {
    const s = fpdtLike({ layers: 3 });
    const index = indexProgram(s);
    expect(index.positions).to.equal(planMemory(s, deviceProfile('h200')).positions);
    index.instrs.forEach((x, k) => expect(x.position).to.equal(k));
    const fetch = index.byId.get('fetch_kv')!;
    // kv_saved is waited on before the kv loop: statically, before its first instruction
    expect(fetch.waits).to.deep.equal(['kv_saved', 'kv_free[j]']);
    expect(fetch.records).to.deep.equal(['kv_ready[j]']);
    expect(index.byId.get('attn_block')!.waits).to.deep.equal(['kv_ready[j]']);
    const layers = index.loops.filter((l) => l.role === 'layer');
    expect(layers.map((l) => [l.trips, l.reverse])).to.deep.equal([[3, false], [3, true]]);
    expect(index.byId.get('attn_block')!.loops).to.have.length(3);
  });
});

describe('view/timeline-data', () => {
  it('marks the compute gap a late copy causes, as long as the simulator counts it', () => {
    const bufs = [buffer('a', 'gpu', 'chunk', [1 << 20]), buffer('b', 'gpu', 'chunk', [1 << 20]), buffer('h', 'host', 'stash', [1 << 20])];
    const s = scheduleOf(
      [
        instr('h2d', 'copy', [ref('h', 0, 8)], [ref('a', 0, 8)], { attrs: { dir: 'h2d' }, bytes: 6e6 }),
        record('h2d', 'ready'),
        instr('compute', 'linear', [ref('b', 0, 8)], [ref('b', 0, 8)], { flops: 2e9 }),
        wait('compute', 'ready'),
        instr('compute', 'linear', [ref('a', 0, 8)], [ref('b', 0, 8)], { flops: 1e9 }),
      ],
      bufs,
      { ready: 1 },
    );
    const w = simulateWindow(s, roundDevice());
    const gaps = exposedGaps(w.spans);
    expect(gaps).to.have.length(1);
    expect(gaps[0].cause).to.equal('copy');
    expect((gaps[0].end - gaps[0].start) / 1e6).to.be.closeTo(w.exposedCopySeconds, 1e-9);
    expect(w.exposedCopySeconds).to.be.closeTo(1 * ms, 1e-12);
  });

  it('keeps every span tied to its instruction, and a band per drawn layer with its trip count', () => {
    const s = fpdtLike({ layers: 6 });
    const t = timelineData(s, roundDevice(), indexProgram(s));
    expect(t.extrapolated).to.equal(true);
    expect(t.spans.length % SPAN_FIELDS).to.equal(0);
    for (let k = 0; k < t.spans.length; k += SPAN_FIELDS) {
      const row = t.instrs[t.spans[k]];
      expect(row, `span ${k / SPAN_FIELDS}`).to.not.equal(undefined);
      expect(t.streams[t.spans[k + 1]]).to.equal(row.stream);
      expect(t.spans[k + 3]).to.be.at.least(t.spans[k + 2]);
    }
    const layers = t.bands.filter((b) => b.role === 'layer');
    expect(layers.map((b) => [b.index, b.trips, b.simulated, !!b.reverse])).to.deep.equal([[0, 6, 2, false], [5, 6, 2, true]]);
    for (const b of layers) expect(b.extrapolatedEach).to.be.above(0);
    expect(t.bands.filter((b) => b.role === 'chunk').length).to.equal(8);
    // the second simulated iteration of each layer loop is not drawn, and the page is told where it ran
    expect(t.hidden.map((h) => h.layers)).to.deep.equal([1, 1]);
    for (const h of t.hidden) {
      expect(h.end).to.be.above(h.start);
      expect(t.exposed.some((g) => g.start < h.end && g.end > h.start)).to.equal(false);
    }
  });
});

describe('view/memory-data', () => {
  it('stacks placements by kind over positions and finds the peak', () => {
    const p = (buf: string, kind: Placement['kind'], size: number, live: [number, number]): Placement => ({ buf, space: 'gpu', kind, offset: 0, size, live });
    const u = spaceUsage([p('w', 'param', 100, [0, 9]), p('a', 'chunk', 50, [2, 4]), p('b', 'chunk', 30, [4, 6]), { ...p('h', 'stash', 7, [0, 9]), space: 'host' }], 'gpu', 1000, 5);
    expect(u.kinds).to.deep.equal(['chunk', 'param']);
    expect(u.at).to.deep.equal([0, 2, 4, 5, 7, 10]);
    expect(u.bytes).to.deep.equal([[0, 100], [50, 100], [80, 100], [30, 100], [0, 100], [0, 0]]);
    expect(u.peak).to.deep.equal({ position: 4, bytes: 180 });
  });

  it('places the layer loops along the positions', () => {
    const s = fpdtLike({ layers: 3 });
    const index = indexProgram(s);
    const m = memoryData(planMemory(s, deviceProfile('h200')), index);
    expect(m.layerLoops.map((l) => [l.trips, l.reverse])).to.deep.equal([[3, false], [3, true]]);
    expect(m.layerLoops[0].last).to.be.below(m.layerLoops[1].first);
    expect(m.layerLoops[1].last).to.equal(m.positions - 1);
  });
});

describe('view/dataflow-data', () => {
  it('lays out one layer, forward and backward, with every edge between drawn nodes', () => {
    const s = fpdtLike({ layers: 4 });
    const d = dataflowData(s, indexProgram(s));
    const ids = new Set(d.nodes.map((n) => n.id));
    expect(d.nodes.length).to.be.at.most(MAX_NODES);
    expect(d.instrsDrawn).to.equal(d.instrsTotal);
    expect(d.nodes.filter((n) => n.kind === 'instr').map((n) => n.label)).to.include.members(['attn_fwd_block', 'attn_bwd_block', 'copy']);
    for (const e of d.edges) expect(ids.has(e.from) && ids.has(e.to), `${e.from} -> ${e.to}`).to.equal(true);
    for (const n of d.nodes) {
      expect(n.x - n.w / 2).to.be.at.least(0);
      expect(n.y + n.h / 2).to.be.at.most(d.height);
    }
    expect(d.nodes.find((n) => n.id === 'b:kv')!.detail).to.equal('@gpu chunk, 2 slots');
  });
});

describe('view/render-page', () => {
  it('keeps data inside its script element whatever the strings hold', () => {
    expect(scriptSafeJson({ m: '</script><!--' })).to.equal('{"m":"\\u003c/script>\\u003c!--"}');
  });

  it('writes one self-contained page for a compiled model', async function () {
    this.timeout(60_000);
    const dir = mkdtempSync(join(tmpdir(), 'fpdtc-view-'));
    try {
      const r = await compile('tiny-llama', {}, { outDir: dir });
      const data = loadViewData(r.modelOutDir);
      expect(data.header.model).to.equal('tiny-llama');
      expect(data.timeline.spans.length).to.be.above(0);
      expect(data.memory.spaces.map((x) => x.space)).to.deep.equal(['gpu', 'host']);
      const html = renderViewPage(data);
      expect(html).to.not.match(/<script[^>]+src=|<link[^>]+href=|<img|fetch\(|XMLHttpRequest|url\(http/);
      expect(html).to.include('<canvas id="timeline"');
      expect(html.length).to.be.below(1e6);
      const cli = runCli(['view', r.modelOutDir]);
      expect(cli.code, cli.stderr).to.equal(0);
      expect(cli.stdout).to.equal(`wrote ${join(r.modelOutDir, 'view.html')}\n`);
      expect(statSync(join(r.modelOutDir, 'view.html')).size).to.equal(Buffer.byteLength(html));
      const missing = runCli(['view', join(dir, 'nothing')]);
      expect(missing.code).to.not.equal(0);
      expect(missing.stderr.trim().split('\n')).to.have.length(1);
      expect(missing.stderr).to.include('fpdtc compile');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
