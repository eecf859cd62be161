// The planner's two memory-for-time trades: layers that keep attention for backward, and
// AdamW states in host memory.
import { expect } from 'chai';
import { chooseKeptLayers } from '../../compiler/lower/keep.js';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { planMemory } from '../../compiler/schedule/memory.js';
import { simulateStreams } from '../../compiler/schedule/simulate.js';
import { checkModel } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import tinyLlama from '../../models/tiny-llama.js';
import tinyAttnOnly from '../fixtures/models/tiny-attn-only.js';
import { graphPasses } from '../../compiler/passes/index.js';
import { runGraphPasses } from '../../compiler/passes/pipeline.js';
import { graphOf, scheduleOf, syncedSchedule } from './helpers.js';
import { unroll } from '../../compiler/schedule/unroll.js';

/** Each configuration of tiny-llama equals the unchunked model in float64 (planned arena, two stream orders). */
function expectUnchunked(configs: readonly TrainDefaults[], seed: number): void {
  for (const o of configs) {
    const r = checkModel(tinyLlama, resolveConfig(tinyLlama.def.train!, o), { orders: 2, arena: 'planned', seed });
    expect(r.maxError, JSON.stringify(o)).to.be.at.most(1e-9);
    expect(r.ok, JSON.stringify(o)).to.equal(true);
  }
}

describe('keeping attention for backward', () => {
  it('keeps as many layers as the host memory left by the plan holds', () => {
    const roomy = chooseKeptLayers(graphOf('llama8b', { seq: '512K', sp: 4 }), deviceProfile('h200'));
    const tight = chooseKeptLayers(graphOf('llama8b', { seq: '512K', sp: 4, hostMemGiB: 60 }), deviceProfile('h200', { hostMemGiB: 60 }));
    expect(roomy.keep).to.be.greaterThan(tight.keep);
    expect(roomy.plan.fits).to.equal(true);
    expect(roomy.plan.host.size).to.be.at.most(0.9 * roomy.plan.host.budget);
  });

  it('keeps none when the plan without kept layers does not fit', () => {
    const c = chooseKeptLayers(graphOf('llama8b', { seq: '2M', sp: 4, device: 'a100-40g' }), deviceProfile('a100-40g'));
    expect(c.plan.fits).to.equal(false);
    expect(c.keep).to.equal(0);
  });

  it('a fixed count is taken as given, and kept layers skip the attention recompute', () => {
    const none = scheduleOf('llama1b', { seq: '128K', sp: 1, chunk: '32K', keepAttention: 0 });
    const all = scheduleOf('llama1b', { seq: '128K', sp: 1, chunk: '32K', keepAttention: 16 });
    expect(none.keptLayers).to.equal(0);
    expect(all.keptLayers).to.equal(16);
    const dev = deviceProfile('h200');
    expect(simulateStreams(all, dev).busySeconds.compute).to.be.lessThan(simulateStreams(none, dev).busySeconds.compute);
  });
});

describe('the kept attention output in token layout', () => {
  // tiny-attn-only's layer output is a view of the attention output: lowering places the viewed value
  // in the layer's output buffer (a view writes nothing), which the float64 check below proves
  it('is kept where the backward reads it (the output projection), and a layer that ends in attention equals the unchunked model', () => {
    const bufs = (s: ReturnType<typeof scheduleOf>) => s.buffers.map((b) => b.id);
    expect(bufs(scheduleOf('tiny-llama', { sp: 2, seq: 96, chunk: 24, keepAttention: 1 }))).to.include('keep.attn');
    // a layer that ends in attention: q, k, v, o and lse are kept, the token-layout copy is not
    const cfg = resolveConfig(tinyAttnOnly.def.train!, { sp: 2, seq: 96, chunk: 24, keepAttention: 1 });
    const kept = bufs(syncedSchedule(runGraphPasses(tinyAttnOnly.build(cfg), graphPasses(cfg))));
    expect(kept).to.include.members(['keep.q', 'keep.k', 'keep.v', 'keep.o', 'keep.lse']).and.not.include('keep.attn');
    const r = checkModel(tinyAttnOnly, cfg, { orders: 2, arena: 'planned', seed: 3 });
    expect(r.maxError, JSON.stringify(r.grads.filter((g) => !(g.error <= 1e-9)))).to.be.at.most(1e-9);
    expect(r.ok).to.equal(true);
  });
});

