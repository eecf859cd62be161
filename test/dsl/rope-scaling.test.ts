// `ropeScaling` in the DSL: passed through the attention blocks onto both rope ops, and a
// malformed one stopped at the model file's line with one message from the error catalog.
import { expect } from 'chai';
import { resolveConfig } from '../../compiler/config.js';
import { causalLM, defineModel, llamaLayer, type Model, type RopeScaling } from '../../compiler/dsl/index.js';
import { isUserError, UserError } from '../../compiler/errors.js';
import type { Graph, Node, Region } from '../../compiler/ir/types.js';
import llama1b from '../../models/llama1b.js';
import llama70b from '../../models/llama70b.js';
import llama8b from '../../models/llama8b.js';

const OK: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };

const tiny = (ropeScaling: RopeScaling): Model =>
  defineModel({
    name: 'tiny-rope-scaling',
    sizes: { V: 64, D: 48, L: 1, Hq: 6, Hkv: 2, Dh: 8, F: 64 },
    train: { seq: 48 },
    forward: (m) => causalLM(m, { norm: 'rms', layer: (x, l) => llamaLayer(x, l, { ropeTheta: 10000, ropeScaling }) }),
  });

const build = (m: Model): Graph => m.build(resolveConfig(m.def.train ?? {}, {}));

function ropes(r: Region): Node[] {
  return r.nodes.flatMap((n) => [...(n.op === 'rope' ? [n] : []), ...(n.body ? ropes(n.body) : [])]);
}

function buildError(s: RopeScaling): UserError {
  try {
    build(tiny(s));
  } catch (e) {
    if (isUserError(e)) return e;
    throw e;
  }
  throw new Error(`${JSON.stringify(s)} was accepted`);
}

describe('DSL: rope scaling', () => {
  it('llamaLayer puts it on the q and k rope ops, keys in a fixed order', () => {
    const spelled = { originalMaxPositions: 8192, highFreqFactor: 4, lowFreqFactor: 1, factor: 8, type: 'llama3' } as const;
    const nodes = ropes(build(tiny(spelled)).main);
    expect(nodes.map((n) => n.outputs[0])).to.deep.equal(['q_rot', 'k_rot']);
    for (const n of nodes) {
      expect(n.attrs.scaling).to.deep.equal(OK);
      expect(Object.keys(n.attrs.scaling as object)).to.deep.equal(['type', 'factor', 'lowFreqFactor', 'highFreqFactor', 'originalMaxPositions']);
    }
  });

  it('the Llama 3.1 and 3.2 models use their release\'s scaling', () => {
    const scalingOf = (m: Model) => ropes(build(m).main).map((n) => n.attrs.scaling);
    for (const m of [llama8b, llama70b]) expect(scalingOf(m)).to.deep.equal([OK, OK]);
    expect(scalingOf(llama1b)).to.deep.equal([{ ...OK, factor: 32 }, { ...OK, factor: 32 }]);
  });

  it('refuses a malformed scaling at the model line, one message each', () => {
    const cases: [Partial<RopeScaling> | { type: string }, RegExp][] = [
      [{ factor: 0.5 }, /^rope scaling: factor 0.5 must be at least 1$/],
      [{ lowFreqFactor: 0 }, /^rope scaling: lowFreqFactor 0 must be positive$/],
      [{ highFreqFactor: 1 }, /^rope scaling: highFreqFactor 1 must be greater than lowFreqFactor 1$/],
      [{ originalMaxPositions: 0 }, /^rope scaling: originalMaxPositions 0 must be positive$/],
      [{ factor: Infinity }, /^rope scaling: factor must be a finite number/],
      [{ type: 'yarn' }, /^rope scaling: type "yarn" is not supported; the one scaling is 'llama3'$/],
    ];
    for (const [change, message] of cases) {
      const e = buildError({ ...OK, ...change } as RopeScaling);
      expect(e.message, JSON.stringify(change)).to.match(message);
      expect(e.exitCode).to.equal(1);
      expect(e.where, JSON.stringify(change)).to.match(/test\/dsl\/rope-scaling\.test\.ts:\d+:\d+$/);
    }
  });
});
