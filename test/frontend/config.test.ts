import { expect } from 'chai';
import { BASE_CONFIG, formatSize, parseSize } from '../../compiler/config.js';
import { UserError } from '../../compiler/errors.js';
import { nearestDivisor, validateConfig } from '../../compiler/frontend/index.js';
import type { TrainConfig } from '../../compiler/ir/types.js';

describe('sizes', () => {
  it('reads K and M as powers of 1024', () => {
    expect(parseSize('256K')).to.equal(262144);
    expect(parseSize('2M')).to.equal(2097152);
    expect(parseSize('4M')).to.equal(4194304);
    expect(parseSize('1.5M')).to.equal(1572864);
    expect(parseSize('1000000')).to.equal(1000000);
    expect(parseSize(96)).to.equal(96);
  });

  it('rejects what is not a whole number of tokens, as a usage error', () => {
    for (const bad of ['', 'abc', '-5', '0', '1.1K', '4MB']) {
      const err = (() => {
        try {
          parseSize(bad, 'seq');
        } catch (e) {
          return e;
        }
      })();
      expect(err, bad).to.be.instanceOf(UserError);
      expect((err as UserError).exitCode).to.equal(2);
      expect((err as UserError).line()).to.match(/^error: --seq .*: not a size/);
    }
  });

  it('prints sizes the way people write them', () => {
    expect(formatSize(4194304)).to.equal('4M');
    expect(formatSize(65536)).to.equal('64K');
    expect(formatSize(1000000)).to.equal('1000000');
  });
});

describe('configuration checks', () => {
  const sizes = { Hq: 64, D: 8192 };
  const cfg = (c: Partial<TrainConfig>): TrainConfig => ({ ...BASE_CONFIG, ...c });
  const lineOf = (c: Partial<TrainConfig>) => {
    try {
      validateConfig(cfg(c), sizes);
      return 'ok';
    } catch (e) {
      return (e as UserError).line();
    }
  };

  it('accepts the headline run', () => expect(lineOf({ seq: 4194304, sp: 32, chunk: 65536 })).to.equal('ok'));
  it('accepts chunk auto', () => expect(lineOf({ seq: 1000000, sp: 1, chunk: 'auto' })).to.equal('ok'));

  it('suggests the nearest chunk that divides seq', () => {
    expect(lineOf({ seq: 1000000, sp: 1, chunk: 65536 })).to.equal('error: chunk 65536 does not divide seq 1000000; try 62500');
  });

  it('keeps the suggested chunk a multiple of sp', () => {
    expect(lineOf({ seq: 1000000, sp: 32, chunk: 65536 })).to.equal('error: chunk 65536 does not divide seq 1000000; try 40000');
  });

  it('wants sp to divide the query heads and seq', () => {
    expect(lineOf({ seq: 4096, sp: 3, chunk: 'auto' })).to.match(/degree 3 does not divide the query heads Hq \(64\)/);
    expect(lineOf({ seq: 4100, sp: 8, chunk: 'auto' })).to.match(/degree 8 does not divide seq \(4100\)/);
    expect(lineOf({ seq: 16, sp: 32, chunk: 'auto' })).to.match(/--sp 32 is larger than seq 16/);
  });

  it('wants the chunk to be a multiple of sp and at most seq', () => {
    expect(lineOf({ seq: 4096, sp: 4, chunk: 2 })).to.match(/chunk 2 is not a multiple of --sp 4/);
    expect(lineOf({ seq: 4096, sp: 1, chunk: 8192 })).to.match(/chunk 8192 is larger than seq 4096/);
  });

  it('finds nearest divisors', () => {
    expect(nearestDivisor(1000000, 65536)).to.equal(62500);
    expect(nearestDivisor(96, 25)).to.equal(24);
    expect(nearestDivisor(100, 24, 2)).to.equal(20);
    expect(nearestDivisor(12, 5)).to.equal(6); // tie between 4 and 6: fewer chunks
    expect(nearestDivisor(7, 100)).to.equal(7);
  });
});