describe('kept layers with one rank', () => {
  it('read the output projection input from keep.o (its chunks are the token rows) and equal the unchunked model', () => {
    const bufs = (s: ReturnType<typeof scheduleOf>) => s.buffers.map((b) => b.id);
    expect(bufs(scheduleOf('tiny-llama', { sp: 1, seq: 96, chunk: 24, keepAttention: 2 }))).to.include('keep.o').and.not.include('keep.attn');
    for (const o of [{ sp: 1, seq: 96, chunk: 24, keepAttention: 2 }, { sp: 1, seq: 96, chunk: 24, keepAttention: 1, offload: false }]) {
      const r = checkModel(tinyLlama, resolveConfig(tinyLlama.def.train!, o), { orders: 2, arena: 'planned', seed: 5 });
      expect(r.maxError, JSON.stringify(o)).to.be.at.most(1e-9);
    }
  });

  it('auto keeps the most layers that fit within the slack, keeping all of q, k, v, o, lse (llama1b 512K, 110 GiB of host memory)', () => {
    const dev = deviceProfile('h200', { hostMemGiB: 110 });
    const c = chooseKeptLayers(graphOf('llama1b', { seq: '512K', chunk: '64K', hostMemGiB: 110, keepForm: 'all' }), dev);
    expect(c.keep).to.be.greaterThan(8);
    const more = planMemory(scheduleOf('llama1b', { seq: '512K', chunk: '64K', hostMemGiB: 110, keepAttention: c.keep + 1, keepForm: 'all' }), dev);
    expect(!more.fits || more.host.size > 0.9 * more.host.budget).to.equal(true);
  });
});

describe('kept layers that keep only the attention outputs (o, lse)', () => {
  it('recompute q, k, v by their projections and equal the unchunked model (one rank, two ranks, packed, no offload) @slow', () => {
    const bufs = (s: ReturnType<typeof scheduleOf>) => s.buffers.map((b) => b.id).filter((x) => x.startsWith('keep.'));
    const s = scheduleOf('tiny-llama', { sp: 1, seq: 96, chunk: 24, keepAttention: 2, keepForm: 'outputs' });
    expect(s.keptForm).to.equal('outputs');
    expect(bufs(s)).to.have.members(['keep.o', 'keep.lse']);
    expect(bufs(scheduleOf('tiny-llama', { sp: 2, seq: 96, chunk: 24, keepAttention: 1, keepForm: 'outputs' }))).to.have.members(['keep.o', 'keep.lse', 'keep.attn']);
    // the kept layers' backward runs the projections of q, k, v again, and no attention forward
    const ops = (form: 'all' | 'outputs') =>
      [...unroll(scheduleOf('tiny-llama', { sp: 1, seq: 96, chunk: 24, keepAttention: 2, keepForm: form, stashes: 'host' }))].filter((it) => it.kind === 'instr').length;
    expect(ops('outputs')).to.be.greaterThan(ops('all'));
    expectUnchunked(
      [
        { sp: 1, seq: 96, chunk: 24, keepAttention: 2 },
        { sp: 2, seq: 96, chunk: 24, keepAttention: 1 },
        { sp: 2, seq: 96, chunk: 24, keepAttention: 2, packed: true },
        { sp: 1, seq: 96, chunk: 24, keepAttention: 2, offload: false },
      ].map((o) => ({ ...o, keepForm: 'outputs' })),
      5,
    );
  });

  it('let auto keep every layer of llama1b at 512K in 110 GiB of host memory, predicting a faster step than keeping all of fewer layers', () => {
    const dev = deviceProfile('h200', { hostMemGiB: 110 });
    const over = { seq: '512K', chunk: '64K', hostMemGiB: 110 } as const;
    const auto = chooseKeptLayers(graphOf('llama1b', over), dev);
    const all = chooseKeptLayers(graphOf('llama1b', { ...over, keepForm: 'all' }), dev);
    expect(auto.keep).to.equal(16);
    expect(auto.schedule.keptForm).to.equal('outputs');
    expect(all.keep).to.be.lessThan(16);
    expect(auto.plan.host.size).to.be.at.most(0.9 * auto.plan.host.budget);
    expect(simulateStreams(auto.schedule, dev).stepSeconds).to.be.lessThan(simulateStreams(all.schedule, dev).stepSeconds);
    // where every layer fits keeping all (llama1b at 64K), auto keeps all
    expect(chooseKeptLayers(graphOf('llama1b', { seq: '64K', chunk: '16K' }), deviceProfile('h200')).schedule.keptForm).to.equal('all');
  });
});

