// The op catalog: every instruction the lowering makes matches its entry, operands are found by
// name in the order the schedule lists them, and an instruction that strays from its entry is
// caught by verifyOps and by every schedule.json read.
import { expect } from 'chai';
import { scheduleToJson, readScheduleJson } from '../../compiler/schedule/export-json.js';
import { scheduleHash } from '../../compiler/schedule/json.js';
import { inOrder, OP_NAMES, operandNames, readsOf, SCHEDULE_OPS, writesOf } from '../../compiler/schedule/ops.js';
import type { Instr, Item, Schedule } from '../../compiler/schedule/types.js';
import { ScheduleError, verifyOps } from '../../compiler/schedule/verify.js';
import { scheduleOf } from '../lower/helpers.js';

const instrs = (items: readonly Item[], out: Instr[] = []): Instr[] => {
  for (const it of items) it.kind === 'loop' ? instrs(it.body, out) : it.kind === 'instr' && out.push(it);
  return out;
};

/** The schedule with its first instruction of `op` changed by `f`. */
function mutate(s: Schedule, op: string, f: (i: Instr) => Instr): Schedule {
  let done = false;
  const map = (items: readonly Item[]): Item[] =>
    items.map((it) => {
      if (it.kind === 'loop') return { ...it, body: map(it.body) };
      if (it.kind === 'instr' && it.op === op && !done) {
        done = true;
        return f(it);
      }
      return it;
    });
  const out = { ...s, body: map(s.body) };
  expect(done, `no ${op} to change`).to.equal(true);
  return out;
}

describe('schedule/ops (the catalog)', () => {
  const packed = scheduleOf('tiny-llama', { sp: 2, packed: true });
  const gpt = scheduleOf('tiny-gpt', { sp: 2 });

  it('matches every instruction of lowered schedules, and the lowering uses every op but the spans it has no model for', () => {
    verifyOps(packed);
    verifyOps(gpt);
    const used = new Set([...instrs(packed.body), ...instrs(gpt.body)].map((i) => i.op));
    // tiny-llama and tiny-gpt between them run every op, reduce_scatter under ZeRO-3 included
    expect(OP_NAMES.filter((o) => !used.has(o))).to.deep.equal([]);
  });

  it('names operands in the order the instruction lists them, conditional ones by their flag', () => {
    const block = instrs(packed.body).find((i) => i.op === 'attn_bwd_block')!;
    expect(operandNames(block, 'reads')).to.deep.equal(['q', 'k', 'v', 'do', 'lse', 'delta', 'qDocs', 'kvDocs']);
    const r = readsOf(block as Instr & { op: 'attn_bwd_block' });
    expect(r.delta).to.equal(block.reads[5]);
    expect(r.kvDocs).to.equal(block.reads[7]);
    expect(writesOf(block as Instr & { op: 'attn_bwd_block' }).dkAcc).to.equal(block.writes[1]);
    const lin = instrs(gpt.body).find((i) => i.op === 'linear' && i.attrs.bias === true)!;
    expect(inOrder('linear', lin.attrs, 'reads', readsOf(lin as Instr & { op: 'linear' }))).to.deep.equal(lin.reads);
    expect(() => inOrder('linear', { bias: false }, 'reads', { x: lin.reads[0], w: lin.reads[1], b: lin.reads[2] })).to.throw(/'b'.*'bias' is not true/);
    expect(() => inOrder('add', {}, 'reads', { a: lin.reads[0] })).to.throw(/'b' \(reads\) is missing/);
  });

  it('every entry names its operands once per side', () => {
    for (const [op, spec] of Object.entries(SCHEDULE_OPS))
      for (const side of ['reads', 'writes'] as const) {
        const names = spec[side].map((o) => (typeof o === 'string' ? o : o.name));
        expect(new Set(names).size, `${op} ${side}`).to.equal(names.length);
      }
  });

  it('catches an instruction that strays from its entry (verifyOps), and schedule.json an op not in the catalog', () => {
    const cases: [string, Schedule, RegExp][] = [
      ['a dropped read', mutate(gpt, 'attn_bwd_block', (i) => ({ ...i, reads: i.reads.slice(0, 5) })), /attn_bwd_block has 5 reads, the catalog 6/],
      ['a bias read without its flag', mutate(gpt, 'linear', (i) => ({ ...i, attrs: { ...i.attrs, bias: false } })), /linear has 3 reads, the catalog 2 \(x, w\)/],
      ['a missing attribute', mutate(gpt, 'all_to_all', (i) => ({ ...i, attrs: { ...i.attrs, headDim: undefined as unknown as number } })), /all_to_all attribute 'headDim' must be number/],
      ['a missing argument', mutate(gpt, 'rope', (i) => ({ ...i, args: {} })), /rope needs the argument 'pos0'/],
      ['an op not in the catalog', mutate(gpt, 'gelu', (i) => ({ ...i, op: 'gelu_tanh' as Instr['op'] })), /op 'gelu_tanh' is not in the catalog/],
    ];
    for (const [what, s, re] of cases) expect(() => verifyOps(s), what).to.throw(ScheduleError, re);
    const doc = scheduleToJson(cases[4][1]);
    expect(() => readScheduleJson(JSON.stringify({ ...doc, hash: scheduleHash(doc) }), 'x/schedule.json')).to.throw(/op 'gelu_tanh' is not in the catalog/);
  });
});
