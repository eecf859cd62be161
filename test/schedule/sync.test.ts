// The sync pass (compiler/schedule/sync.ts) on small hand-built programs, by the invariants of
// its header: each test writes a program without events and the listing the pass must produce,
// and the result passes the hazard checker; one drops each wait on purpose and checks that the
// checker names the hazard. The two-iterations-back and most-recent-wait programs are built so
// that a pass carrying one iteration only, or keeping the wrong wait, fails them (checked by
// mutating the pass).
import { expect } from 'chai';
import { listSchedule } from '../../compiler/schedule/listing.js';
import { sharedBytes, type Placement } from '../../compiler/schedule/memory.js';
import { syncStreams } from '../../compiler/schedule/sync.js';
import { aff, v, type Item, type Schedule } from '../../compiler/schedule/types.js';
import { ScheduleError, verifySchedule } from '../../compiler/schedule/verify.js';
import { buffer, instr, loop, ref, scheduleOf } from './fixtures.js';

const listing = (s: Schedule) => listSchedule(s, { header: false });

function waitsOf(items: readonly Item[]): number {
  return items.reduce((n, it) => n + (it.kind === 'loop' ? waitsOf(it.body) : it.kind === 'wait' ? 1 : 0), 0);
}

/** The schedule without its k-th wait (in program order). */
function dropWait(s: Schedule, k: number): Schedule {
  let seen = 0;
  const drop = (items: readonly Item[]): Item[] =>
    items.flatMap((it): Item[] => (it.kind === 'loop' ? [{ ...it, body: drop(it.body) }] : it.kind === 'wait' && seen++ === k ? [] : [it]));
  return { ...s, body: drop(s.body) };
}

/** KV blocks j = 0..3: the fetch of block j+1 into the other slot of a double buffer runs beside block j. */
function doubleBuffered(): Schedule {
  return scheduleOf(
    [
      instr('h2d', 'copy', [ref('kv_host', 0, 8)], [ref('kv', 0, 8, aff(0))], { id: 'fetch0' }),
      loop('j', 0, 4, 'kv', [
        instr('h2d', 'copy', [ref('kv_host', v('j', 8, 8), 8)], [ref('kv', 0, 8, v('j', 1, 1))], { id: 'fetch' }),
        instr('compute', 'attn_fwd_block', [ref('kv', 0, 8, v('j'))], [ref('o', 0, 8)], { id: 'block' }),
      ]),
      instr('d2h', 'copy', [ref('o', 0, 8)], [ref('o_host', 0, 8)], { id: 'out' }),
    ],
    [buffer('kv_host', 'host', 'stash', [40]), buffer('kv', 'gpu', 'attn', [8], 2), buffer('o', 'gpu', 'chunk', [8]), buffer('o_host', 'host', 'stash', [8])],
  );
}

