// Parameter counts must match the published models; they anchor every FLOP figure.
import { expect } from 'chai';
import { resolveConfig } from '../../compiler/config.js';
import type { Model } from '../../compiler/dsl/index.js';
import { countParams } from '../../compiler/report.js';
import llama1b from '../../models/llama1b.js';
import llama70b from '../../models/llama70b.js';
import llama8b from '../../models/llama8b.js';

const billions = (m: Model) => countParams(m.build(resolveConfig(m.def.train ?? {}, {}))) / 1e9;

describe('model parameter counts', () => {
  it('llama8b has 8.03B', () => expect(billions(llama8b)).to.be.closeTo(8.03, 0.005));
  it('llama70b has 70.55B', () => expect(billions(llama70b)).to.be.closeTo(70.55, 0.005));
  it('llama1b (tied embeddings) has 1.24B', () => expect(billions(llama1b)).to.be.closeTo(1.24, 0.005));
});
