// Where the offloaded backward reads what it already holds (lower/attention.ts): kv step 0's first
// block reads chunk u-1's dO from the chunk buffer the prep loop left it in, and the last kv step's
// diagonal block reads chunk u-1's q, dO, lse, D and dq partial from the rotating slots the block
// before it filled, so neither waits for a round trip through the host.
import { expect } from 'chai';
import type { Instr, Item, Loop, Schedule } from '../../compiler/schedule/types.js';
import { scheduleOf } from './helpers.js';

function* walk(items: readonly Item[], loops: Loop[] = []): Generator<{ it: Instr; loops: Loop[] }> {
  for (const it of items) {
    if (it.kind === 'loop') yield* walk(it.body, [...loops, it]);
    else if (it.kind === 'instr') yield { it, loops };
  }
}

/** The backward blocks in program order, with the kv loop each sits in. */
function bwdBlocks(s: Schedule) {
  return [...walk(s.body)].filter((x) => x.it.op === 'attn_bwd_block').map((x) => ({ ...x, kv: [...x.loops].reverse().find((l) => l.role === 'kv')! }));
}

for (const [u, chunk] of [
  [2, 48],
  [4, 24],
] as const) {
  describe(`the offloaded backward at its turns (tiny-llama, ${u} chunks, stashes on the host)`, () => {
    const s = scheduleOf('tiny-llama', { sp: 2, seq: 96, chunk, stashes: 'host' });
    const blocks = bwdBlocks(s);
    const first = blocks[0];
    const last = blocks.at(-1)!;

    it("kv step 0's first block is chunk u-1's and reads dO from its chunk buffer, not a slot", () => {
      expect(first.kv.from.c).to.equal(0);
      const dO = first.it.reads[3];
      expect(dO.buf).to.match(/^b\.d_attn.*@h$/);
      expect(dO.slot).to.deep.include({ c: u - 1 });
    });

    it('the last kv step has only its diagonal block, which reads the rotating slots and fetches nothing into them', () => {
      expect(last.it.attrs.causal).to.equal(true);
      expect(last.kv.from.c).to.equal(u - 1);
      expect(blocks.filter((x) => x.kv === last.kv)).to.have.length(1);
      for (const r of last.it.reads.slice(0, 6)) expect(r.buf, r.buf).to.not.match(/dslot/);
      for (const r of last.it.writes) expect(r.buf, r.buf).to.not.match(/dslot/);
      const copies = [...walk(last.kv.body)].filter((x) => x.it.op === 'copy' && x.it.stream === 'h2d').map((x) => x.it.writes[0].buf);
      expect(copies.every((b) => /bk_slot|bv_slot/.test(b)), copies.join(' ')).to.equal(true);
    });
  });
}
