// Shape inference: recomputes every op's output types from its inputs under the model's
// sizes, keeping the annotations already on a type. Verification then compares.
import { inferTypes } from '../ir/ops.js';
import type { Graph, Node, Region, Value } from '../ir/types.js';
import type { GraphPass } from './pipeline.js';

function inferRegion(g: Graph, r: Region, values: Record<string, Value>): void {
  for (const n of r.nodes) inferNode(g, n, values);
}

function inferNode(g: Graph, n: Node, values: Record<string, Value>): void {
  if (n.body) {
    inferRegion(g, n.body, values);
    return;
  }
  const types = inferTypes(n.op, n.inputs.map((i) => values[i].type), n.attrs, g.sizes);
  types.forEach((t, i) => {
    const id = n.outputs[i];
    const old = values[id];
    if (!old) return;
    values[id] = { ...old, type: { ...old.type, dtype: t.dtype, shape: t.shape } };
  });
}

export const shapes: GraphPass = {
  name: 'shapes',
  run(g: Graph): Graph {
    const values = { ...g.values };
    inferRegion(g, g.main, values);
    return { ...g, values };
  },
};
