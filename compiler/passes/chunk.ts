// Partitions every region into the chunk loops of FPDT and rematerializes what backward
// needs. Each node gets `loop`:
//   forward layer body   fwd        one loop over chunks i: projections, then attention of q
//                                   chunk i against kv chunks 0..i, then the MLP of chunk i
//   backward layer body  recompute  loop over chunks: the layer up to attention, again
//                        pre        loop over chunks: backward down to the attention output grad
//                        kv         attention backward, kv chunk j outer, q chunks inner
//                        post       at the end of kv step j: the backward of chunk j's projections
//   main region          main<k>    token-wise runs between the layer regions, one loop each
//                        global     ops on whole tensors (loss seed, tied-weight gradient sums)
// A forward value that a backward loop needs is recomputed inside that loop from the layer
// input and the attention output, so no ffn-wide intermediate ever exists for more than a chunk.
import type { Graph, Node, Region, Value } from '../ir/types.js';
import { configuredChunk } from '../schedule/chunk-policy.js';
import type { GraphPass } from './pipeline.js';

const isTokShape = (g: Graph, id: string): boolean => g.values[id]?.type.shape[0]?.toString() === 'S';
const isTok = (g: Graph, n: Node): boolean => [...n.inputs, ...n.outputs].some((x) => isTokShape(g, x));
const tag = (n: Node, loop: string, extra: Record<string, boolean> = {}): Node => ({ ...n, attrs: { ...n.attrs, loop, ...extra } });

/** Nodes (as a set of indices) that `targets` need, following producers inside `nodes`. */
function ancestors(nodes: readonly Node[], targets: readonly number[], within: (n: number) => boolean): Set<number> {
  const producer = new Map<string, number>();
  nodes.forEach((n, k) => n.outputs.forEach((o) => producer.set(o, k)));
  const seen = new Set<number>();
  const stack = [...targets];
  while (stack.length) {
    const k = stack.pop()!;
    if (seen.has(k) || !within(k)) continue;
    seen.add(k);
    for (const i of nodes[k].inputs) {
      const p = producer.get(i);
      if (p !== undefined) stack.push(p);
    }
  }
  return seen;
}

function dependsOn(nodes: readonly Node[], source: string): Set<number> {
  const on = new Set([source]);
  const out = new Set<number>();
  nodes.forEach((n, k) => {
    if (n.inputs.some((i) => on.has(i))) {
      out.add(k);
      n.outputs.forEach((o) => on.add(o));
    }
  });
  return out;
}

class Remat {
  private readonly clones = new Map<string, string>();
  readonly nodes: Node[] = [];
  constructor(
    private readonly values: Record<string, Value>,
    private readonly producer: ReadonlyMap<string, Node>,
    private readonly keep: (id: string) => boolean,
    private readonly suffix: string,
    private readonly loop: string,
    private readonly nextId: () => string,
  ) {}
  /** The id under which `id` is available in this loop, cloning its producers as needed. */
  get(id: string): string {
    if (this.keep(id)) return id;
    const known = this.clones.get(id);
    if (known) return known;
    const p = this.producer.get(id);
    if (!p) return id;
    const inputs = p.inputs.map((i) => this.get(i));
    const outputs = p.outputs.map((o) => {
      let c = `${o}${this.suffix}`;
      for (let k = 1; this.values[c]; k++) c = `${o}${this.suffix}${k}`;
      this.values[c] = { ...this.values[o], id: c };
      this.clones.set(o, c);
      return c;
    });
    this.nodes.push({ ...p, id: this.nextId(), inputs, outputs, attrs: { ...p.attrs, loop: this.loop, remat: true } });
    return this.clones.get(id)!;
  }
}

