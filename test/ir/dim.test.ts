import { expect } from 'chai';
import { Dim } from '../../compiler/ir/dim.js';

describe('Dim', () => {
  const roundTrips = ['S', '128', 'Dh*Hq', 'S/4', '2*F', 'S/Hq', '3*S/4', 'Dh*Hkv*L', '0'];
  for (const text of roundTrips)
    it(`prints '${text}' back as it was parsed`, () => {
      expect(Dim.parse(text).toString()).to.equal(text);
    });

  it('orders symbols, so equal products print alike', () => {
    expect(Dim.parse('Hq*Dh').toString()).to.equal('Dh*Hq');
    expect(Dim.parse('Hq * Dh').equals(Dim.parse('Dh*Hq'))).to.equal(true);
  });

  it('reduces coefficients and cancels symbols', () => {
    expect(Dim.parse('4*S/8').toString()).to.equal('S/2');
    expect(Dim.parse('S*Hq/Hq').toString()).to.equal('S');
    expect(Dim.sym('S').div(4).mul(4).toString()).to.equal('S');
  });

  it('evaluates under sizes and names a missing one', () => {
    expect(Dim.parse('Dh*Hq/4').eval({ Dh: 128, Hq: 64 })).to.equal(2048);
    expect(() => Dim.parse('S/P').eval({ S: 8 })).to.throw(/unknown size 'P'/);
  });

  it('rejects what is not a product of sizes', () => {
    for (const bad of ['S+1', '', 'S-2', '(S)']) expect(() => Dim.parse(bad), bad).to.throw(/cannot read dimension/);
    expect(() => Dim.of(-1)).to.throw(/non-negative integer/);
    expect(() => Dim.of(1.5)).to.throw(/non-negative integer/);
  });
});
