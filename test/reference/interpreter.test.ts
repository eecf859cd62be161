// The float64 graph interpreter and its seeded inputs.
import { expect } from 'chai';
import { resolveConfig } from '../../compiler/config.js';
import { initParams, randomBatch } from '../../compiler/reference/init.js';
import { autodiff } from '../../compiler/passes/autodiff.js';
import { interpret } from '../../compiler/reference/interpreter.js';
import { Rng } from '../../compiler/reference/rng.js';
import tinyLlama from '../../models/tiny-llama.js';

const forwardGraph = (seq: number) => tinyLlama.build(resolveConfig(tinyLlama.def.train!, { seq }));

describe('reference rng and init', () => {
  it('the same seed gives the same numbers, another seed others', () => {
    const a = new Rng(3), b = new Rng(3), c = new Rng(4);
    const xs = Array.from({ length: 5 }, () => a.nextU32());
    expect(Array.from({ length: 5 }, () => b.nextU32())).to.deep.equal(xs);
    expect(Array.from({ length: 5 }, () => c.nextU32())).to.not.deep.equal(xs);
  });

  it('normals have mean 0 and the asked std', () => {
    const x = new Rng(9).normals(20000, 0.5);
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const std = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
    expect(mean).to.be.closeTo(0, 0.02);
    expect(std).to.be.closeTo(0.5, 0.02);
  });

  it('parameters follow each value\'s init, deterministically', () => {
    const g = forwardGraph(8);
    const p = initParams(g, 1), q = initParams(g, 1), r = initParams(g, 2);
    expect([...p.embed_tokens]).to.deep.equal([...q.embed_tokens]);
    expect([...p.embed_tokens]).to.not.deep.equal([...r.embed_tokens]);
    expect(p.norm.every((v) => v === 1)).to.equal(true);
    expect(p['layers.q_proj'].length).to.equal(2 * 48 * 48);
    const w = p.lm_head;
    expect(Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length)).to.be.closeTo(0.02, 0.002);
  });

  it('batches: tokens in the vocabulary, labels the next token or -1', () => {
    const a = randomBatch(32, 64, 5), b = randomBatch(32, 64, 5);
    expect([...a.tokens]).to.deep.equal([...b.tokens]);
    expect(a.tokens.every((t) => t >= 0 && t < 64)).to.equal(true);
    expect(a.labels[31]).to.equal(-1);
    for (let i = 0; i < 31; i++) if (a.labels[i] !== -1) expect(a.labels[i]).to.equal(a.tokens[i + 1]);
  });
});

describe('reference interpreter', () => {
  it('forward only: the loss at init is near log(vocab), no gradients', () => {
    const g = forwardGraph(16);
    const r = interpret(g, randomBatch(16, 64, 1), initParams(g, 1));
    expect(r.loss).to.be.closeTo(Math.log(64), 0.15);
    expect(r.grads).to.deep.equal({});
    expect(r.values.logits.length).to.equal(16 * 64);
  });

  it('names what is missing or mis-sized', () => {
    const g = forwardGraph(16);
    const p = initParams(g, 1);
    const { norm: _, ...withoutNorm } = p;
    expect(() => interpret(g, randomBatch(16, 64, 1), withoutNorm)).to.throw(/no parameter given for %norm/);
    expect(() => interpret(g, randomBatch(8, 64, 1), p)).to.throw(/%tokens needs 16 elements, got 8/);
  });

  it('after autodiff: checkpoints hold each layer\'s input, gradients come per parameter', () => {
    const fwd = forwardGraph(8);
    const g = autodiff.run(fwd);
    const r = interpret(g, randomBatch(8, 64, 3), initParams(fwd, 3));
    const emb = r.values.emb as Float64Array, ck = r.values.checkpoints as Float64Array;
    expect(ck.length).to.equal(2 * emb.length);
    expect([...ck.subarray(0, emb.length)]).to.deep.equal([...emb]);
    expect(ck.subarray(emb.length).some((v, i) => v !== emb[i])).to.equal(true);
    expect(Object.keys(r.grads)).to.deep.equal(fwd.params);
    expect(r.grads['layers.q_proj'].length).to.equal(2 * 48 * 48);
  });
});