describe('sync pass', () => {
  it('orders a double buffer by slot: the fetch into slot j+1 waits only for the block that read that slot (invariants 1-3)', () => {
    const s = syncStreams(doubleBuffered());
    expect(listing(s)).to.equal(
      [
        'h2d      copy             kv_host[0:+8] -> kv@0  # fetch0',
        'h2d      record           e1[0]',
        'for j in 0..4:  # kv',
        '  h2d      wait             e0[j+1]',
        '  h2d      copy             kv_host[8*j+8:+8] -> kv@j+1  # fetch',
        '  h2d      record           e2[j+1]',
        '  compute  wait             e1[j]',
        '  compute  wait             e2[j]',
        '  compute  attn_fwd_block   kv@j -> o  # block',
        '  compute  record           e0[j]',
        '  compute  record           e3',
        'd2h      wait             e3',
        'd2h      copy             o -> o_host  # out',
        '',
      ].join('\n'),
    );
    expect(s.events).to.deep.equal({ e0: 2, e1: 2, e2: 2, e3: 1 });
    verifySchedule(s, {});
  });

  it('emits only necessary waits here: dropping any one of them is a hazard the checker names', () => {
    const s = syncStreams(doubleBuffered());
    const n = waitsOf(s.body);
    expect(n).to.equal(4);
    for (let k = 0; k < n; k++) expect(() => verifySchedule(dropWait(s, k), {}), `wait ${k} dropped`).to.throw(ScheduleError, /^hazard on (kv|o) /);
  });

  it('finds a dependency carried two iterations back: a fetch two blocks ahead into the same slot (invariant 1)', () => {
    // block j reads slot j, which the fetch of iteration j-2 wrote; iteration j-1 used the other slot
    const s = syncStreams(
      scheduleOf(
        [
          instr('h2d', 'copy', [ref('kv_host', 0, 8)], [ref('kv', 0, 8, aff(0))], { id: 'fetch0' }),
          instr('h2d', 'copy', [ref('kv_host', 8, 8)], [ref('kv', 0, 8, aff(1))], { id: 'fetch1' }),
          loop('j', 0, 4, 'kv', [
            instr('compute', 'attn_fwd_block', [ref('kv', 0, 8, v('j'))], [ref('o', 0, 8)], { id: 'block' }),
            instr('h2d', 'copy', [ref('kv_host', v('j', 8, 16), 8)], [ref('kv', 0, 8, v('j', 1, 2))], { id: 'fetch' }),
          ]),
        ],
        [buffer('kv_host', 'host', 'stash', [48]), buffer('kv', 'gpu', 'attn', [8], 2), buffer('o', 'gpu', 'chunk', [8])],
      ),
    );
    expect(listing(s)).to.equal(
      [
        'h2d      copy             kv_host[0:+8] -> kv@0  # fetch0',
        'h2d      record           e0[0]',
        'h2d      copy             kv_host[8:+8] -> kv@1  # fetch1',
        'h2d      record           e1[1]',
        'for j in 0..4:  # kv',
        '  compute  wait             e0[j]',
        '  compute  wait             e1[j]',
        '  compute  wait             e2[j]',
        '  compute  attn_fwd_block   kv@j -> o  # block',
        '  compute  record           e3[j]',
        '  h2d      wait             e3[j+2]',
        '  h2d      copy             kv_host[8*j+16:+8] -> kv@j+2  # fetch',
        '  h2d      record           e2[j+2]',
        '',
      ].join('\n'),
    );
    verifySchedule(s, {});
  });

  it('hoists a wait on an event recorded before a loop and issues it once per stretch (invariant 5)', () => {
    const s = syncStreams(
      scheduleOf(
        [
          instr('compute', 'fill', [], [ref('w', 0, 8)], { id: 'prep' }),
          loop('i', 0, 3, 'chunk', [instr('d2h', 'copy', [ref('w', 0, 8)], [ref('w_host', v('i', 8), 8)], { id: 'save' })]),
          instr('comm', 'all_gather', [ref('w', 0, 8)], [ref('g', 0, 8)], { id: 'gather_a' }),
          instr('comm', 'all_gather', [ref('w', 0, 8)], [ref('g2', 0, 8)], { id: 'gather_b' }),
        ],
        [buffer('w', 'gpu', 'chunk', [8]), buffer('w_host', 'host', 'stash', [24]), buffer('g', 'gpu', 'gathered', [8]), buffer('g2', 'gpu', 'gathered', [8])],
      ),
    );
    expect(listing(s)).to.equal(
      [
        'compute  fill             - -> w  # prep',
        'compute  record           e0',
        'd2h      wait             e0',
        'for i in 0..3:  # chunk',
        '  d2h      copy             w -> w_host[8*i:+8]  # save',
        'comm     wait             e0',
        'comm     all_gather       w -> g  # gather_a',
        'comm     all_gather       w -> g2  # gather_b',
        '',
      ].join('\n'),
    );
    verifySchedule(s, {});
  });

  it('leaves in the loop body a wait that an instruction of its stream comes before: hoisted, it would hold that one too (invariant 5)', () => {
    // the loop's first fetch needs nothing the compute stream does; its second reuses bytes the
    // block before the loop reads, so only the second waits, inside the loop, after the first
    const s = syncStreams(
      scheduleOf(
        [
          instr('compute', 'attn_fwd_block', [ref('x', 0, 8)], [ref('o', 0, 8)], { id: 'block' }),
          loop('i', 0, 2, 'chunk', [
            instr('h2d', 'copy', [ref('a_host', v('i', 8), 8)], [ref('a', 0, 8)], { id: 'early' }),
            instr('h2d', 'copy', [ref('b_host', v('i', 8), 8)], [ref('x', 0, 8)], { id: 'late' }),
            instr('compute', 'attn_bwd_prep', [ref('a', 0, 8), ref('x', 0, 8)], [ref('o', 0, 8)], { id: 'use' }),
          ]),
        ],
        [
          buffer('x', 'gpu', 'chunk', [8]),
          buffer('o', 'gpu', 'chunk', [8]),
          buffer('a', 'gpu', 'attn', [8]),
          buffer('a_host', 'host', 'stash', [16]),
          buffer('b_host', 'host', 'stash', [16]),
        ],
      ),
    );
    const lines = listing(s).split('\n');
    const at = (text: string) => lines.findIndex((l) => l.includes(text));
    const blockEvent = lines[at('# block') + 1].split(/\s+/).at(-1)!; // 'compute record eN'
    const wait = at(`h2d      wait             ${blockEvent}`);
    expect(wait).to.be.greaterThan(at('# early'));
    expect(wait).to.be.lessThan(at('# late'));
    expect(lines[wait]).to.match(/^  h2d/); // in the body
    expect(lines.slice(0, at('for i')).some((l) => l.startsWith('h2d'))).to.equal(false);
    verifySchedule(s, {});
  });

  it('keeps, of the waits on one stream\'s records in the same loop body, the most recent one (invariant 5)', () => {
    // sum waits for four loads on h2d: load_x ran last in this iteration (after load_w), and it
    // orders load_z and load_y of the previous iteration too. The reads are listed so that keeping
    // the first, the last, or the wrong one of either iteration leaves a hazard.
    const load = (b: string) => instr('h2d', 'copy', [ref(`${b}_host`, v('j', 8), 8)], [ref(b, 0, 8)], { id: `load_${b}` });
    const sum = instr('compute', 'add', ['w', 'y', 'x', 'z'].map((b) => ref(b, 0, 8)), [ref('o', v('j', 8), 8)], { id: 'sum' });
    const s = syncStreams(
      scheduleOf(
        [loop('j', 0, 4, 'chunk', [load('w'), load('x'), sum, load('z'), load('y')])],
        [...['w', 'x', 'y', 'z'].flatMap((b) => [buffer(`${b}_host`, 'host', 'stash', [32]), buffer(b, 'gpu', 'chunk', [8])]), buffer('o', 'gpu', 'chunk', [32])],
      ),
    );
    expect(listing(s)).to.equal(
      [
        'for j in 0..4:  # chunk',
        '  h2d      wait             e0',
        '  h2d      copy             w_host[8*j:+8] -> w  # load_w',
        '  h2d      record           e2',
        '  h2d      wait             e1',
        '  h2d      copy             x_host[8*j:+8] -> x  # load_x',
        '  h2d      record           e4',
        '  compute  wait             e4',
        '  compute  add              w, y, x, z -> o[8*j:+8]  # sum',
        '  compute  record           e0',
        '  compute  record           e1',
        '  compute  record           e6',
        '  compute  record           e7',
        '  h2d      wait             e6',
        '  h2d      copy             z_host[8*j:+8] -> z  # load_z',
        '  h2d      record           e5',
        '  h2d      wait             e7',
        '  h2d      copy             y_host[8*j:+8] -> y  # load_y',
        '  h2d      record           e3',
        '',
      ].join('\n'),
    );
    verifySchedule(s, {});
  });

  it("orders a write after the last accesses of the buffers whose bytes it reuses, given the plan's sharing (invariant 4)", () => {
    const program = scheduleOf(
      [
        instr('compute', 'fill', [], [ref('a', 0, 8)], { id: 'fill' }),
        instr('d2h', 'copy', [ref('a', 0, 8)], [ref('a_host', 0, 8)], { id: 'save' }),
        instr('h2d', 'copy', [ref('b_host', 0, 8)], [ref('b', 0, 8)], { id: 'load' }),
      ],
      [buffer('a', 'gpu', 'chunk', [8]), buffer('a_host', 'host', 'stash', [8]), buffer('b', 'gpu', 'chunk', [8]), buffer('b_host', 'host', 'stash', [8])],
    );
    // a plan that puts a and b on the same GPU bytes (a is dead when b is loaded)
    const at = (buf: string, live: [number, number]): Placement => ({ buf, space: 'gpu', kind: 'chunk', offset: 0, size: 256, live });
    const placements = [at('a', [0, 1]), at('b', [2, 2])];
    const load = (s: Schedule) => listing(s).split('\n').filter((l) => l.startsWith('h2d'));

    const unaware = syncStreams(program);
    expect(load(unaware)).to.deep.equal(['h2d      copy             b_host -> b  # load']);
    expect(() => verifySchedule(unaware, { placements })).to.throw(ScheduleError, /hazard on b \(reusing the bytes of a\)/);

    const s = syncStreams(program, sharedBytes({ placements }));
    // e0: the fill's write (compute), e1: the save's read (d2h); neither is an access to b
    expect(load(s)).to.deep.equal(['h2d      wait             e0', 'h2d      wait             e1', 'h2d      copy             b_host -> b  # load']);
    verifySchedule(s, { placements });
  });

  it('waits on every window of a stash when it touches all of it, and on its own window otherwise', () => {
    const s = syncStreams(
      scheduleOf(
        [
          loop('i', 0, 3, 'chunk', [instr('d2h', 'copy', [ref('q', 0, 8)], [ref('q_host', v('i', 8), 8)], { id: 'offload' })]),
          loop('i', 0, 3, 'chunk', [instr('h2d', 'copy', [ref('q_host', v('i', 8), 8)], [ref('q', 0, 8)], { id: 'fetch' })]),
          instr('h2d', 'copy', [ref('q_host', 0, 24)], [ref('all', 0, 24)], { id: 'fetch_all' }),
          instr('compute', 'fill', [], [ref('q_host', 0, 24)], { id: 'clear' }),
        ],
        [buffer('q', 'gpu', 'chunk', [8]), buffer('q_host', 'host', 'stash', [24]), buffer('all', 'gpu', 'chunk', [24])],
      ),
    );
    // windows of 8 elements of a 24-element stash: event arrays of 3, indexed by window number
    expect(s.events).to.deep.equal({ e0: 3, e1: 1, e2: 3, e3: 1 });
    expect(listing(s)).to.equal(
      [
        'for i in 0..3:  # chunk',
        '  d2h      copy             q -> q_host[8*i:+8]  # offload',
        '  d2h      record           e0[i]',
        '  d2h      record           e1',
        'h2d      wait             e1',
        'for i in 0..3:  # chunk',
        '  h2d      wait             e0[i]',
        '  h2d      copy             q_host[8*i:+8] -> q  # fetch',
        '  h2d      record           e2[i]',
        'h2d      wait             e0[0]',
        'h2d      wait             e0[1]',
        'h2d      wait             e0[2]',
        'h2d      copy             q_host -> all  # fetch_all',
        'h2d      record           e3',
        'compute  wait             e0[0]',
        'compute  wait             e0[1]',
        'compute  wait             e0[2]',
        'compute  wait             e2[0]',
        'compute  wait             e2[1]',
        'compute  wait             e2[2]',
        'compute  wait             e3',
        'compute  fill             - -> q_host  # clear',
        '',
      ].join('\n'),
    );
    verifySchedule(s, {});
  });
});
