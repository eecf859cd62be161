// Reverse-mode differentiation of the forward graph. After the loss, `ones()` seeds the
// loss gradient and the backward ops follow in reverse program order. A repeated layer
// keeps its inputs as checkpoints (a second output of `repeat`) and gets one `repeat_bwd`
// whose body recomputes the layer's forward from its checkpoint, then runs its backward.
// The graph outputs become [loss, one fp32 gradient per parameter, in `params` order].
import { Dim } from '../ir/dim.js';
import { inferTypes } from '../ir/ops.js';
import type { AttrValue, Graph, Node, Region, TensorType, Value, ValueRole } from '../ir/types.js';
import { GRAD_RULES, type GradEmitter } from './autodiff-rules.js';
import type { GraphPass } from './pipeline.js';

/** The new graph's values and id supply while the backward is built. */
class GradBuilder {
  readonly values: Record<string, Value>;
  private nextNode: number;

  constructor(g: Graph) {
    this.values = { ...g.values };
    let max = -1;
    const scan = (r: Region) => {
      for (const n of r.nodes) {
        const m = /^n(\d+)$/.exec(n.id);
        if (m) max = Math.max(max, Number(m[1]));
        if (n.body) scan(n.body);
      }
    };
    scan(g.main);
    this.nextNode = max + 1;
  }

  nodeId(): string {
    return `n${this.nextNode++}`;
  }

  /** Declares a value under a readable id: `hint`, else `hint.1`, `hint.2`, ... */
  declare(hint: string, type: TensorType, role: ValueRole, extra: Partial<Value> = {}): string {
    let id = hint;
    for (let k = 1; this.values[id]; k++) id = `${hint}.${k}`;
    this.values[id] = { id, type, role, ...extra };
    return id;
  }

  type(id: string): TensorType {
    const v = this.values[id];
    if (!v) throw new Error(`autodiff: value %${id} is not declared`);
    return v.type;
  }
}

/** Emits backward nodes into one region, inferring their types from the op catalog. */
class RegionEmitter implements GradEmitter {
  readonly nodes: Node[] = [];
  constructor(
    readonly b: GradBuilder,
    readonly sizes: Readonly<Record<string, number>>,
  ) {}

  type(id: string): TensorType {
    return this.b.type(id);
  }

  emit(op: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>>, hints: readonly string[]): string[] {
    const types = inferTypes(op, inputs.map((i) => this.type(i)), attrs, this.sizes);
    const outputs = types.map((t, i) => this.b.declare(hints[i] ?? `${hints[0]}_${i}`, { dtype: t.dtype, shape: t.shape }, 'grad'));
    this.nodes.push({ id: this.b.nodeId(), op, inputs: [...inputs], outputs, attrs });
    return outputs;
  }
}

/** Values that depend on any of `sources` through the region's nodes. */
function dependents(nodes: readonly Node[], sources: readonly string[]): Set<string> {
  const on = new Set(sources);
  for (const n of nodes) if (n.inputs.some((i) => on.has(i))) for (const o of n.outputs) on.add(o);
  return on;
}

/**
 * Appends the backward of `nodes` to `e`, seeded with the gradients in `seeds`, for the
 * values that depend on `sources`. Returns value id -> gradient id.
 */
function backward(e: RegionEmitter, nodes: readonly Node[], sources: readonly string[], seeds: ReadonlyMap<string, string>): Map<string, string> {
  const live = dependents(nodes, sources);
  const grads = new Map(seeds);
  const accumulate = (x: string, dx: string) => {
    const prev = grads.get(x);
    grads.set(x, prev === undefined ? dx : e.emit('grad_add', [prev, dx], {}, [`d_${x}`])[0]);
  };
  for (const n of [...nodes].reverse()) {
    const dys = n.outputs.map((o) => grads.get(o));
    if (dys.every((x) => x === undefined)) continue;
    const needs = n.inputs.map((i) => live.has(i));
    if (!needs.some(Boolean)) continue;
    const dxs = n.op === 'repeat' ? repeatBackward(e, n, dys) : leafBackward(e, n, dys, needs);
    n.inputs.forEach((x, i) => {
      const dx = dxs[i];
      if (dx !== undefined && needs[i]) accumulate(x, dx);
    });
  }
  return grads;
}

function leafBackward(e: RegionEmitter, n: Node, dys: readonly (string | undefined)[], needs: readonly boolean[]): (string | undefined)[] {
  const rule = GRAD_RULES[n.op];
  if (!rule) throw new Error(`autodiff: no gradient rule for op '${n.op}'${n.loc ? ` (${n.loc})` : ''}`);
  return rule(n, dys, needs, e);
}

