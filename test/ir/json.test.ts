import { expect } from 'chai';
import { compile } from '../../compiler/compile.js';
import { graphFromJson, graphToJson, printGraphJson } from '../../compiler/ir/json.js';
import { printGraph } from '../../compiler/ir/printer.js';
import { verifyGraph } from '../../compiler/ir/verify.js';

describe('graph JSON', () => {
  for (const model of ['tiny-llama', 'tiny-gpt', 'llama70b'])
    it(`round-trips ${model} after every graph pass`, async () => {
      const { graph } = await compile(model, {}, { write: false, typeCheck: false });
      const text = printGraphJson(graph);
      const back = graphFromJson(JSON.parse(text));
      verifyGraph(back);
      expect(printGraph(back)).to.equal(printGraph(graph));
      expect(printGraphJson(back)).to.equal(text);
    });

  it('writes dimensions as strings', async () => {
    const { graph } = await compile('tiny-llama', {}, { write: false, typeCheck: false });
    const doc = graphToJson(graph);
    expect(doc.format).to.equal('fpdtc.graph');
    expect(doc.values['layers.q_proj'].type.shape).to.deep.equal(['L', 'Dh*Hq', 'D']);
  });

  it('refuses a document that is not a graph', () => {
    expect(() => graphFromJson({ format: 'other' })).to.throw(/not an fpdtc graph/);
    expect(() => graphFromJson({ format: 'fpdtc.graph', version: 99 })).to.throw(/version 99/);
  });
});
