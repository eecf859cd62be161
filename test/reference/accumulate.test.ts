// Gradient accumulation (`run --accumulate K`) on the float64 executor: K micro steps and one
// update must give the loss, gradients and updated weights of one batch of the K windows'
// sequences, the mean over every counted token of them (token-weighted). Then the ways to get
// it wrong, each broken on purpose and caught: gradients cleared between micro steps, a reduced
// gradient that overwrites the shard instead of adding to it, and each micro step divided by its
// own window's labels (the mean of the windows' means); and the phase invariant of the schedule.
import { expect } from 'chai';
import { checkModel, type CheckOptions, type CheckReport } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import { countLabels } from '../../compiler/reference/cpu-loss.js';
import { phaseBodies } from '../../compiler/schedule/phases.js';
import type { Instr, Item, Schedule } from '../../compiler/schedule/types.js';
import tinyLlama from '../../models/tiny-llama.js';

const CONFIG = { sp: 2, seq: 96, chunk: 24, offload: true } as const;

const run = (o: TrainDefaults, opts: CheckOptions = {}): CheckReport =>
  checkModel(tinyLlama, resolveConfig(tinyLlama.def.train!, o), { orders: 1, arena: 'private', seed: 11, accumulate: 2, ...opts });

function rewrite(items: readonly Item[], f: (it: Item) => Item[]): Item[] {
  return items.flatMap((it) => (it.kind === 'loop' ? [{ ...it, body: rewrite(it.body, f) }] : f(it)));
}

/** The zero phase's fills run with every micro step: each micro step starts from cleared gradients. */
function zeroEveryMicroStep(s: Schedule): Schedule {
  const first = phaseBodies(s).zero.find((x) => x.kind === 'instr')!;
  return { ...s, phases: { ...s.phases!, micro: first.id } };
}

/** The reduced gradient overwrites the shard (the step before accumulation): only the last window counts. */
function overwriteShards(s: Schedule): Schedule {
  let n = 0;
  const body = rewrite(s.body, (it) => {
    if (!(it.kind === 'instr' && it.op === 'grad_accumulate')) return [it];
    n++;
    return [{ ...it, op: 'copy', reads: [it.reads[0]], attrs: { dir: 'd2d' } } as Instr];
  });
  expect(n, 'accumulations rewritten').to.be.greaterThan(0);
  return { ...s, body };
}

describe('gradient accumulation: K micro steps equal one batch of K windows', () => {
  it('accumulate 2, sp 2, offload, ZeRO-3, in racing stream orders', () => {
    const r = run(CONFIG, { orders: 2 });
    expect(r.accumulate).to.equal(2);
    expect(r.ok, `max error ${r.maxError}`).to.equal(true);
  });

  it('@slow a step of one window is the step without accumulation', () => {
    const one = run(CONFIG, { accumulate: 1 });
    expect(one.ok).to.equal(true);
    expect(one.accumulate).to.equal(1);
  });

  it('@slow accumulate 3 over dp 2 groups (six sequences in the batch)', () => {
    const r = run({ ...CONFIG, dp: 2 }, { accumulate: 3, orders: 2 });
    expect(r.ok, `max error ${r.maxError}`).to.equal(true);
  });

  it('@slow accumulate 2 without ZeRO-3 or offload, one rank, states on the host', () => {
    expect(run({ sp: 1, seq: 96, chunk: 24, offload: false, checkpoint: 'gpu', zero: 0 }).ok).to.equal(true);
    expect(run({ ...CONFIG, optimizer: 'host' }).ok).to.equal(true);
  });

  it('@slow accumulate 2 with clipping by the global norm of the accumulated gradients', () => {
    expect(run(CONFIG, { maxGradNorm: 0.01 }).ok).to.equal(true);
  });
});

describe('check catches broken accumulation', () => {
  it('gradients cleared between micro steps', () => {
    const r = run(CONFIG, { mutate: zeroEveryMicroStep });
    expect(r.ok).to.equal(false);
    expect(Math.max(...r.grads.map((g) => g.error))).to.be.greaterThan(1e-3);
  });

  it('@slow a reduced gradient that overwrites the shard instead of adding to it', () => {
    const r = run(CONFIG, { mutate: overwriteShards, verify: false });
    expect(r.ok).to.equal(false);
    expect(Math.max(...r.grads.map((g) => g.error))).to.be.greaterThan(1e-3);
  });

  it("each micro step divided by its own window's labels (the mean of means, not the token mean)", () => {
    const own = run(CONFIG, { mutateWindows: (ws) => ws.map((w) => ({ ...w, labelCount: countLabels(w.labels) })) });
    expect(own.ok).to.equal(false);
    expect(own.loss.error).to.be.greaterThan(1e-9);
  });

  it('a phase boundary that leaves a working buffer across two phases breaks invariant 6', () => {
    const moveUpdate = (s: Schedule): Schedule => {
      // the update starting at the global gradient's accumulation: its one-layer buffer was written in micro
      const acc = s.body.find((x) => x.kind === 'instr' && x.op === 'grad_accumulate' && x.writes[0].buf === 'grads.global')!;
      return { ...s, phases: { ...s.phases!, update: acc.id } };
    };
    expect(() => run(CONFIG, { mutate: moveUpdate })).to.throw(/grads\.part_global .* micro and update phases .*invariant 6/);
  });
});
