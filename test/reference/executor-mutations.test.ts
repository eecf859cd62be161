// Deliberately broken schedules must not pass the check: a dropped event wait, a fetch into
// the wrong double-buffer slot, a wrong RoPE offset for a chunk. The executor has to catch
// each numerically, with the hazard checker skipped.
import { expect } from 'chai';
import { addAff, type Instr, type Item, type Schedule } from '../../compiler/schedule/types.js';
import { checkModel, type CheckOptions, type CheckReport } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import tinyLlama from '../../models/tiny-llama.js';

function run(_name: 'tiny-llama', o: TrainDefaults, opts: CheckOptions = {}): CheckReport {
  return checkModel(tinyLlama, resolveConfig(tinyLlama.def.train!, o), { orders: 3, arena: 'private', seed: 7, ...opts });
}

// FPDT's host stashes: the kv fetches, their waits and slots are what the mutations break
const CONFIG = { sp: 2, seq: 96, chunk: 24, offload: true, stashes: 'host' } as const;

/** Rewrites every item of a schedule, loops included; `f` returns the items to put instead. */
function rewrite(items: readonly Item[], f: (it: Item, siblings: readonly Item[]) => Item[]): Item[] {
  return items.flatMap((it) => (it.kind === 'loop' ? [{ ...it, body: rewrite(it.body, f) }] : f(it, items)));
}

const writesTo = (it: Item, prefix: string) => it.kind === 'instr' && it.writes.some((w) => w.buf.startsWith(prefix));

/**
 * Drops the compute stream's waits for the fetch of forward v chunks into their slot (the
 * last copy on h2d in the kv loop, so that nothing else orders the block after it).
 */
function dropKvFetchWait(s: Schedule): Schedule {
  let dropped = 0;
  const body = rewrite(s.body, (it, siblings) => {
    if (it.kind !== 'wait' || it.stream !== 'compute') return [it];
    const fetch = siblings.find((x) => writesTo(x, 'f.v_slot') && x.kind === 'instr' && x.stream === 'h2d');
    if (!fetch) return [it];
    const recordedAfterFetch = siblings.some((x) => x.kind === 'record' && x.id.startsWith(`r_${fetch.id}_`) && x.event === it.event);
    if (!recordedAfterFetch) return [it];
    dropped++;
    return [];
  });
  expect(dropped, 'waits dropped').to.be.greaterThan(0);
  return { ...s, body };
}

/** The h2d fetch of forward k chunks writes slot j+1 while the block still reads slot j. */
function shiftKvSlot(s: Schedule): Schedule {
  let shifted = 0;
  const body = rewrite(s.body, (it) => {
    if (!(it.kind === 'instr' && it.stream === 'h2d' && writesTo(it, 'f.k_slot'))) return [it];
    shifted++;
    const w = it.writes[0];
    return [{ ...it, writes: [{ ...w, slot: addAff(w.slot!, 1) }] } as Instr];
  });
  expect(shifted).to.be.greaterThan(0);
  return { ...s, body };
}

/** The forward RoPE of k starts one position late in every chunk. */
function shiftRope(s: Schedule): Schedule {
  let shifted = 0;
  const body = rewrite(s.body, (it) => {
    if (!(it.kind === 'instr' && it.op === 'rope' && writesTo(it, 'f.k_rot'))) return [it];
    shifted++;
    return [{ ...it, args: { ...it.args, pos0: addAff(it.args!.pos0, 1) } } as Instr];
  });
  expect(shifted).to.be.greaterThan(0);
  return { ...s, body };
}

/**
 * The parameter table says two layer tensors of one size sit in each other's places: the
 * executor loads the weights where the table says, the program reads them where lowering put
 * them, so each reads the other's weights.
 */
function swapParamWindows(s: Schedule): Schedule {
  const t = s.params!;
  const layer = t.tensors.filter((p) => p.part === 'layers');
  const a = layer.find((p) => layer.some((q) => q !== p && q.len === p.len))!;
  const b = layer.find((q) => q !== a && q.len === a.len)!;
  const tensors = t.tensors.map((p) => (p === a ? { ...p, offset: b.offset } : p === b ? { ...p, offset: a.offset } : p));
  return { ...s, params: { ...t, tensors } };
}

describe('check catches broken schedules', () => {
  it('the unbroken configuration passes', () => {
    expect(run('tiny-llama', CONFIG).ok).to.equal(true);
  });

  it('a dropped event wait (compute no longer waits for the kv fetch)', () => {
    const r = run('tiny-llama', CONFIG, { mutate: dropKvFetchWait, verify: false, orders: 3 });
    expect(r.ok).to.equal(false);
    expect(r.maxError).to.be.greaterThan(1e-6);
  });

  it('the hazard checker flags the dropped wait too', () => {
    expect(() => run('tiny-llama', CONFIG, { mutate: dropKvFetchWait, orders: 1 })).to.throw(/hazard/);
  });

  it('a fetch into the wrong double-buffer slot', () => {
    const r = run('tiny-llama', CONFIG, { mutate: shiftKvSlot, verify: false, orders: 1 });
    expect(r.ok).to.equal(false);
  });

  it('a parameter table that disagrees with where the program reads the weights', () => {
    // (the two may be the norms, both ones at init: then the loss agrees and the gradients do not)
    const r = run('tiny-llama', CONFIG, { mutate: swapParamWindows, orders: 1 });
    expect(r.ok).to.equal(false);
  });

  it('a wrong RoPE offset for a chunk', () => {
    const r = run('tiny-llama', CONFIG, { mutate: shiftRope, orders: 1 });
    expect(r.ok).to.equal(false);
    expect(r.loss.error).to.be.greaterThan(1e-9);
  });
});
