// Every schedule the compiler emits passes the hazard checker, and the checker catches
// broken schedules: a dropped event wait, a fetch into the wrong double-buffer slot.
import { expect } from 'chai';
import type { Item, Schedule } from '../../compiler/schedule/types.js';
import { ScheduleError, verifySchedule } from '../../compiler/schedule/verify.js';
import { MODELS, scheduleOf } from './helpers.js';

function mapItems(items: readonly Item[], f: (it: Item) => Item | undefined): Item[] {
  const out: Item[] = [];
  for (const it of items) {
    const x = it.kind === 'loop' ? { ...it, body: mapItems(it.body, f) } : f(it);
    if (x) out.push(x);
  }
  return out;
}

function countWaits(items: readonly Item[]): number {
  return items.reduce((n, it) => n + (it.kind === 'loop' ? countWaits(it.body) : it.kind === 'wait' ? 1 : 0), 0);
}

/** The schedule without its k-th wait (in program order). */
function dropWait(s: Schedule, k: number): Schedule {
  let seen = 0;
  return { ...s, body: mapItems(s.body, (it) => (it.kind === 'wait' && seen++ === k ? undefined : it)) };
}

describe('schedule verification', () => {
  const grid: [string, Record<string, unknown>][] = [];
  for (const model of ['tiny-llama', 'tiny-gpt'])
    for (const sp of [1, 2, 3, 4])
      for (const chunks of [1, 2, 3])
        for (const offload of [true, false])
          for (const checkpoint of ['gpu', 'host'] as const)
            grid.push([model, { sp, seq: 72, chunk: 72 / chunks, offload, checkpoint, zero: sp % 2 ? 0 : 3, keepAttention: (sp + chunks) % 3 }]);

  it(`passes on a grid of ${grid.length} tiny configurations @slow`, () => {
    for (const [model, over] of grid) {
      const s = scheduleOf(model, over);
      try {
        verifySchedule(s, {});
      } catch (e) {
        throw new Error(`${model} ${JSON.stringify(over)}: ${(e as Error).message}`);
      }
    }
  });

  for (const name of Object.keys(MODELS).filter((m) => !m.startsWith('tiny')))
    it(`passes on ${name} at its default run (a window of layers and chunks)`, () => {
      verifySchedule(scheduleOf(name));
    });

  it('passes with plain Ulysses (--fpdt off)', () => {
    verifySchedule(scheduleOf('tiny-llama', { fpdt: false, sp: 4 }), {});
  });

  // every 3rd of the program's ~1650 waits (each check re-verifies the whole schedule: 4 s, so @slow),
  // and every 15th in the fast suite (about 100 of the waits are necessary, 12 of them among every 15th)
  for (const [every, least, tag] of [[3, 20, ' @slow'], [15, 3, '']] as const) {
  it(`names the buffer, both instructions and both streams when a wait is dropped (one wait in ${every})${tag}`, () => {
    // FPDT's host stashes: the kv fetches and their waits are what this drops
    const s = scheduleOf('tiny-llama', { sp: 2, seq: 96, chunk: 24, stashes: 'host' });
    const n = countWaits(s.body);
    let caught = 0;
    let message = '';
    for (let k = 0; k < n; k += every) {
      try {
        verifySchedule(dropWait(s, k), {});
      } catch (e) {
        expect(e).to.be.instanceOf(ScheduleError);
        caught++;
        message ||= (e as Error).message;
      }
    }
    // Many waits are implied by others (the sync pass does not reduce them transitively);
    // every wait the checker finds necessary must be reported.
    expect(caught, `${caught} of ${Math.ceil(n / every)} dropped waits caught`).to.be.greaterThan(least);
    expect(message).to.match(/^hazard on \S+ slot \d+ elements \[\d+, \d+\): i\d+ \(\w+: \w+.*\) (reads|writes) and i\d+ \(\w+: \w+.*\) (reads|writes), on streams \w+ and \w+/);
  });
  }

  it('catches a kv fetch written into the slot the running block reads', () => {
    const s = scheduleOf('tiny-llama', { sp: 2, seq: 96, chunk: 24, keepAttention: 0, stashes: 'host' });
    let mutated = false;
    const body = mapItems(s.body, (it) => {
      if (mutated || it.kind !== 'instr' || it.op !== 'copy' || !it.writes[0].buf.endsWith('k_slot')) return it;
      mutated = true;
      const w = it.writes[0];
      return { ...it, writes: [{ ...w, slot: { c: (w.slot?.c ?? 0) + 1, t: w.slot?.t ?? {} } }] };
    });
    expect(mutated).to.equal(true);
    expect(() => verifySchedule({ ...s, body }, {})).to.throw(ScheduleError, /k_slot/);
  });

  it('catches a reference outside its buffer', () => {
    const s = scheduleOf('tiny-llama');
    const body = mapItems(s.body, (it) => (it.kind === 'instr' && it.op === 'embedding' ? { ...it, writes: [{ ...it.writes[0], off: { c: 1e9, t: {} } }] } : it));
    expect(() => verifySchedule({ ...s, body }, {})).to.throw(ScheduleError, /outside its/);
  });
});

describe('schedule verification in planned arena bytes', () => {
  it('catches a buffer written over bytes another stream still uses when the sync pass ignores the plan', async () => {
    const { lowerStep } = await import('../../compiler/lower/step.js');
    const { syncStreams } = await import('../../compiler/schedule/sync.js');
    const { planMemory } = await import('../../compiler/schedule/memory.js');
    const { deviceProfile } = await import('../../compiler/schedule/devices.js');
    const { graphOf, syncedSchedule } = await import('./helpers.js');
    let races = 0;
    for (const model of ['tiny-llama', 'tiny-gpt'])
      for (const sp of [1, 2, 4])
        for (const offload of [true, false]) {
          const g = graphOf(model, { sp, seq: 96, chunk: 24, offload, keepAttention: 0, keepActivations: 0, ...(offload ? { stashes: 'host' as const } : {}) });
          const raw = lowerStep(g);
          const plan = planMemory(raw, deviceProfile('h200'));
          try {
            verifySchedule(syncStreams(raw), { placements: plan.placements });
          } catch (e) {
            expect((e as Error).message).to.match(/reusing the bytes of/);
            races++;
          }
          // the schedule stages' sync knows the plan: no race (checked in the bytes of its own plan)
          const synced = syncedSchedule(g);
          verifySchedule(synced, { placements: planMemory(synced, deviceProfile('h200')).placements });
        }
    expect(races, 'configurations where ignoring the plan races').to.be.greaterThan(0);
  });
});
