import { expect } from 'chai';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { ALIGN, assignOffsets, bufferBytes, planMemory, verifyPlan, type Placement } from '../../compiler/schedule/memory.js';
import type { Item } from '../../compiler/schedule/types.js';
import { buffer, fpdtLike, instr, loop, ref, roundDevice, scheduleOf } from './fixtures.js';

/** mulberry32: a small seeded generator, so that failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('schedule/memory', () => {
  it('never overlaps live buffers: random sets of sizes and intervals', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const n = 1 + Math.floor(r() * 40);
      const items = Array.from({ length: n }, (_, i) => {
        const a = Math.floor(r() * 100);
        const b = a + Math.floor(r() * 30);
        const size = Math.ceil((1 + Math.floor(r() * 5000)) / ALIGN) * ALIGN;
        return { b: buffer(`b${i}`, 'gpu', 'chunk', [size / 2]), size, live: [a, b] as [number, number] };
      });
      const placed = assignOffsets('gpu', items);
      const size = placed.reduce((m, p) => Math.max(m, p.offset + p.size), 0);
      const problems = verifyPlan({ placements: placed, gpu: { size } as never, host: { size: 0 } as never });
      expect(problems, `seed ${seed}`).to.deep.equal([]);
      // never worse than stacking everything
      expect(size).to.be.at.most(items.reduce((m, x) => m + x.size, 0));
    }
  });

  it('never overlaps live buffers: random structured programs', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const r = rng(seed);
      const nb = 2 + Math.floor(r() * 10);
      const bufs = Array.from({ length: nb }, (_, i) => buffer(`b${i}`, r() < 0.3 ? 'host' : 'gpu', r() < 0.2 ? 'param' : 'chunk', [1 + Math.floor(r() * 3000)], r() < 0.3 ? 2 : 1));
      const pick = () => bufs[Math.floor(r() * nb)].id;
      const body = (depth: number): Item[] =>
        Array.from({ length: 1 + Math.floor(r() * 4) }, (_, k): Item =>
          depth < 3 && r() < 0.3 ? loop(`v${depth}_${k}`, 0, 2, 'chunk', body(depth + 1)) : instr('compute', 'add', [ref(pick(), 0, 1)], [ref(pick(), 0, 1)]),
        );
      const s = scheduleOf(body(0), bufs);
      const plan = planMemory(s, roundDevice());
      expect(verifyPlan(plan), `seed ${seed}`).to.deep.equal([]);
    }
  });

  it('catches a planted overlap and a buffer outside its arena', () => {
    const plan = planMemory(fpdtLike(), deviceProfile('h200'));
    expect(verifyPlan(plan)).to.deep.equal([]);
    const kv = plan.placements.find((p) => p.buf === 'kv')!;
    const q = plan.placements.find((p) => p.buf === 'q')!;
    const planted: Placement[] = plan.placements.map((p) => (p === q ? { ...p, offset: kv.offset } : p));
    expect(verifyPlan({ ...plan, placements: planted }).join('\n')).to.match(/buffers (kv and q|q and kv) are live together/);
    const outside = plan.placements.map((p) => (p === q ? { ...p, offset: plan.gpu.size } : p));
    expect(verifyPlan({ ...plan, placements: outside }).join('\n')).to.match(/q .* outside the arena/);
  });

  it('keeps persistent kinds for the whole step and loop-local buffers across their loop', () => {
    const s = fpdtLike({ layers: 2, chunks: 4 });
    const plan = planMemory(s, deviceProfile('h200'));
    const live = (id: string) => plan.placements.find((p) => p.buf === id)!.live;
    expect(live('w')).to.deep.equal([0, plan.positions - 1]);
    expect(live('ckpt')).to.deep.equal([0, plan.positions - 1]);
    // q is used only in the forward layer loop; dx only in the backward one: they may share
    const q = live('q');
    const dx = live('dx');
    expect(q[1]).to.be.below(dx[0]);
    expect(bufferBytes(s.buffers.find((b) => b.id === 'kv')!)).to.equal(1024 * 512 * 2 * 2);
  });

  it('a buffer read before it is written in its loop lives the whole step', () => {
    const s = scheduleOf(
      [instr('compute', 'add', [], [ref('a', 0, 1)]), loop('i', 0, 3, 'chunk', [instr('compute', 'add', [ref('acc', 0, 1)], [ref('acc', 0, 1)])]), instr('compute', 'add', [ref('a', 0, 1)], [])],
      [buffer('a', 'gpu', 'chunk', [128]), buffer('acc', 'gpu', 'chunk', [128])],
    );
    const plan = planMemory(s, roundDevice());
    expect(plan.placements.find((p) => p.buf === 'acc')!.live).to.deep.equal([0, plan.positions - 1]);
    expect(plan.placements.find((p) => p.buf === 'a')!.live).to.deep.equal([0, 2]);
  });

  it('reports a breakdown by kind and fits the h200', () => {
    const plan = planMemory(fpdtLike(), deviceProfile('h200'));
    const b = plan.gpu.breakdown;
    expect(plan.fits).to.equal(true);
    expect(b.params).to.equal(2 * 256 * 768 * 2);
    expect(b.checkpoints).to.equal(2 * 4096 * 256 * 2);
    expect(b.params + b.grads + b.optimizer + b.checkpoints + b.working).to.equal(plan.gpu.size);
    expect(plan.gpu.peakLive).to.be.at.most(plan.gpu.size);
    expect(plan.host.size).to.equal(4 * 1024 * 512 * 2);
  });

  it('says what is over budget, by how much, and what to change', () => {
    const plan = planMemory(fpdtLike({ chunks: 8, tokens: 8192 }), roundDevice({ gpuMemBytes: 64 * 2 ** 20, hostMemBytes: 2 ** 20 }));
    expect(plan.fits).to.equal(false);
    expect(plan.over.map((o) => o.space)).to.deep.equal(['gpu', 'host']);
    expect(plan.over[0].have).to.equal(64 * 2 ** 20);
    expect(plan.advice).to.match(/^GPU memory over budget by [\d.]+ GiB \(need [\d.]+ GiB, have 0\.1 GiB\): /);
    expect(plan.advice).to.match(/pinned host memory over budget/);
    expect(plan.advice.split('\n')).to.have.length(1);
  });

  it('honours the configured host memory', () => {
    const s = fpdtLike();
    const plan = planMemory({ ...s, config: { ...s.config, hostMemGiB: 7 } }, deviceProfile('h200'));
    expect(plan.host.budget).to.equal(7 * 2 ** 30);
    expect(deviceProfile('h200', { hostMemGiB: 110 }).hostMemBytes).to.equal(110 * 2 ** 30);
  });

  it('device profiles leave room for the CUDA context', () => {
    const h = deviceProfile('h200');
    expect(h.gpuMemBytes).to.be.closeTo(h.gpuMemTotalBytes * 0.95, 1);
    const a = deviceProfile('a100-40g');
    expect(a.gpuMemBytes).to.equal(a.gpuMemTotalBytes - 2 * 2 ** 30);
    expect(() => deviceProfile('tpu')).to.throw(/unknown device; known: h200, h100, a100-80g, a100-40g/);
  });
});
