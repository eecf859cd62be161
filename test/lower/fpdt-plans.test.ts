// What the plans say about the reference design's headline runs. Every figure comes from the
// lowered schedule, its memory plan and its simulation, none from a closed formula.
import { expect } from 'chai';
import { countParams } from '../../compiler/report.js';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { planMemory } from '../../compiler/schedule/memory.js';
import { simulateStreams } from '../../compiler/schedule/simulate.js';
import { graphOf, scheduleOf, syncedSchedule as scheduleOfGraph } from './helpers.js';

const GiB = 2 ** 30;

describe('FPDT plans', () => {
  it('llama8b at 2M tokens on 4 a100-80g fits with FPDT and not as plain Ulysses', () => {
    const fpdt = planMemory(scheduleOf('llama8b', { seq: '2M', sp: 4, device: 'a100-80g' }), deviceProfile('a100-80g'));
    expect(fpdt.fits, fpdt.advice).to.equal(true);
    const plain = planMemory(scheduleOf('llama8b', { seq: '2M', sp: 4, device: 'a100-80g', fpdt: false }), deviceProfile('a100-80g'));
    expect(plain.fits).to.equal(false);
    expect(plain.advice).to.match(/GPU memory over budget by [\d.]+ GiB/);
    expect(plain.gpu.size).to.be.greaterThan(3 * fpdt.gpu.size);
  });

  it('offload moves attention state from the GPU to the host', () => {
    const on = planMemory(scheduleOf('llama8b', { seq: '512K', sp: 4 }), deviceProfile('h200'));
    const off = planMemory(scheduleOf('llama8b', { seq: '512K', sp: 4, offload: false }), deviceProfile('h200'));
    expect(on.gpu.breakdown.working).to.be.lessThan(off.gpu.breakdown.working);
    expect(on.host.breakdown.working).to.be.greaterThan(off.host.breakdown.working);
  });

  it('llama70b at 4M tokens on 32 a100-80g fits', () => {
    const p = planMemory(scheduleOf('llama70b', { device: 'a100-80g' }), deviceProfile('a100-80g'));
    expect(p.fits, p.advice).to.equal(true);
  });

  it('gpt6.7b with its defaults fits on 4 GPUs', () => {
    const s = scheduleOf('gpt6.7b');
    expect(s.world).to.equal(4);
    const p = planMemory(s, deviceProfile('h200'));
    expect(p.fits, p.advice).to.equal(true);
  });

  it('GPU memory for attention does not grow with the sequence at a fixed chunk', () => {
    // FPDT's placement: the working stashes on the host (auto puts them on the GPU where they fit)
    const at = (seq: string) => planMemory(scheduleOf('llama1b', { seq, sp: 1, chunk: '32K', stashes: 'host' }), deviceProfile('h200')).gpu.breakdown;
    const a = at('128K');
    const b = at('512K');
    // activations of the local sequence (residual stream, checkpoints) grow; the attention stash does not
    const stashGrowth = b.working - a.working;
    expect(stashGrowth / GiB).to.be.lessThan(8);
  });

  it('each kv fetch overlaps the block before it, and exposed copy time stays under 5% at 64K chunks on h200', () => {
    const g = graphOf('llama8b', { seq: '512K', sp: 1, chunk: '64K' });
    const s = scheduleOfGraph(g);
    const dev = deviceProfile('h200');
    const t = simulateStreams(s, dev, { spans: true, window: { layer: 1 }, model: { params: countParams(g), layers: g.sizes.L, seq: g.sizes.S, hidden: g.sizes.D } });
    const spans = t.spans;
    // the forward of layer 0: kv chunk j >= 2 of q chunk i is fetched while block j-1 or j-2 runs
    // (chunks 0 and 1 of each q chunk are fetched during the previous q chunk's work)
    const fetches = spans.filter((x) => x.stream === 'h2d' && x.layer === 0 && x.kv !== undefined && x.kv >= 2 && x.chunk !== undefined && x.op === 'copy');
    const blocks = spans.filter((x) => x.op === 'attn_fwd_block');
    expect(fetches.length).to.be.greaterThan(4);
    // a fetch runs while an earlier block of the same q chunk computes (double buffering)
    let overlapped = 0;
    for (const f of fetches) {
      const earlier = blocks.filter((b) => b.chunk === f.chunk && b.layer === f.layer && b.kv !== undefined && b.kv < f.kv!);
      if (earlier.some((b) => f.start < b.end && f.end > b.start)) overlapped++;
    }
    expect(overlapped / fetches.length).to.be.greaterThan(0.9);
    const full = simulateStreams(s, dev, {});
    expect(full.exposedCopySeconds / full.stepSeconds).to.be.lessThan(0.05);
  });
});