describe('checkpoints split between host and GPU', () => {
  it('the layers before the last keep their checkpoint on the GPU and equal the unchunked model @slow', () => {
    const ckpt = (n: number) => {
      const s = scheduleOf('tiny-llama', { sp: 1, seq: 96, chunk: 24, checkpoint: 'host', gpuCheckpoints: n });
      return Object.fromEntries(s.buffers.filter((b) => b.kind === 'ckpt').map((b) => [b.id, [b.space, b.shape[0]]]));
    };
    // two layers: the last one's checkpoint is its input in act.carry, so one layer is left to place
    expect(ckpt(0)).to.deep.equal({ 'ckpt.layers': ['host', 1] });
    expect(ckpt(1)).to.deep.equal({ 'ckpt.gpu': ['gpu', 1] });
    expect(ckpt(2)).to.deep.equal({ 'ckpt.gpu': ['gpu', 1] });
    expectUnchunked(
      [
        { sp: 1, seq: 96, chunk: 24, gpuCheckpoints: 1 },
        { sp: 2, seq: 96, chunk: 24, gpuCheckpoints: 2, keepAttention: 1 },
        { sp: 2, seq: 96, chunk: 24, gpuCheckpoints: 1, keepAttention: 2, keepForm: 'outputs' as const, packed: true },
      ].map((o) => ({ ...o, checkpoint: 'host' })),
      9,
    );
  });

  it('auto: none where the host holds every checkpoint; the fewest that fit where it does not (llama8b, 2M tokens, 4 H200s, 110 GiB of host each)', () => {
    expect(scheduleOf('llama1b', { seq: '512K', chunk: '64K', hostMemGiB: 110 }).gpuCheckpointLayers ?? 0).to.equal(0);
    const dev = deviceProfile('h200', { hostMemGiB: 110 });
    const c = chooseKeptLayers(graphOf('llama8b', { seq: '2M', sp: 4, hostMemGiB: 110 }), dev);
    const n = c.schedule.gpuCheckpointLayers ?? 0;
    expect(n).to.be.within(1, 31);
    expect(c.plan.fits, c.plan.advice).to.equal(true);
    // one layer fewer on the GPU leaves the host over its budget
    const fewer = planMemory(scheduleOf('llama8b', { seq: '2M', sp: 4, hostMemGiB: 110, gpuCheckpoints: n - 1, keepAttention: 0 }), dev);
    expect(fewer.host.size).to.be.greaterThan(fewer.host.budget);
  });
});

describe('activations kept on the GPU for backward', () => {
  it('keep the GEMM outputs the backward recomputes (output projection, gate, up) and equal the unchunked model @slow', () => {
    const s = scheduleOf('tiny-llama', { sp: 1, seq: 96, chunk: 24, offload: false, keepActivations: 2 });
    expect(s.keptActivationLayers).to.equal(2);
    expect(s.buffers.map((b) => b.id).filter((x) => x.startsWith('keep.act.'))).to.have.members(['keep.act.attn_out', 'keep.act.gate', 'keep.act.up']);
    // the backward runs three GEMMs a layer fewer
    const linears = (k: number) => {
      let n = 0;
      for (const it of unroll(scheduleOf('tiny-llama', { sp: 1, seq: 96, chunk: 24, offload: false, keepAttention: 2, keepActivations: k })))
        if (it.kind === 'instr' && it.item.op === 'linear') n++;
      return n;
    };
    expect(linears(0) - linears(2)).to.equal(2 * 3 * 4); // 2 layers x 3 GEMMs x 4 chunks
    expectUnchunked([
      { sp: 1, seq: 96, chunk: 24, offload: false, keepActivations: 1 },
      { sp: 2, seq: 96, chunk: 24, offload: false, keepActivations: 2, keepAttention: 1 },
      { sp: 2, seq: 96, chunk: 24, offload: false, keepActivations: 1, keepAttention: 2, keepForm: 'outputs' as const },
      { sp: 2, seq: 96, chunk: 24, offload: false, keepActivations: 2, packed: true },
      { sp: 1, seq: 96, chunk: 24, offload: true, keepActivations: 1 },
      { sp: 2, seq: 96, chunk: 24, offload: false, checkpoint: 'host' as const, gpuCheckpoints: 1, keepActivations: 2 },
    ], 7);
  });

  it('auto keeps them without offload where GPU memory is left (llama1b at 64K: all 16 layers, a faster step), none with offload', () => {
    const dev = deviceProfile('h200');
    const resident = chooseKeptLayers(graphOf('llama1b', { seq: '64K', chunk: '64K', offload: false, checkpoint: 'gpu' }), dev);
    const without = chooseKeptLayers(graphOf('llama1b', { seq: '64K', chunk: '64K', offload: false, checkpoint: 'gpu', keepActivations: 0 }), dev);
    expect(resident.schedule.keptActivationLayers).to.equal(16);
    expect(resident.plan.gpu.size).to.be.at.most(0.9 * resident.plan.gpu.budget);
    expect(simulateStreams(resident.schedule, dev).stepSeconds).to.be.lessThan(simulateStreams(without.schedule, dev).stepSeconds);
    expect(chooseKeptLayers(graphOf('llama1b', { seq: '64K', chunk: '16K' }), dev).schedule.keptActivationLayers ?? 0).to.equal(0);
  });
});

