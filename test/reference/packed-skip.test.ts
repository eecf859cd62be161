// Packed documents: a block off the diagonal whose query chunk and key chunk share no document is
// skipped with the transfers only it reads (DOCUMENTS_MEET: lower/packed.ts ifDocumentsMeet), as
// the GPU program skips them from the ids it took before the step. The float64 executor skips
// them alike and the step still equals its documents run on their own (offloaded and resident,
// sp 1 and 2, dp 2); skipping a block that is needed, on purpose, is caught.
import { expect } from 'chai';
import { checkModel, type CheckOptions, type CheckReport } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import { aff, DOCUMENTS_MEET, type Instr, type Item, type Schedule } from '../../compiler/schedule/types.js';
import tinyLlama from '../../models/tiny-llama.js';
import { scheduleOf } from '../lower/helpers.js';

const run = (o: TrainDefaults, opts: CheckOptions = {}): CheckReport =>
  checkModel(tinyLlama, resolveConfig(tinyLlama.def.train!, { packed: true, ...o }), { orders: 2, arena: 'planned', seed: 29, ...opts });

function* instrs(items: readonly Item[]): Generator<Instr> {
  for (const it of items) {
    if (it.kind === 'instr') yield it;
    else if (it.kind === 'loop') yield* instrs(it.body);
  }
}

describe('packed documents: blocks without a shared document skipped', function () {
  this.timeout(120_000);

  for (const [name, o] of [
    ['sp 2, offloaded', { sp: 2, seq: 96, chunk: 24 }],
    ['sp 2, resident', { sp: 2, seq: 96, chunk: 24, offload: false }],
    ['sp 1, chunk 16', { sp: 1, seq: 96, chunk: 16 }],
    ['dp 2 x sp 2', { sp: 2, dp: 2, seq: 96, chunk: 24 }],
  ] as const) {
    it(`${name}: skips some and equals the documents on their own (1e-9)`, () => {
      const r = run(o);
      expect(r.skipped, 'instructions skipped').to.be.greaterThan(0);
      expect(r.maxError).to.be.below(1e-9);
    });
  }

  it('marks only what one block off the diagonal reads: its fetches, the block, its dq round trip', () => {
    const s = scheduleOf('tiny-llama', { packed: true, sp: 2, seq: 96, chunk: 24, stashes: 'host' });
    const marked = [...instrs(s.body)].filter((it) => it.attrs[DOCUMENTS_MEET] === true);
    const ops = new Set(marked.map((it) => (it.op === 'copy' ? `copy ${String(it.attrs.dir)}` : it.op)));
    expect([...ops].sort()).to.deep.equal(['attn_bwd_block', 'attn_fwd_block', 'copy d2h', 'copy h2d']);
    for (const it of marked) {
      expect(it.args?.docsQ && it.args?.docsKv, it.id).to.not.equal(undefined);
      if (it.op.startsWith('attn_')) expect(it.attrs.causal, `${it.id}: a diagonal block is never skipped`).to.equal(false);
    }
    // the dq partials start at zero at kv step 0 whatever the blocks do: those fills are never skipped
    expect([...instrs(s.body)].filter((it) => it.op === 'fill' && it.attrs[DOCUMENTS_MEET] === true)).to.deep.equal([]);
    // without packing nothing is marked
    const plain = scheduleOf('tiny-llama', { sp: 2, seq: 96, chunk: 24 });
    expect([...instrs(plain.body)].some((it) => it.attrs[DOCUMENTS_MEET] !== undefined)).to.equal(false);
  });

  it('skipping the diagonal blocks (as if the first and last chunks were theirs) is caught', () => {
    const u = 96 / 24;
    const wrong = (s: Schedule): Schedule => {
      let n = 0;
      const walk = (items: readonly Item[]): Item[] =>
        items.map((it) => {
          if (it.kind === 'loop') return { ...it, body: walk(it.body) };
          if (it.kind !== 'instr' || !it.op.startsWith('attn_') || !it.op.endsWith('_block') || it.attrs.causal !== true) return it;
          n++;
          return { ...it, attrs: { ...it.attrs, [DOCUMENTS_MEET]: true }, args: { ...it.args, docsQ: aff(0), docsKv: aff(u - 1) } };
        });
      const out = { ...s, body: walk(s.body) };
      expect(n, 'diagonal blocks marked').to.be.greaterThan(0);
      return out;
    };
    const r = run({ sp: 2, seq: 96, chunk: 24 }, { mutate: wrong, verify: false, orders: 1 });
    expect(r.ok).to.equal(false);
    expect(r.maxError).to.be.above(1e-3);
  });
});
