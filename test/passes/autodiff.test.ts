// The autodiff pass: its printed IR (golden), its structure (checkpoints, one repeat_bwd
// with the recomputed layer, fp32 parameter gradients in params order), purity, and
// whole-model gradients from the float64 interpreter vs finite differences of the loss.
import { expect } from 'chai';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig } from '../../compiler/config.js';
import { causalLM, defineModel, llamaLayer, type Model } from '../../compiler/dsl/index.js';
import { printGraph } from '../../compiler/ir/printer.js';
import { allNodes, type Graph, type Node } from '../../compiler/ir/types.js';
import { verifyGraph } from '../../compiler/ir/verify.js';
import { expectGoldenFile } from '../golden/golden.js';
import { autodiff } from '../../compiler/passes/autodiff.js';
import { graphPasses } from '../../compiler/passes/index.js';
import { runGraphPasses } from '../../compiler/passes/pipeline.js';
import { initParams, randomBatch } from '../../compiler/reference/init.js';
import { interpret } from '../../compiler/reference/interpreter.js';
import { Rng } from '../../compiler/reference/rng.js';
import tinyGpt from '../../models/tiny-gpt.js';
import tinyLlama from '../../models/tiny-llama.js';
import { expectGradient } from '../reference/finite-diff.js';

const here = dirname(fileURLToPath(import.meta.url));
const build = (m: Model, seq?: number) => m.build(resolveConfig(m.def.train!, seq ? { seq } : {}));

const tiedLlama = defineModel({
  name: 'tied-llama',
  sizes: { V: 32, D: 16, L: 2, Hq: 4, Hkv: 2, Dh: 4, F: 24 },
  train: { seq: 16 },
  forward: (m) => causalLM(m, { norm: 'rms', tiedEmbeddings: true, layer: (x, l) => llamaLayer(x, l, { ropeTheta: 10000 }) }),
});

const expectGolden = (name: string, text: string): void => expectGoldenFile(join(here, 'golden', name), text);

const nodesOf = (g: Graph, op: string): Node[] => [...allNodes(g.main)].filter((n) => n.op === op);

describe('autodiff pass', () => {
  it('golden: tiny-llama after autodiff', () => {
    expectGolden('tiny-llama.autodiff.ir', printGraph(autodiff.run(build(tinyLlama))));
  });

  it('runs in the pipeline after shapes and verifies', () => {
    const g = build(tinyGpt);
    const out = runGraphPasses(g, graphPasses(g.config));
    expect(out.outputs.length).to.equal(1 + g.params.length);
  });

  it('does not mutate its input', () => {
    const g = build(tinyLlama);
    const before = printGraph(g);
    const values = Object.keys(g.values).length;
    const repeat = nodesOf(g, 'repeat')[0];
    autodiff.run(g);
    expect(printGraph(g)).to.equal(before);
    expect(Object.keys(g.values).length).to.equal(values);
    expect(repeat.outputs.length).to.equal(1);
  });

  it('outputs the loss, then one fp32 gradient per parameter in params order', () => {
    const g = build(tinyLlama);
    const d = autodiff.run(g);
    expect(d.outputs[0]).to.equal(g.outputs[0]);
    d.outputs.slice(1).forEach((id, i) => {
      const p = g.values[g.params[i]];
      const t = d.values[id].type;
      expect(t.dtype, id).to.equal('fp32');
      expect(t.shape.join(','), id).to.equal(p.type.shape.join(','));
      expect(d.values[id].role).to.equal('grad');
    });
    expect(nodesOf(d, 'ones').length).to.equal(1);
  });

  it('activation gradients keep the activation dtype', () => {
    const d = autodiff.run(build(tinyLlama));
    for (const n of d.main.nodes)
      if (n.op === 'linear_dx' || n.op === 'rmsnorm_bwd') expect(d.values[n.outputs[0]].type.dtype, n.outputs[0]).to.equal('bf16');
  });

  it('repeat keeps its layer inputs as checkpoints; one repeat_bwd recomputes the layer then differentiates it', () => {
    const g = build(tinyLlama);
    const d = autodiff.run(g);
    const [fwd] = nodesOf(d, 'repeat');
    const ck = d.values[fwd.outputs[1]].type;
    expect(`${ck.dtype}[${ck.shape.join(', ')}]`).to.equal('bf16[L, S, D]');
    const bwds = nodesOf(d, 'repeat_bwd');
    expect(bwds.length).to.equal(1);
    const [bwd] = bwds;
    expect(bwd.inputs.slice(1)).to.deep.equal([fwd.outputs[1], ...fwd.inputs.slice(1)]);
    expect(bwd.attrs).to.deep.equal({ count: 'L' });
    const body = bwd.body!;
    expect(body.params.length).to.equal(fwd.body!.params.length + 1);
    // the recomputed forward comes first, op for op, with fresh ids
    expect(body.nodes.slice(0, fwd.body!.nodes.length).map((n) => n.op)).to.deep.equal(fwd.body!.nodes.map((n) => n.op));
    const fwdIds = new Set([...fwd.body!.params, ...fwd.body!.nodes.flatMap((n) => n.outputs)]);
    for (const n of body.nodes) for (const o of n.outputs) expect(fwdIds.has(o), o).to.equal(false);
    for (const r of body.results.slice(1)) expect(d.values[r].type.dtype).to.equal('fp32');
    expect(nodesOf(d, 'attention_bwd').length).to.equal(1);
  });

  it('tied embeddings: the embedding and the LM head gradients add into one', () => {
    const d = autodiff.run(build(tiedLlama));
    const dEmbed = d.outputs[1 + d.params.indexOf('embed_tokens')];
    const sum = d.main.nodes.find((n) => n.outputs[0] === dEmbed)!;
    expect(sum.op).to.equal('grad_add');
    const producers = sum.inputs.map((i) => d.main.nodes.find((n) => n.outputs.includes(i))!.op).sort();
    expect(producers).to.deep.equal(['embedding_bwd', 'linear_dw']);
    verifyGraph(d);
  });

  it('names a parameter that does not reach the loss', () => {
    const unused = defineModel({
      name: 'unused',
      sizes: tiedLlama.def.sizes,
      train: { seq: 8 },
      forward: (m) => {
        m.param('spare', ['D']);
        return causalLM(m, { norm: 'rms', tiedEmbeddings: true, layer: (x, l) => llamaLayer(x, l, { ropeTheta: 10000 }) });
      },
    });
    expect(() => autodiff.run(build(unused))).to.throw(/parameter %spare does not influence the loss/);
  });
});

describe('autodiff + float64 interpreter: whole-model gradients vs finite differences', () => {
  for (const [model, seq] of [[tinyLlama, 16], [tinyGpt, 16], [tiedLlama, 16]] as const) {
    it(`${model.name}, ${seq} tokens`, () => {
      const fwd = build(model, seq);
      const bwd = autodiff.run(fwd);
      // move ones/zeros inits off their symmetric points so every gradient is generic
      const params = initParams(fwd, 11);
      const rng = new Rng(12);
      for (const p of Object.values(params)) for (let i = 0; i < p.length; i++) p[i] += 0.1 * rng.normal();
      const batch = randomBatch(seq, fwd.sizes.V, 13, 0.2);
      const { loss, grads } = interpret(bwd, batch, params);
      expect(loss).to.be.closeTo(interpret(fwd, batch, params).loss, 1e-12);
      for (const id of fwd.params) expectGradient(id, () => interpret(fwd, batch, params).loss, params[id], grads[id], { sample: 5, seed: id.length + seq });
    });
  }
});
