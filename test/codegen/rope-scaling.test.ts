// The rope kernel's frequency table with Llama 3.1's scaling: read off the schedule of a compiled
// model, rendered into rope.cu, equal to the float64 reference's table; unscaled files unchanged.
import { expect } from 'chai';
import { compile } from '../../compiler/compile.js';
import { kernelSpecOf } from '../../compiler/codegen/host-spec.js';
import { KernelSpecError, renderKernels, ropeInverseFrequencies, type KernelSpec } from '../../compiler/codegen/kernels.js';
import type { RopeScaling } from '../../compiler/ir/types.js';
import { ropeInvFreq } from '../../compiler/reference/cpu-rope.js';
import { llamaSpec } from '../gpu/kernels/specs.js';

const LLAMA31: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };

const ropeFile = (spec: KernelSpec) => renderKernels(spec).find((f) => f.file === 'rope.cu')!.text;

/** The numbers of `inv_freq[HALF] = { ... }` in a rendered rope.cu. */
function tableIn(text: string): number[] {
  const m = /inv_freq\[HALF\] = \{ ([^}]*) \}/.exec(text);
  if (!m) throw new Error('rope.cu has no inv_freq table');
  return m[1].split(',').map(Number);
}

function maxRelative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).to.equal(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.abs(b[i]));
  return worst;
}

describe('codegen: rope scaling', () => {
  it('llama8b: the schedule carries the scaling into the kernel spec, and rope.cu embeds the reference table', async () => {
    const { planned } = await compile('llama8b', {}, { write: false, typeCheck: false });
    const spec = kernelSpecOf(planned!.schedule);
    expect(spec.ropeScaling).to.deep.equal(LLAMA31);
    expect([spec.rotaryDim, spec.ropeTheta]).to.deep.equal([128, 500000]);
    const want = ropeInvFreq(128, 500000, LLAMA31);
    expect(maxRelative(ropeInverseFrequencies(spec), want)).to.be.at.most(1e-12);
    const text = ropeFile(spec);
    expect(maxRelative(tableIn(text), want)).to.be.at.most(1e-12);
    expect(text).to.contain('// RoPE scaling llama3 (factor 8, low 1, high 4, original 8192 positions)');
    // the scaled table differs from the plain one where the wavelength passes 2048
    expect(maxRelative(tableIn(text), ropeInvFreq(128, 500000))).to.be.above(0.5);
  });

  it('without scaling rope.cu is the plain table and says nothing of scaling', () => {
    const text = ropeFile(llamaSpec);
    expect(text).not.to.contain('scaling');
    expect(maxRelative(tableIn(text), ropeInvFreq(llamaSpec.rotaryDim, llamaSpec.ropeTheta))).to.equal(0);
    // the 3.2 factor leaves the kept band alone and divides the slow band by 32
    const scaled = tableIn(ropeFile({ ...llamaSpec, ropeScaling: { ...LLAMA31, factor: 32 } }));
    expect(scaled[0]).to.equal(1);
    expect(scaled.at(-1)! / tableIn(text).at(-1)!).to.be.closeTo(1 / 32, 1e-15);
  });

  it('rejects scalings the formula does not define', () => {
    const bad: Partial<RopeScaling>[] = [{ factor: 0.5 }, { lowFreqFactor: 0 }, { highFreqFactor: 1 }, { originalMaxPositions: 0 }, { factor: NaN }];
    for (const b of bad) expect(() => renderKernels({ ...llamaSpec, ropeScaling: { ...LLAMA31, ...b } }), JSON.stringify(b)).to.throw(KernelSpecError, /rope scaling/);
    expect(() => renderKernels({ ...llamaSpec, ropeScaling: { ...LLAMA31, type: 'yarn' as 'llama3' } })).to.throw(KernelSpecError, /'yarn'/);
  });
});
