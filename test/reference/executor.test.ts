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

/** Buffers share bytes as the memory plan lays them out, so reuse is checked too. */
function run(name: string, o: TrainDefaults, opts: CheckOptions = {}): CheckReport {
  const m = MODELS[name];
  return checkModel(m, resolveConfig(m.def.train!, o), { orders: 3, arena: 'planned', seed: 7, ...opts });
}

const describeConfig = (o: TrainDefaults) =>
  Object.entries(o)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

// chunk = seq / u, a multiple of sp; tiny-llama has 12 q heads and 2 kv heads (sp 3, 4 replicate kv).
// Offloaded configurations without `stashes` get the planner's choice (the GPU, at these sizes); those
// with `stashes: 'host'` run FPDT's copies and double buffers.
// Rows marked 'slow' run with `npm run test:build` (CI runs both), keeping `npm test` under its time.
const MATRIX: [string, TrainDefaults, 'slow'?][] = [
  ['tiny-llama', { sp: 1, seq: 96, chunk: 96, keepAttention: 0 }],
  ['tiny-llama', { sp: 2, seq: 96, chunk: 48, keepAttention: 0, stashes: 'host' }, 'slow'],
  ['tiny-llama', { sp: 2, seq: 96, chunk: 24, keepAttention: 1 }],
  ['tiny-llama', { sp: 3, seq: 72, chunk: 24, keepAttention: 0 }, 'slow'],
  ['tiny-llama', { sp: 4, seq: 96, chunk: 12, keepAttention: 2, stashes: 'host' }],
  ['tiny-llama', { sp: 4, seq: 96, chunk: 32, offload: false }, 'slow'],
  ['tiny-llama', { sp: 3, seq: 72, chunk: 24, checkpoint: 'gpu', zero: 0, keepAttention: 0, stashes: 'host' }, 'slow'],
  ['tiny-llama', { sp: 2, seq: 120, chunk: 40, offload: false, checkpoint: 'gpu' }, 'slow'],
  ['tiny-llama', { sp: 2, seq: 96, chunk: 24, zero: 0 }, 'slow'],
  ['tiny-llama', { sp: 2, seq: 96, chunk: 24, optimizer: 'host', stashes: 'host' }, 'slow'],
  ['tiny-gpt', { sp: 4, seq: 96, chunk: 24, optimizer: 'host', zero: 0, keepAttention: 1 }],
  ['tiny-gpt', { sp: 1, seq: 96, chunk: 12, keepAttention: 0, stashes: 'host' }],
  ['tiny-gpt', { sp: 2, seq: 96, chunk: 32, keepAttention: 1 }, 'slow'],
  ['tiny-gpt', { sp: 3, seq: 72, chunk: 24, offload: false, zero: 0 }, 'slow'],
  ['tiny-gpt', { sp: 4, seq: 96, chunk: 48, checkpoint: 'gpu', keepAttention: 0, stashes: 'host' }, 'slow'],
  ['tiny-gpt', { sp: 4, seq: 120, chunk: 40, offload: false, checkpoint: 'gpu', zero: 0 }],
];

describe('schedule executor equals the unchunked model', () => {
  for (const [name, o, slow] of MATRIX)
    it(`${name}: ${describeConfig(o)}${slow ? ' @slow' : ''}`, () => {
      const r = run(name, o);
      expect(r.maxError, JSON.stringify({ loss: r.loss, grads: r.grads.filter((g) => !(g.error <= 1e-9)) })).to.be.at.most(1e-9);
      expect(r.ok).to.equal(true);
    });

  it('private arenas (each buffer its own bytes) give the same numbers', () => {
    const r = run('tiny-llama', { sp: 2, seq: 96, chunk: 24 }, { arena: 'private' });
    expect(r.maxError).to.be.at.most(1e-9);
  });

  it('no write reuses bytes another stream still uses, in adversarial orders', () => {
    const r = run('tiny-llama', { sp: 2, seq: 96, chunk: 24, stashes: 'host' }, { orders: 4 });
    expect(r.reuseRaces).to.deep.equal([]);
    expect(r.maxError).to.be.at.most(1e-9);
  });

  it('random valid configurations (seeded, bounded in time) @slow', function () {
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
        keepAttention: rng.int(3),
        optimizer: rng.uniform() < 0.3 ? 'host' : 'gpu',
        stashes: rng.uniform() < 0.5 ? 'host' : 'gpu',
      };
      const r = run(name, o, { orders: 2, seed: ran + 1 });
      expect(r.maxError, `${name} ${describeConfig(o)}`).to.be.at.most(1e-9);
      ran++;
    }
    expect(ran).to.be.at.least(3);
  });
});