function partitionBackward(g: Graph, body: Region, values: Record<string, Value>, nextId: () => string): Region {
  const nodes = body.nodes;
  const dy = body.params[0];
  const bwd = dependsOn(nodes, dy);
  const attnF = nodes.findIndex((n, k) => n.op === 'attention' && !bwd.has(k));
  const attnB = nodes.findIndex((n) => n.op === 'attention_bwd');
  const producer = new Map<string, Node>();
  nodes.forEach((n) => n.outputs.forEach((o) => producer.set(o, n)));
  const params = new Set(body.params);
  if (attnF < 0 || attnB < 0) {
    // No attention: one token-wise loop, recomputing what it needs.
    const r = new Remat(values, producer, (id) => params.has(id) || bwd.has(nodes.indexOf(producer.get(id)!)), '~', 'post', nextId);
    const out: Node[] = [];
    nodes.forEach((n, k) => {
      if (!bwd.has(k)) return;
      out.push(tag({ ...n, inputs: n.inputs.map((i) => r.get(i)) }, 'post'));
    });
    return { ...body, nodes: [...r.nodes, ...out] };
  }
  // recompute: the forward up to attention, plus the all-to-all of its output back to tokens
  const rec = ancestors(nodes, [attnF], (k) => !bwd.has(k));
  nodes.forEach((n, k) => {
    if (n.op === 'heads_to_seq' && nodes[attnF].outputs.includes(n.inputs[0])) rec.add(k);
  });
  // pre: every backward op that does not need the attention backward's results
  const after = new Set<number>();
  for (const o of nodes[attnB].outputs) dependsOn(nodes, o).forEach((k) => after.add(k));
  const pre = new Set([...bwd].filter((k) => k !== attnB && !after.has(k)));
  const stored = new Set<string>();
  rec.forEach((k) => nodes[k].outputs.forEach((o) => {
    if (nodes[k].op === 'heads_to_seq' || !isTokShape(g, o) || values[o].type.shard?.kind === 'heads') stored.add(o);
  }));
  const fromBackward = new Set<string>();
  bwd.forEach((k) => nodes[k].outputs.forEach((o) => fromBackward.add(o)));
  const keep = (id: string) => params.has(id) || stored.has(id) || fromBackward.has(id);
  const rPre = new Remat(values, producer, keep, '~pre', 'pre', nextId);
  const rPost = new Remat(values, producer, keep, '~post', 'post', nextId);
  const preNodes: Node[] = [];
  const postNodes: Node[] = [];
  nodes.forEach((n, k) => {
    if (!bwd.has(k) || k === attnB) return;
    if (pre.has(k)) preNodes.push(tag({ ...n, inputs: n.inputs.map((i) => rPre.get(i)) }, 'pre'));
    else postNodes.push(tag({ ...n, inputs: n.inputs.map((i) => rPost.get(i)) }, 'post'));
  });
  const recNodes = nodes.filter((_, k) => rec.has(k)).map((n) => tag(n, 'recompute'));
  return {
    ...body,
    nodes: [...recNodes, ...rPre.nodes, ...preNodes, tag(nodes[attnB], 'kv'), ...rPost.nodes, ...postNodes],
  };
}

function partitionMain(g: Graph, r: Region, regions: (n: Node) => Node): Region {
  const out: Node[] = [];
  let seg = 0;
  let open = false;
  const hoisted: Node[] = [];
  for (const n of r.nodes) {
    if (n.body) {
      out.push(...hoisted.splice(0), regions(n));
      if (open) seg++;
      open = false;
      continue;
    }
    if (!isTok(g, n)) {
      // Whole-tensor ops with no inputs (the loss seed) go before the loop; others after it.
      (n.inputs.length === 0 ? out : hoisted).push(tag(n, 'global'));
      continue;
    }
    out.push(tag(n, `main${seg}`));
    open = true;
  }
  out.push(...hoisted);
  return { ...r, nodes: out };
}

/**
 * The chunk the configuration asks for, checked by the chunk policy. `auto` must be resolved
 * before the passes run (compile and check do, through plan.ts resolveAutoChunk).
 */
export function resolveChunk(g: Graph): number {
  return configuredChunk(g.config);
}

export const chunk: GraphPass = {
  name: 'chunk',
  run(g: Graph): Graph {
    const C = resolveChunk(g);
    const values = { ...g.values };
    let next = 0;
    const scan = (r: Region) => r.nodes.forEach((n) => {
      const m = /^n(\d+)$/.exec(n.id);
      if (m) next = Math.max(next, Number(m[1]) + 1);
      if (n.body) scan(n.body);
    });
    scan(g.main);
    const nextId = () => `n${next++}`;
    const regions = (n: Node): Node => {
      const body = n.body!;
      if (n.op === 'repeat') return { ...n, body: { ...body, nodes: body.nodes.map((x) => tag(x, 'fwd')) } };
      return { ...n, body: partitionBackward(g, body, values, nextId) };
    };
    const main = partitionMain({ ...g, values }, g.main, regions);
    return { ...g, values, main, config: { ...g.config, chunk: C } };
  },
};
