// Decides what lives in pinned host memory. With offload on, every heads-layout chunk that
// attention streams (q, k, v, o, lse and their gradients) is kept in host memory and brought
// back through two rotating GPU slots (`@host slots=2`); with offload off it stays on the GPU.
import type { Graph, Value } from '../ir/types.js';
import type { GraphPass } from './pipeline.js';

export const offload: GraphPass = {
  name: 'offload',
  run(g: Graph): Graph {
    const host = g.config.offload && g.config.fpdt;
    const values: Record<string, Value> = {};
    for (const [id, v] of Object.entries(g.values)) {
      values[id] = v.type.shard?.kind === 'heads' ? { ...v, type: { ...v.type, place: host ? 'host' : 'gpu', ...(host ? { slots: 2 } : {}) } } : v;
    }
    return { ...g, values };
  },
};
