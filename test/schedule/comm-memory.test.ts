// The collectives' GPU memory beside the arena: the scratch is the largest window of the ops that
// use it (all-to-all, all-reduce), not of the in-place all-gather and reduce-scatter, and the plan
// checks the arena plus it against the budget.
import { expect } from 'chai';
import { DTYPE_BYTES } from '../../compiler/ir/types.js';
import { commMemory, NCCL_PEER_BYTES } from '../../compiler/schedule/comm-memory.js';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { planMemory } from '../../compiler/schedule/memory.js';
import type { Item, Schedule } from '../../compiler/schedule/types.js';
import { scheduleOf } from '../lower/helpers.js';

function largestWindow(s: Schedule, ops: readonly string[]): number {
  const eb = new Map(s.buffers.map((b) => [b.id, DTYPE_BYTES[b.dtype]]));
  let most = 0;
  const walk = (items: readonly Item[]): void => {
    for (const it of items) {
      if (it.kind === 'loop') walk(it.body);
      else if (it.kind === 'instr' && ops.includes(it.op)) for (const r of [...it.reads, ...it.writes]) most = Math.max(most, r.len * eb.get(r.buf)!);
    }
  };
  walk(s.body);
  return most;
}

describe('collective memory beside the arena', () => {
  it('one rank needs none', () => {
    expect(commMemory(scheduleOf('tiny-llama', { sp: 1 }))).to.deep.equal({ scratch: 0, library: 0 });
  });

  it('llama8b at 256K over 2 ranks: the all-to-all window, not the 4 GiB gradient reduce-scatter', () => {
    const s = scheduleOf('llama8b', { seq: '256K', sp: 2, hostMemGiB: 110 });
    const c = commMemory(s);
    expect(c.scratch).to.be.at.least(largestWindow(s, ['all_to_all', 'all_reduce']));
    expect(c.scratch).to.be.lessThan(largestWindow(s, ['all_to_all', 'all_reduce']) + 256);
    expect(largestWindow(s, ['reduce_scatter'])).to.be.greaterThan(10 * c.scratch);
    expect(c.library).to.equal(NCCL_PEER_BYTES);
    const plan = planMemory(s, deviceProfile('h200', { hostMemGiB: 110 }));
    expect(plan.gpu.need).to.equal(plan.gpu.size + c.scratch + c.library);
    expect(plan.gpu.breakdown.comm).to.equal(c.scratch + c.library);
  });

  it('a plan whose arena fits but whose collectives do not is over budget', () => {
    const s = scheduleOf('tiny-llama', { sp: 2 });
    const dev = deviceProfile('h200');
    const arena = planMemory(s, dev).gpu.size;
    const tight = { ...dev, gpuMemBytes: arena + 1024 };
    const plan = planMemory(s, tight);
    expect(plan.fits).to.equal(false);
    expect(plan.over[0]).to.include({ space: 'gpu', need: plan.gpu.need });
  });
});
