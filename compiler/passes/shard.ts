// Ulysses sequence parallelism and ZeRO-3, as annotations and explicit all-to-alls.
// Every per-token activation is split over the P ranks by sequence (`seq/P`). Attention
// needs whole sequences, so its inputs cross a `seq_to_heads` all-to-all (heads split,
// `heads/P`) and its output crosses back with `heads_to_seq`; the same for attention_bwd.
// With fewer kv heads than ranks, each rank receives the kv heads its query heads use
// (attribute `kvReplicate`). Under ZeRO-3 every parameter is split over all ranks: the P of one
// sequence times the dp groups that each train their own (`zero3/(dp*P)`).
import { dpOf } from '../config.js';
import { errors } from '../errors.js';
import type { Graph, Node, Region, Shard, Value } from '../ir/types.js';
import type { GraphPass } from './pipeline.js';

interface Ctx {
  readonly g: Graph;
  readonly values: Record<string, Value>;
  readonly P: number;
  readonly kvReplicate: number;
  nextNode: number;
}

const withShard = (v: Value, shard: Shard | undefined): Value => ({ ...v, type: { ...v.type, shard } });

function fresh(ctx: Ctx, hint: string, like: Value, shard: Shard): string {
  let id = hint;
  for (let k = 1; ctx.values[id]; k++) id = `${hint}.${k}`;
  ctx.values[id] = { id, role: like.role, type: { ...like.type, shard } };
  return id;
}

function a2a(ctx: Ctx, op: 'seq_to_heads' | 'heads_to_seq', input: string, output: string, isKv: boolean): Node {
  const attrs: Record<string, number | boolean> = { ranks: ctx.P };
  if (isKv) attrs.kv = true;
  if (isKv && ctx.kvReplicate > 1) attrs.kvReplicate = ctx.kvReplicate;
  return { id: `n${ctx.nextNode++}`, op, inputs: [input], outputs: [output], attrs };
}

function shardRegion(ctx: Ctx, r: Region): Region {
  const heads: Shard = { kind: 'heads', ways: ctx.P };
  const nodes: Node[] = [];
  /** seq-layout value -> its heads-layout twin in this region */
  const twin = new Map<string, string>();
  const toHeads = (id: string, isKv: boolean): string => {
    const known = twin.get(id);
    if (known) return known;
    const h = fresh(ctx, `${id}@h`, ctx.values[id], heads);
    nodes.push(a2a(ctx, 'seq_to_heads', id, h, isKv));
    twin.set(id, h);
    return h;
  };
  for (const n of r.nodes) {
    if (n.body) {
      nodes.push({ ...n, body: shardRegion(ctx, n.body) });
      continue;
    }
    if (n.op === 'attention') {
      const [q, k, v] = n.inputs;
      const ins = [toHeads(q, false), toHeads(k, true), toHeads(v, true)];
      const [o, lse] = n.outputs;
      const oh = fresh(ctx, `${o}@h`, ctx.values[o], heads);
      ctx.values[lse] = withShard(ctx.values[lse], heads);
      twin.set(o, oh);
      nodes.push({ ...n, inputs: ins, outputs: [oh, lse] });
      nodes.push(a2a(ctx, 'heads_to_seq', oh, o, false));
      continue;
    }
    if (n.op === 'attention_bwd') {
      const [dout, q, k, v, o, lse] = n.inputs;
      const ins = [toHeads(dout, false), toHeads(q, false), toHeads(k, true), toHeads(v, true), toHeads(o, false), lse];
      const outs = n.outputs.map((x) => fresh(ctx, `${x}@h`, ctx.values[x], heads));
      nodes.push({ ...n, inputs: ins, outputs: outs });
      outs.forEach((h, i) => nodes.push(a2a(ctx, 'heads_to_seq', h, n.outputs[i], i > 0)));
      continue;
    }
    nodes.push(n);
  }
  return { ...r, nodes };
}

function maxNodeId(r: Region): number {
  let m = -1;
  for (const n of r.nodes) {
    const k = /^n(\d+)$/.exec(n.id);
    if (k) m = Math.max(m, Number(k[1]));
    if (n.body) m = Math.max(m, maxNodeId(n.body));
  }
  return m;
}

/**
 * Checks that P ranks can split this model; returns how many ranks hold each kv head when
 * there are fewer kv heads than ranks. Each rank receives exactly the kv heads that its
 * query heads use, so any P that divides the query heads works.
 */
export function kvReplication(g: Graph, P: number): number {
  const { Hq, Hkv, S } = g.sizes;
  if (Hq % P !== 0) throw errors.spNotDivisor('the query heads', Hq, P);
  if (S % P !== 0) throw errors.spNotDivisor('the sequence length', S, P);
  return Hkv >= P ? 1 : Math.ceil(P / Hkv);
}

export const shard: GraphPass = {
  name: 'shard',
  run(g: Graph): Graph {
    const P = g.config.sp;
    const ctx: Ctx = { g, values: { ...g.values }, P, kvReplicate: kvReplication(g, P), nextNode: maxNodeId(g.main) + 1 };
    const S = g.sizes.S;
    for (const [id, v] of Object.entries(ctx.values)) {
      const lead = v.type.shape[0];
      if (v.role === 'param' || (v.role === 'grad' && v.type.dtype === 'fp32' && lead && lead.eval(g.sizes) !== S)) continue;
      if (P > 1 && lead && lead.toString() === 'S') ctx.values[id] = withShard(v, { kind: 'seq', ways: P });
    }
    const world = P * dpOf(g.config);
    if (g.config.zero === 3) for (const p of g.params) ctx.values[p] = withShard(ctx.values[p], { kind: 'zero3', ways: world });
    return { ...g, values: ctx.values, main: shardRegion(ctx, g.main) };
  },
};
