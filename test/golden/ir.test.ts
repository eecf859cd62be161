// The printed IR of the tiny models at their default runs: as the DSL builds it, and after
// every graph pass. A change here is a change in what the compiler decides; review the diff.
import { resolveConfig } from '../../compiler/config.js';
import { compile } from '../../compiler/compile.js';
import { printGraph } from '../../compiler/ir/printer.js';
import tinyGpt from '../../models/tiny-gpt.js';
import tinyLlama from '../../models/tiny-llama.js';
import { expectGolden } from './golden.js';

describe('golden IR', () => {
  for (const [name, model] of [['tiny-llama', tinyLlama], ['tiny-gpt', tinyGpt]] as const) {
    it(`${name} as built`, () => {
      expectGolden(`${name}.built`, printGraph(model.build(resolveConfig(model.def.train ?? {}, {}))));
    });
    it(`${name} after the graph passes`, async () => {
      const { graph } = await compile(name, {}, { write: false, typeCheck: false });
      expectGolden(`${name}.compiled`, printGraph(graph));
    });
  }
});
