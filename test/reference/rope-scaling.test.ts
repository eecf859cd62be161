// Llama 3.1's RoPE scaling in the float64 reference: the rotation against a direct computation
// of each scaled frequency, the unscaled rotation unchanged to the bit, and a whole training step
// of a scaled tiny model through the schedule executor against the graph interpreter.
import { expect } from 'chai';
import { checkModel, relativeError, type CheckOptions } from '../../compiler/check.js';
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import type { Graph, Node, Region, RopeScaling } from '../../compiler/ir/types.js';
import { graphPasses } from '../../compiler/passes/index.js';
import { runGraphPasses } from '../../compiler/passes/pipeline.js';
import * as M from '../../compiler/reference/cpu-math.js';
import { initParams, randomBatch } from '../../compiler/reference/init.js';
import { interpret } from '../../compiler/reference/interpreter.js';
import { Rng } from '../../compiler/reference/rng.js';
import type { Item, Schedule } from '../../compiler/schedule/types.js';
import tinyScaled from '../fixtures/models/tiny-llama-scaled.js';
import { randn } from './finite-diff.js';

const LLAMA31: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };

type Band = 'kept' | 'smoothed' | 'divided';

/** One frequency as the definition states it, independent of the reference's loop. */
function scaledFrequency(i: number, rotaryDim: number, theta: number, s: RopeScaling): { inv: number; band: Band } {
  const inv = 1 / Math.pow(theta, (2 * i) / rotaryDim);
  const wavelen = (2 * Math.PI) / inv;
  if (wavelen < s.originalMaxPositions / s.highFreqFactor) return { inv, band: 'kept' };
  if (wavelen > s.originalMaxPositions / s.lowFreqFactor) return { inv: inv / s.factor, band: 'divided' };
  const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
  return { inv: (1 - smooth) * inv / s.factor + smooth * inv, band: 'smoothed' };
}

describe('reference rope: llama3 scaling', () => {
  const rng = new Rng(31);
  const [heads, d, rd, theta] = [2, 128, 128, 500000];
  const positions = Int32Array.of(0, 1, 100, 2047, 8191, 8192, 20000, 131071, 1000000);
  const rows = positions.length;

  it('hits all three bands with the 3.1 parameters (rotary dim 128, theta 500000)', () => {
    const bands = Array.from({ length: rd / 2 }, (_, i) => scaledFrequency(i, rd, theta, LLAMA31).band);
    const count = (b: Band) => bands.filter((x) => x === b).length;
    expect({ kept: count('kept'), smoothed: count('smoothed'), divided: count('divided') }).to.deep.equal({ kept: 29, smoothed: 6, divided: 29 });
    const inv = M.ropeInvFreq(rd, theta, LLAMA31);
    const plain = M.ropeInvFreq(rd, theta);
    bands.forEach((b, i) => {
      const ratio = inv[i] / plain[i];
      if (b === 'kept') expect(ratio, `frequency ${i}`).to.equal(1);
      else if (b === 'divided') expect(ratio, `frequency ${i}`).to.be.closeTo(1 / 8, 1e-15);
      else expect(ratio, `frequency ${i}`).to.be.within(1 / 8 + 1e-6, 1 - 1e-6);
    });
  });

  it('rotates each pair by position times its scaled frequency, also past the original context', () => {
    const x = randn(rng, rows * heads * d);
    const y = M.rope(x, rows, heads, d, rd, theta, positions, LLAMA31);
    const back = M.ropeBwd(y, rows, heads, d, rd, theta, positions, LLAMA31);
    let worst = 0;
    for (let r = 0; r < rows; r++)
      for (let i = 0; i < rd / 2; i++) {
        const a = positions[r] * scaledFrequency(i, rd, theta, LLAMA31).inv;
        for (let h = 0; h < heads; h++) {
          const o = (r * heads + h) * d;
          const [x1, x2] = [x[o + i], x[o + i + rd / 2]];
          worst = Math.max(worst, Math.abs(y[o + i] - (x1 * Math.cos(a) - x2 * Math.sin(a))), Math.abs(y[o + i + rd / 2] - (x2 * Math.cos(a) + x1 * Math.sin(a))));
        }
      }
    // angles reach 1e6 rad: one ulp of a frequency moves them by ~1e-10
    expect(worst).to.be.below(1e-9);
    // backward undoes forward
    expect(relativeError(back, x)).to.be.below(1e-14);
    // and the scaling changed the rows past position 0
    const plain = M.rope(x, rows, heads, d, rd, theta, positions);
    expect(relativeError(y.subarray(heads * d), plain.subarray(heads * d))).to.be.above(0.1);
  });

  it('without scaling the rotation is bitwise what theta^(-2i/rotaryDim) gives', () => {
    const x = randn(rng, rows * heads * d);
    const y = M.rope(x, rows, heads, d, rd, theta, positions);
    const want = new Float64Array(x);
    for (let r = 0; r < rows; r++)
      for (let i = 0; i < rd / 2; i++) {
        const a = positions[r] * theta ** (-(2 * i) / rd);
        const c = Math.cos(a), s = Math.sin(a);
        for (let h = 0; h < heads; h++) {
          const o = (r * heads + h) * d;
          const [x1, x2] = [x[o + i], x[o + i + rd / 2]];
          want[o + i] = x1 * c - x2 * s;
          want[o + i + rd / 2] = x2 * c + x1 * s;
        }
      }
    expect([...y]).to.deep.equal([...want]);
    expect([...M.rope(x, rows, heads, d, rd, theta, positions, undefined)]).to.deep.equal([...want]);
  });
});