/**
 * One `repeat_bwd` for a repeated layer: inputs [dy, checkpoints, ...stacked params], body
 * params [dy, x, ...slices], body = the layer recomputed from x, then its backward.
 */
function repeatBackward(e: RegionEmitter, n: Node, dys: readonly (string | undefined)[]): string[] {
  const b = e.b;
  const fwd = n.body!;
  const [dy, ckptGrad] = dys;
  const checkpoints = n.outputs[1];
  if (ckptGrad !== undefined) throw new Error(`autodiff: the checkpoints %${checkpoints} of a repeat are used downstream`);
  if (!checkpoints) throw new Error(`autodiff: repeat %${n.outputs[0]} has no checkpoints output`);

  // the recomputed forward, with fresh ids
  const rename = new Map<string, string>();
  const copyValue = (id: string) => {
    const v = b.values[id];
    const fresh = b.declare(`${id}.r`, v.type, v.role, v.name ? { name: v.name } : {});
    rename.set(id, fresh);
    return fresh;
  };
  const [x, ...slices] = fwd.params.map(copyValue);
  const result = fwd.results[0];
  const dyParam = b.declare(`d_${result}`, b.type(result), 'grad');
  const inner = new RegionEmitter(b, e.sizes);
  for (const m of fwd.nodes) {
    if (m.body) throw new Error(`autodiff: a repeated layer may not contain another region (${m.op})`);
    inner.nodes.push({ ...m, id: b.nodeId(), inputs: m.inputs.map((i) => rename.get(i)!), outputs: m.outputs.map(copyValue) });
  }
  const grads = backward(inner, [...inner.nodes], [x, ...slices], new Map([[rename.get(result)!, dyParam]]));

  const dx = grads.get(x);
  if (dx === undefined) throw new Error(`autodiff: the output of repeated layer '${fwd.name}' does not depend on its input`);
  const sliceGrads = slices.map((s, i) => {
    const ds = grads.get(s);
    if (ds === undefined) throw new Error(`autodiff: layer parameter %${fwd.params[i + 1]} does not influence the loss`);
    if (b.type(ds).dtype !== 'fp32') throw new Error(`autodiff: layer parameter %${fwd.params[i + 1]} gets a ${b.type(ds).dtype} gradient; parameter gradients are fp32`);
    return ds;
  });
  const body: Region = { name: `${fwd.name}_bwd`, params: [dyParam, x, ...slices], nodes: inner.nodes, results: [dx, ...sliceGrads] };

  const [xin, ...stacked] = n.inputs;
  const outputs = [
    b.declare(`d_${xin}`, b.type(xin), 'grad'),
    ...stacked.map((p) => b.declare(`d_${p}`, { dtype: 'fp32', shape: b.type(p).shape }, 'grad')),
  ];
  e.nodes.push({ id: b.nodeId(), op: 'repeat_bwd', inputs: [dy!, checkpoints, ...stacked], outputs, attrs: { count: n.attrs.count }, body, ...(n.loc ? { loc: n.loc } : {}) });
  return outputs;
}

/** The forward `repeat` with its layer inputs stacked as a second output. */
function withCheckpoints(b: GradBuilder, n: Node): Node {
  if (n.op !== 'repeat' || n.outputs.length > 1) return n;
  const x = b.type(n.inputs[0]);
  const ckpt = b.declare('checkpoints', { dtype: x.dtype, shape: [Dim.parse(String(n.attrs.count)), ...x.shape] }, 'act');
  return { ...n, outputs: [...n.outputs, ckpt] };
}

export function differentiate(g: Graph): Graph {
  const b = new GradBuilder(g);
  const e = new RegionEmitter(b, g.sizes);
  const forward = g.main.nodes.map((n) => withCheckpoints(b, n));
  const loss = g.outputs[0];
  if (b.type(loss).shape.length !== 0) throw new Error(`autodiff: the first graph output %${loss} is not a scalar loss`);
  const dloss = e.emit('ones', [], {}, [`d_${loss}`])[0];
  const grads = backward(e, forward, g.params, new Map([[loss, dloss]]));
  const paramGrads = g.params.map((p) => {
    const dp = grads.get(p);
    if (dp === undefined) throw new Error(`autodiff: parameter %${p} does not influence the loss`);
    if (b.type(dp).dtype !== 'fp32') throw new Error(`autodiff: parameter %${p} gets a ${b.type(dp).dtype} gradient; parameter gradients are fp32`);
    return dp;
  });
  const outputs = [loss, ...paramGrads];
  return {
    ...g,
    values: b.values,
    main: { ...g.main, nodes: [...forward, ...e.nodes], results: outputs },
    outputs,
  };
}

export const autodiff: GraphPass = { name: 'autodiff', run: differentiate };
