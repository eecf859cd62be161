// Layer checkpoints: each layer's input is kept (in host or GPU memory) and the backward of
// a layer recomputes its forward from it, chunk by chunk.
import { UserError } from '../errors.js';
import type { Graph, Value } from '../ir/types.js';
import type { GraphPass } from './pipeline.js';

export const checkpoint: GraphPass = {
  name: 'checkpoint',
  run(g: Graph): Graph {
    const mode = g.config.checkpoint;
    if (mode === 'off')
      throw new UserError('--checkpoint off is not supported: each layer is recomputed from its checkpoint in backward; use --checkpoint gpu or host', 2);
    const repeat = g.main.nodes.find((n) => n.op === 'repeat');
    const ck = repeat?.outputs[1];
    if (!ck) return g;
    const values: Record<string, Value> = { ...g.values, [ck]: { ...g.values[ck], type: { ...g.values[ck].type, place: mode } } };
    return { ...g, values };
  },
};