describe('working stashes on the GPU with offload', () => {
  it('leave on the host only what grows with the layers, and equal the unchunked model @slow', () => {
    const s = scheduleOf('tiny-llama', { sp: 1, seq: 96, chunk: 24, keepAttention: 1, stashes: 'gpu' });
    expect(s.gpuStashes).to.equal(true);
    const host = s.buffers.filter((b) => b.space === 'host').map((b) => b.id);
    expect(host.every((x) => x.startsWith('keep.') || x.startsWith('ckpt.'))).to.equal(true);
    expectUnchunked(
      [
        { sp: 1, seq: 96, chunk: 24 },
        { sp: 2, seq: 96, chunk: 24, keepAttention: 1 },
        { sp: 2, seq: 96, chunk: 24, keepAttention: 2, keepForm: 'outputs' as const, packed: true },
      ].map((o) => ({ ...o, stashes: 'gpu' })),
      11,
    );
  });

  it('on llama1b at 512K: a fifth of the host copies, in 5 GiB more of the GPU; auto where they fit', () => {
    const dev = deviceProfile('h200', { hostMemGiB: 110 });
    const over = { seq: '512K', chunk: '64K', hostMemGiB: 110 } as const;
    const gpu = chooseKeptLayers(graphOf('llama1b', { ...over, stashes: 'gpu' }), dev);
    const host = chooseKeptLayers(graphOf('llama1b', { ...over, stashes: 'host' }), dev);
    expect(gpu.schedule.gpuStashes).to.equal(true);
    expect(host.schedule.gpuStashes ?? false).to.equal(false);
    // auto takes the GPU where they fit, the host where they do not (llama1b at 2M)
    expect(chooseKeptLayers(graphOf('llama1b', over), dev).schedule.gpuStashes).to.equal(true);
    expect(chooseKeptLayers(graphOf('llama1b', { seq: '2M', chunk: '64K' }), deviceProfile('h200')).schedule.gpuStashes ?? false).to.equal(false);
    expect(gpu.plan.gpu.size).to.be.at.most(0.9 * gpu.plan.gpu.budget);
    const [a, h] = [simulateStreams(gpu.schedule, dev), simulateStreams(host.schedule, dev)];
    const copies = (t: typeof a) => t.busySeconds.h2d + t.busySeconds.d2h;
    expect(copies(a)).to.be.lessThan(0.25 * copies(h));
    expect(gpu.plan.gpu.size - host.plan.gpu.size).to.be.lessThan(6 * 2 ** 30);
  });
});

describe('AdamW states in host memory', () => {
  it('moves the optimizer states off the GPU and lets llama8b train 128K tokens on one H200', () => {
    const over = { seq: '128K', sp: 1, hostMemGiB: 110, checkpoint: 'gpu' as const };
    const dev = deviceProfile('h200', { hostMemGiB: 110 });
    const onGpu = planMemory(scheduleOf('llama8b', over), dev);
    const onHost = planMemory(scheduleOf('llama8b', { ...over, optimizer: 'host' }), dev);
    expect(onGpu.fits).to.equal(false);
    expect(onHost.fits, onHost.advice).to.equal(true);
    expect(onHost.gpu.breakdown.optimizer).to.equal(0);
    expect(onHost.host.breakdown.optimizer).to.be.closeTo(onGpu.gpu.breakdown.optimizer, onGpu.gpu.breakdown.optimizer * 0.01);
  });
});
