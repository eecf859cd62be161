import { expect } from 'chai';
import { copyExposureLine } from '../../compiler/train/measured-trace.js';

describe('train/measured-trace copyExposureLine', () => {
  it("says how much of a rank's copying the compute stream hid", () => {
    // compute 0-4 ms and 7-8 ms; h2d 1-6 ms (2 ms exposed); d2h 5-7 ms (1 ms more)
    const events = [
      { instr: 0, stream: 0, startMs: 0, endMs: 4 },
      { instr: 1, stream: 1, startMs: 1, endMs: 6 },
      { instr: 2, stream: 2, startMs: 5, endMs: 7 },
      { instr: 3, stream: 0, startMs: 7, endMs: 8 },
    ];
    expect(copyExposureLine({ rank: 0, events })).to.equal('copies 6.0 ms on the copy streams, 3.0 ms of it with the compute stream idle (50% hidden)');
  });
});