/** The graph without any rope scaling, for the control run. */
function withoutScaling(g: Graph): Graph {
  const node = (n: Node): Node => {
    const { scaling: _drop, ...attrs } = n.attrs;
    return { ...n, attrs, ...(n.body ? { body: region(n.body) } : {}) };
  };
  const region = (r: Region): Region => ({ ...r, nodes: r.nodes.map(node) });
  return { ...g, main: region(g.main) };
}

function stripInstrScaling(items: readonly Item[]): Item[] {
  return items.map((it) => {
    if (it.kind === 'loop') return { ...it, body: stripInstrScaling(it.body) };
    if (it.kind !== 'instr' || it.attrs.llama3Scaling === undefined) return it;
    const { llama3Scaling: _drop, ...attrs } = it.attrs;
    return { ...it, attrs };
  });
}

describe('schedule executor with llama3 rope scaling', () => {
  const run = (o: TrainDefaults, opts: CheckOptions = {}) => checkModel(tinyScaled, resolveConfig(tinyScaled.def.train!, o), { orders: 3, arena: 'planned', seed: 5, ...opts });

  for (const o of [{ sp: 2, seq: 48, chunk: 24 }, { sp: 3, seq: 48, chunk: 24, keepAttention: 0 }, { sp: 1, seq: 48, chunk: 16 }] as TrainDefaults[])
    it(`equals the unchunked model: sp ${o.sp}, seq ${o.seq}, chunk ${o.chunk}`, () => {
      const r = run(o);
      expect(r.maxError).to.be.at.most(1e-9);
      expect(r.ok).to.equal(true);
    });

  it('the scaling changes the step: the unscaled graph gives another loss and other gradients', () => {
    const config = resolveConfig(tinyScaled.def.train!, {});
    const passes = graphPasses(config);
    // the interpreter's gradients come from the autodiff graph
    const g = runGraphPasses(tinyScaled.build(config), passes.slice(0, passes.findIndex((p) => p.name === 'autodiff') + 1));
    const params = initParams(g, 5);
    const batch = randomBatch(g.config.seq, g.sizes.V, 5);
    const scaled = interpret(g, batch, params);
    const plain = interpret(withoutScaling(g), batch, params);
    expect(Math.abs(scaled.loss - plain.loss)).to.be.above(1e-6);
    const q = g.params.find((p) => g.values[p].name?.endsWith('q_proj.weight'))!;
    expect(relativeError(scaled.grads[q], plain.grads[q])).to.be.above(1e-3);
  });

  it('a schedule that drops the scaling is caught', () => {
    const r = run({ sp: 2, seq: 48, chunk: 24 }, { orders: 1, mutate: (s: Schedule) => ({ ...s, body: stripInstrScaling(s.body) }) });
    expect(r.ok).to.equal(false);
    expect(r.maxError).to.be.above(1e-6);
  });
});
