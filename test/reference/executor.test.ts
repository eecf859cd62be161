// The schedule executor against the unchunked model: every FPDT configuration of the tiny
// models must give the plain model's loss, gradients and updated parameters to 1e-9, in
// program order and in adversarial stream interleavings.
import { expect } from 'chai';
import { checkModel, type CheckOptions, type CheckReport } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import type { Model } from '../../compiler/dsl/index.js';
import { Rng } from '../../compiler/reference/rng.js';
import tinyGpt from '../../models/tiny-gpt.js';
import tinyLlama from '../../models/tiny-llama.js';

const MODELS: Record<string, Model> = { 'tiny-llama': tinyLlama, 'tiny-gpt': tinyGpt };

/** Private arenas: the schedule's own numerics and events (see the planned-arena cases below). */
function run(name: string, o: TrainDefaults, opts: CheckOptions = {}): CheckReport {
  const m = MODELS[name];
  return checkModel(m, resolveConfig(m.def.train!, o), { orders: 3, arena: 'private', seed: 7, ...opts });
}

const describeConfig = (o: TrainDefaults) =>
  Object.entries(o)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

// chunk = seq / u, a multiple of sp; tiny-llama has 12 q heads and 2 kv heads (sp 3, 4 replicate kv)
const MATRIX: [string, TrainDefaults][] = [
  ['tiny-llama', { sp: 1, seq: 96, chunk: 96 }],
  ['tiny-llama', { sp: 2, seq: 96, chunk: 48 }],
  ['tiny-llama', { sp: 3, seq: 72, chunk: 24 }],
  ['tiny-llama', { sp: 4, seq: 96, chunk: 12 }],
  ['tiny-llama', { sp: 4, seq: 96, chunk: 32, offload: false }],
  ['tiny-llama', { sp: 3, seq: 72, chunk: 24, checkpoint: 'gpu', zero: 0 }],
  ['tiny-llama', { sp: 2, seq: 120, chunk: 40, offload: false, checkpoint: 'gpu' }],
  ['tiny-llama', { sp: 2, seq: 96, chunk: 24, zero: 0 }],
  ['tiny-gpt', { sp: 1, seq: 96, chunk: 12 }],
  ['tiny-gpt', { sp: 2, seq: 96, chunk: 32 }],
  ['tiny-gpt', { sp: 3, seq: 72, chunk: 24, offload: false, zero: 0 }],
  ['tiny-gpt', { sp: 4, seq: 96, chunk: 48, checkpoint: 'gpu' }],
  ['tiny-gpt', { sp: 4, seq: 120, chunk: 40, offload: false, checkpoint: 'gpu', zero: 0 }],
];

describe('schedule executor equals the unchunked model', () => {
  for (const [name, o] of MATRIX)
    it(`${name}: ${describeConfig(o)}`, () => {
      const r = run(name, o);
      expect(r.maxError, JSON.stringify({ loss: r.loss, grads: r.grads.filter((g) => !(g.error <= 1e-9)) })).to.be.at.most(1e-9);
      expect(r.ok).to.equal(true);
    });

  it('planned arenas in issue order (buffers share bytes as the memory plan says)', () => {
    const r = run('tiny-llama', { sp: 2, seq: 96, chunk: 24 }, { arena: 'planned', orders: 1 });
    expect(r.maxError).to.be.at.most(1e-9);
  });

  // Known bug (schedule/memory.ts with schedule/sync.ts): the plan lets two buffers share
  // bytes when their program intervals do not meet, but the sync pass orders accesses to one
  // buffer only; the last access of the first (e.g. f.k_rot@h's d2h copy to its stash) and the
  // first of the second (b.attn_in.r's rmsnorm on compute) are on different streams with no
  // event between them. Enable when the sync pass orders byte-sharing buffers.
  it.skip('planned arenas in adversarial orders (known bug: the plan reuses bytes another stream still uses)', () => {
    const r = run('tiny-llama', { sp: 2, seq: 96, chunk: 24 }, { arena: 'planned', orders: 3 });
    expect(r.reuseRaces).to.deep.equal([]);
    expect(r.maxError).to.be.at.most(1e-9);
  });

  it('finds a reuse race of the memory plan and names both buffers', () => {
    const r = run('tiny-llama', { sp: 2, seq: 96, chunk: 24 }, { arena: 'planned', orders: 2 });
    // a finding, until the bug above is fixed; then this documents that the detector is quiet
    for (const x of r.reuseRaces) expect(x).to.match(/writes \S+ over bytes of \S+, which \d+ more access/);
  });

  it('random valid configurations (seeded, bounded in time)', function () {
    const rng = new Rng(2024);
    const start = Date.now();
    let ran = 0;
    while (ran < 12 && Date.now() - start < 8000) {
      const name = rng.uniform() < 0.5 ? 'tiny-llama' : 'tiny-gpt';
      const sp = [1, 2, 3, 4][rng.int(4)];
      const u = [1, 2, 3, 4, 6][rng.int(5)];
      // seq = u * chunk, chunk a multiple of sp and of 12 / sp-friendly sizes
      const chunk = sp * [2, 4, 6][rng.int(3)];
      const o: TrainDefaults = {
        sp,
        seq: u * chunk,
        chunk,
        offload: rng.uniform() < 0.5,
        checkpoint: rng.uniform() < 0.5 ? 'gpu' : 'host',
        zero: rng.uniform() < 0.5 ? 0 : 3,
      };
      const r = run(name, o, { orders: 2, seed: ran + 1 });
      expect(r.maxError, `${name} ${describeConfig(o)}`).to.be.at.most(1e-9);
      ran++;
    }
    expect(ran).to.be.at.least(3);
  });
});
