// The chunk policy: allowed chunks, the suggestions of its errors, the nearest-divisor tie rule,
// the `auto` choice, and that `check --chunk auto` checks the chunk `compile --chunk auto` writes.
import { expect } from 'chai';
import { check, checkedConfig } from '../../compiler/check.js';
import { compile } from '../../compiler/compile.js';
import { LIMITS, resolveConfig } from '../../compiler/config.js';
import { UserError } from '../../compiler/errors.js';
import { checkChunk, chooseChunk, chunkCandidates, configuredChunk, leastChunk, nearestDivisor, suggestChunk, type ChunkTrial } from '../../compiler/schedule/chunk-policy.js';
import { MODELS } from '../lower/helpers.js';

const lineOf = (f: () => void): string => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return e instanceof UserError ? e.line() : `not a user error: ${(e as Error).message}`;
  }
};

describe('chunk policy', () => {
  describe('nearestDivisor', () => {
    it('finds the divisor closest to the target', () => {
      expect(nearestDivisor(1000000, 65536)).to.equal(62500);
      expect(nearestDivisor(96, 25)).to.equal(24);
    });

    it('breaks a tie toward the larger divisor (fewer chunks)', () => {
      expect(nearestDivisor(12, 5)).to.equal(6); // 4 and 6 are both 1 away
      expect(nearestDivisor(24, 5)).to.equal(6); // 4 and 6
      expect(nearestDivisor(60, 25)).to.equal(30); // 20 and 30
      expect(nearestDivisor(100, 15, 5)).to.equal(20); // 10 and 20, multiples of 5
    });

    it('keeps to multiples of step and at least min, else answers n', () => {
      expect(nearestDivisor(100, 24, 2)).to.equal(20);
      expect(nearestDivisor(96, 5, 1, 10)).to.equal(12);
      expect(nearestDivisor(7, 100)).to.equal(7);
      expect(nearestDivisor(30, 4, 7)).to.equal(30);
    });
  });

  describe('checkChunk', () => {
    it('accepts an allowed chunk', () => {
      expect(lineOf(() => checkChunk(65536, 4 * 2 ** 20, 32))).to.equal('ok');
      expect(lineOf(() => checkChunk(24, 96, 2))).to.equal('ok');
    });

    it('says each broken rule in one line of the catalog, with an allowed suggestion', () => {
      expect(lineOf(() => checkChunk(8192, 4096, 1))).to.equal('error: chunk 8192 is larger than seq 4096; use a chunk of at most 4096');
      expect(lineOf(() => checkChunk(65536, 1000000, 1))).to.equal('error: chunk 65536 does not divide seq 1000000; try 62500');
      expect(lineOf(() => checkChunk(65536, 1000000, 32))).to.equal('error: chunk 65536 does not divide seq 1000000; try 40000');
      expect(lineOf(() => checkChunk(2, 4096, 4))).to.match(/^error: chunk 2 is not a multiple of --sp 4/);
      expect(lineOf(() => checkChunk(4096, 2 ** 26, 2))).to.equal(
        `error: chunk 4096 cuts seq 67108864 into 16384 chunks; the planner supports at most ${LIMITS.chunks} (a layer's schedule grows with their square): use --chunk 262144 or larger`,
      );
    });

    it('a divisor that would make too many chunks is never suggested', () => {
      // 100 divides 25 * 2^20 and is closest to 101, but cuts it into 262144 chunks
      const seq = 25 * 2 ** 20;
      expect(nearestDivisor(seq, 101)).to.equal(100);
      expect(leastChunk(seq)).to.equal(102400);
      expect(lineOf(() => checkChunk(101, seq, 1))).to.equal(`error: chunk 101 does not divide seq ${seq}; try 102400`);
    });

    it('every suggestion passes the check it came from', () => {
      for (const seq of [96, 4096, 1000000, 3 * 2 ** 20, 2 ** 26, 2 ** 30 - 2 ** 10])
        for (const sp of [1, 2, 4, 32])
          for (const target of [1, 24, 1000, 65536, 10 ** 6]) {
            if (seq % sp !== 0) continue;
            const c = suggestChunk(seq, sp, target);
            expect(lineOf(() => checkChunk(c, seq, sp)), `seq ${seq} sp ${sp} target ${target} -> ${c}`).to.equal('ok');
          }
    });
  });

  describe('candidates for auto', () => {
    it('are allowed chunks, smallest first, ending at seq', () => {
      for (const seq of [96, 4096, 8192, 256 * 1024, 196608, 2 ** 22, 2 ** 26, LIMITS.seq])
        for (const sp of [1, 2, 4, 32]) {
          const cs = chunkCandidates(seq, sp);
          expect(cs[cs.length - 1]).to.equal(seq);
          expect([...cs].sort((a, b) => a - b)).to.deep.equal(cs);
          for (const c of cs.slice(0, -1)) expect(lineOf(() => checkChunk(c, seq, sp)), `seq ${seq} sp ${sp} chunk ${c}`).to.equal('ok');
        }
    });

    it('keep to the chunk-count limit and to multiples of sp', () => {
      expect(chunkCandidates(2 ** 26, 1)).to.deep.equal([2 ** 18, 2 ** 19, 2 ** 20, 2 ** 26]);
      expect(chunkCandidates(196608, 1)).to.deep.equal([4096, 8192, 16384, 32768, 65536, 196608]);
      // 24K * 32: only the powers of two that are multiples of 32 and divide seq
      expect(chunkCandidates(786432, 32)).to.deep.equal([4096, 8192, 16384, 32768, 65536, 131072, 262144, 786432]);
      expect(chunkCandidates(4096, 2)).to.deep.equal([4096]);
      expect(chunkCandidates(96, 2)).to.deep.equal([96]);
    });
  });

  describe('chooseChunk', () => {
    const trials = (t: Record<number, ChunkTrial | undefined>) => (c: number) => t[c];
    const seq = 2 ** 18; // candidates 4K .. 128K and 256K

    it('keeps the fastest candidate that fits', () => {
      const t = Object.fromEntries(chunkCandidates(seq, 1).map((c) => [c, { fits: c <= 65536, stepSeconds: 1e6 / c }]));
      expect(chooseChunk(seq, 1, trials(t))).to.equal(65536);
    });

    it('on equal predictions keeps the smaller chunk', () => {
      const t = Object.fromEntries(chunkCandidates(seq, 1).map((c) => [c, { fits: true, stepSeconds: c >= 16384 ? 1 : 2 }]));
      expect(chooseChunk(seq, 1, trials(t))).to.equal(16384);
    });

    it('when none fits, the smallest that planned; when none planned, the smallest', () => {
      const none = Object.fromEntries(chunkCandidates(seq, 1).map((c) => [c, c < 16384 ? undefined : { fits: false, stepSeconds: 1 }]));
      expect(chooseChunk(seq, 1, trials(none))).to.equal(16384);
      expect(chooseChunk(seq, 1, () => undefined)).to.equal(4096);
    });

    it('takes a single candidate without planning it', () => {
      expect(chooseChunk(96, 2, () => expect.fail('planned'))).to.equal(96);
    });
  });

  describe('configuredChunk (the chunk pass)', () => {
    const base = { seq: 96, sp: 2, fpdt: true };
    it('is seq without FPDT, and the checked chunk with it', () => {
      expect(configuredChunk({ ...base, fpdt: false, chunk: 'auto' })).to.equal(96);
      expect(configuredChunk({ ...base, chunk: 24 })).to.equal(24);
      expect(lineOf(() => configuredChunk({ ...base, chunk: 25 }))).to.equal('error: chunk 25 does not divide seq 96; try 24');
    });
    it('refuses an auto that nobody resolved, as a compiler bug', () => {
      expect(lineOf(() => configuredChunk({ ...base, chunk: 'auto' }))).to.match(/^not a user error: chunk 'auto' reached the chunk pass/);
    });
  });

  describe('check --chunk auto checks the chunk compile --chunk auto writes @slow', () => {
    const compiledChunk = async (name: string, o: { seq: number; sp: number }) =>
      (await compile(name, { ...o, chunk: 'auto' }, { write: false, typeCheck: false })).graph.config.chunk;

    // small models run the whole float64 check; at the sizes a CPU checks, auto is one chunk
    for (const [name, seq, sp] of [['tiny-llama', 96, 2], ['tiny-gpt', 192, 4], ['tiny-llama', 384, 1]] as const)
      it(`${name} seq ${seq} sp ${sp}: the check runs at compile's chunk`, async () => {
        const report = await check(name, { seq, sp, chunk: 'auto' }, { orders: 1, typeCheck: false });
        expect(report.ok).to.equal(true);
        expect(report.config.chunk).to.equal(await compiledChunk(name, { seq, sp }));
      });

    // models a CPU cannot check: the configuration check would run at, against compile's
    for (const [name, seq, sp] of [
      ['tiny-llama', 8192, 2],
      ['tiny-gpt', 196608, 4],
      ['llama1b', 256 * 1024, 1],
      ['llama1b', 128 * 1024, 4],
      ['llama8b', 256 * 1024, 2],
      ['llama8b', 64 * 1024, 8],
    ] as const)
      it(`${name} seq ${seq} sp ${sp}: check resolves auto to compile's chunk`, async () => {
        const m = MODELS[name];
        const checked = checkedConfig(m, resolveConfig(m.def.train ?? {}, { seq, sp, chunk: 'auto' })).chunk;
        expect(checked).to.be.a('number');
        expect(checked).to.equal(await compiledChunk(name, { seq, sp }));
      });

    it('refuses a model too large for the CPU before planning its candidates', async () => {
      const started = performance.now();
      let line = '';
      await check('llama8b', { seq: 2 ** 20, sp: 4, chunk: 'auto' }, { typeCheck: false }).catch((e: UserError) => (line = e.line()));
      expect(line).to.match(/^error: llama8b has \d+ parameters; the float64 check runs on the CPU/);
      expect(performance.now() - started).to.be.below(20000);
    });
  });
});
