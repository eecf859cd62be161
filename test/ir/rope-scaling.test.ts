// A rope op's `scaling` attr in the IR's forms: the printed line, graph.json, the verifier.
import { expect } from 'chai';
import { compile } from '../../compiler/compile.js';
import { resolveConfig } from '../../compiler/config.js';
import { graphFromJson, graphToJson, printGraphJson, type GraphJson } from '../../compiler/ir/json.js';
import { printGraph } from '../../compiler/ir/printer.js';
import type { Node, Region } from '../../compiler/ir/types.js';
import { verifyGraph, VerifyError } from '../../compiler/ir/verify.js';
import tinyLlama from '../../models/tiny-llama.js';
import tinyScaled from '../fixtures/models/tiny-llama-scaled.js';

const SCALED = 'test/fixtures/models/tiny-llama-scaled.ts';
const built = () => tinyScaled.build(resolveConfig(tinyScaled.def.train!, {}));

function ropeNodes(r: Region, op = 'rope'): Node[] {
  return r.nodes.flatMap((n) => [...(n.op === op ? [n] : []), ...(n.body ? ropeNodes(n.body, op) : [])]);
}

describe('IR: rope scaling', () => {
  it('prints on the rope line, and on rope_bwd after autodiff', async () => {
    const lines = printGraph(built()).split('\n').filter((l) => / = rope\(/.test(l));
    expect(lines).to.have.length(2);
    for (const l of lines) expect(l).to.contain('{rotaryDim=8, scaling=llama3(4,1,2,16), theta=16}');
    const { graph } = await compile(SCALED, {}, { write: false, typeCheck: false });
    const bwd = printGraph(graph).split('\n').filter((l) => / = rope_bwd\(/.test(l));
    expect(bwd).to.have.length(2);
    for (const l of bwd) expect(l).to.contain('scaling=llama3(4,1,2,16)');
  });

  it('an unscaled model has no scaling attr at all', () => {
    const g = tinyLlama.build(resolveConfig(tinyLlama.def.train!, {}));
    for (const n of ropeNodes(g.main)) expect(Object.keys(n.attrs).sort()).to.deep.equal(['rotaryDim', 'theta']);
    expect(printGraph(g)).not.to.contain('scaling');
  });

  it('graph.json carries attrs.scaling as the object, and reads it back', async () => {
    const { graph } = await compile(SCALED, {}, { write: false, typeCheck: false });
    const doc = JSON.parse(printGraphJson(graph)) as GraphJson;
    // q and k in forward, and again where backward recomputes the layer
    const ropes = ropeNodes(doc.main);
    expect(ropes).to.have.length(4);
    for (const n of ropes)
      expect(n.attrs.scaling).to.deep.equal({ type: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 2, originalMaxPositions: 16 });
    const back = graphFromJson(doc);
    verifyGraph(back);
    expect(printGraph(back)).to.equal(printGraph(graph));
  });

  it('the verifier refuses a malformed scaling', () => {
    const doc = JSON.parse(JSON.stringify(graphToJson(built()))) as { main: Region };
    const n = ropeNodes(doc.main)[0] as { attrs: Record<string, unknown> };
    n.attrs.scaling = { type: 'llama3', factor: 4, lowFreqFactor: 2, highFreqFactor: 2, originalMaxPositions: 16 };
    expect(() => verifyGraph(graphFromJson(doc))).to.throw(VerifyError, /rope scaling: highFreqFactor 2 must be greater than lowFreqFactor 2 \(invariant 5\)/);
  });
});
