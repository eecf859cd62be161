// Buffers no instruction touches are not declared, so the memory plan does not hold them for the
// whole step: every step keeps only what it uses (persistent kinds aside).
import { expect } from 'chai';
import { PERSISTENT } from '../../compiler/schedule/memory.js';
import type { Item, Schedule } from '../../compiler/schedule/types.js';
import { scheduleOf } from './helpers.js';

const touched = (items: readonly Item[], out = new Set<string>()): Set<string> => {
  for (const it of items) {
    if (it.kind === 'loop') touched(it.body, out);
    else if (it.kind === 'instr') for (const r of [...it.reads, ...it.writes]) out.add(r.buf);
  }
  return out;
};
const unused = (s: Schedule) => s.buffers.filter((b) => !PERSISTENT.has(b.kind) && !touched(s.body).has(b.id)).map((b) => b.id);

describe('buffers nothing uses', () => {
  it('are not declared: kept layers have no recompute buffers, GPU stashes no fetch slots, kept activations no GEMM outputs', () => {
    for (const o of [
      { sp: 2, seq: 96, chunk: 24, keepAttention: 2, stashes: 'host' as const },
      { sp: 2, seq: 96, chunk: 24, keepAttention: 1, stashes: 'gpu' as const },
      { sp: 1, seq: 96, chunk: 24, offload: false, keepActivations: 2 },
      { sp: 2, seq: 96, chunk: 24, packed: true },
    ])
      expect(unused(scheduleOf('tiny-llama', o)), JSON.stringify(o)).to.deep.equal([]);
  });

  it('llama1b at 512K plans 62.5 GiB of GPU, not the 68.1 that held the unused ones', async () => {
    const { planMemory } = await import('../../compiler/schedule/memory.js');
    const { deviceProfile } = await import('../../compiler/schedule/devices.js');
    const dev = deviceProfile('h200', { hostMemGiB: 110 });
    const p = planMemory(scheduleOf('llama1b', { seq: '512K', chunk: '64K', hostMemGiB: 110 }), dev);
    expect(p.gpu.size / 2 ** 30).to.be.within(62, 63);
  });
});
