import { expect } from 'chai';
import { parseCompileFlags, passList } from '../../compiler/cli/compile-flags.js';
import { formatCount, formatFlops } from '../../compiler/cli/format.js';
import { UserError } from '../../compiler/errors.js';

const usageLine = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(UserError);
    expect((e as UserError).exitCode).to.equal(2);
    return (e as UserError).line();
  }
  throw new Error('no error');
};

describe('compile flags', () => {
  it('turn into typed overrides', () => {
    expect(
      parseCompileFlags({ seq: '4M', sp: '32', chunk: '64K', offload: 'off', checkpoint: 'gpu', zero: '0', fpdt: 'on', device: 'H200', hostMem: '512' }),
    ).to.deep.equal({ seq: 4194304, sp: 32, chunk: 65536, offload: false, checkpoint: 'gpu', zero: 0, fpdt: true, device: 'h200', hostMemGiB: 512 });
    expect(parseCompileFlags({ chunk: 'auto' })).to.deep.equal({ chunk: 'auto' });
    expect(parseCompileFlags({})).to.deep.equal({});
  });

  it('reject bad values with the flag and what it takes', () => {
    expect(usageLine(() => parseCompileFlags({ sp: '0' }))).to.equal('error: --sp 0: expected a whole number of at least 1');
    expect(usageLine(() => parseCompileFlags({ sp: '2.5' }))).to.equal('error: --sp 2.5: expected a whole number of at least 1');
    expect(usageLine(() => parseCompileFlags({ chunk: 'big' }))).to.match(/^error: --chunk big: not a size/);
    expect(usageLine(() => parseCompileFlags({ checkpoint: 'disk' }))).to.equal('error: --checkpoint disk: expected off or gpu or host');
    expect(usageLine(() => parseCompileFlags({ zero: '2' }))).to.equal('error: --zero 2: expected 0 or 3');
    expect(usageLine(() => parseCompileFlags({ fpdt: 'yes' }))).to.equal('error: --fpdt yes: expected on or off');
    expect(usageLine(() => parseCompileFlags({ hostMem: '-1' }))).to.equal('error: --host-mem -1: expected a positive number of GiB, e.g. 512');
    expect(usageLine(() => parseCompileFlags({ device: 'h 200' }))).to.equal('error: --device h 200: expected a device name such as h200');
  });

  it('accept pass lists with spaces or commas', () => {
    expect(passList(['shapes,autodiff', 'x'])).to.deep.equal(['shapes', 'autodiff', 'x']);
    expect(passList(undefined)).to.equal(undefined);
  });
});

describe('summary numbers', () => {
  it('counts', () => {
    expect(formatCount(70553706496)).to.equal('70.55B');
    expect(formatCount(1235814400)).to.equal('1.24B');
    expect(formatCount(35584)).to.equal('35.6K');
    expect(formatCount(12)).to.equal('12');
  });
  it('flops', () => expect(formatFlops(7.0950832436636810e19)).to.equal('7.10e19'));
});
