// Evaluates a graph in float64 on the CPU: the forward alone, or after autodiff the
// forward and the backward. A `repeat` runs its body once per layer on that layer's
// slices of the stacked parameters; a `repeat_bwd` runs its body in reverse layer order
// from the stacked checkpoints. This is the numerical ground truth the passes answer to.
// Packed documents (lower/packed.ts): given per-token positions and document ids, RoPE reads
// the positions and attention masks pairs of different documents; the graph is the same.
import { Dim } from '../ir/dim.js';
import type { Graph, Node, Region, RopeScaling } from '../ir/types.js';
import * as M from './cpu-math.js';

export type Array64 = Float64Array | Int32Array;

export interface InterpretResult {
  loss: number;
  /** one gradient per parameter id, when the graph outputs them (after autodiff) */
  grads: Record<string, Float64Array>;
  /** every value of the main region by id (layer-body values are not kept) */
  values: Record<string, Array64>;
}

export interface InterpretInputs {
  tokens: Int32Array;
  labels: Int32Array;
  /** packed documents: each token's position inside its document (default: 0, 1, 2, ...) */
  positions?: Int32Array;
  /** packed documents: each token's document id (default: one document) */
  docs?: Int32Array;
}

type Env = Map<string, Array64>;

/** What the step's data says beyond the graph's inputs: packed documents. */
interface Packing {
  readonly positions?: Int32Array;
  readonly docs?: Int32Array;
}

export function interpret(g: Graph, inputs: InterpretInputs, params: Readonly<Record<string, Float64Array>>): InterpretResult {
  const env: Env = new Map();
  const bind = (id: string, a: Array64 | undefined, what: string) => {
    if (!a) throw new Error(`interpret: no ${what} given for %${id}`);
    const want = elements(g, id);
    if (a.length !== want) throw new Error(`interpret: %${id} needs ${want} elements, got ${a.length}`);
    env.set(id, a);
  };
  for (const id of g.inputs) bind(id, (inputs as unknown as Record<string, Int32Array>)[id], 'input');
  for (const id of g.params) bind(id, params[id], 'parameter');
  const seq = g.sizes.S;
  for (const [k, x] of Object.entries({ positions: inputs.positions, docs: inputs.docs }))
    if (x && x.length !== seq) throw new Error(`interpret: ${k} needs ${seq} elements, got ${x.length}`);
  runRegion(g, g.main, env, { positions: inputs.positions, docs: inputs.docs });
  const out = (id: string) => env.get(id) as Float64Array;
  const grads: Record<string, Float64Array> = {};
  if (g.outputs.length === 1 + g.params.length) g.params.forEach((p, i) => (grads[p] = out(g.outputs[1 + i])));
  return { loss: out(g.outputs[0])[0], grads, values: Object.fromEntries(env) };
}

function elements(g: Graph, id: string): number {
  return g.values[id].type.shape.reduce((n, d) => n * d.eval(g.sizes), 1);
}

function runRegion(g: Graph, r: Region, env: Env, pk: Packing): void {
  for (const n of r.nodes) {
    const outs = n.op === 'repeat' ? runRepeat(g, n, env, pk) : n.op === 'repeat_bwd' ? runRepeatBwd(g, n, env, pk) : runLeaf(g, n, n.inputs.map((i) => env.get(i)!), pk);
    if (outs.length < n.outputs.length) throw new Error(`interpret: ${n.op} gave ${outs.length} outputs, the node has ${n.outputs.length}`);
    n.outputs.forEach((o, i) => env.set(o, outs[i]));
  }
}

/** The layer count of a region node and the per-layer size of each stacked input. */
function layerSlicing(g: Graph, n: Node, lead: number) {
  const count = Dim.parse(String(n.attrs.count)).eval(g.sizes);
  const stacked = n.inputs.slice(lead);
  const sizes = stacked.map((s) => elements(g, s) / count);
  return { count, stacked, sizes };
}

function runRepeat(g: Graph, n: Node, env: Env, pk: Packing): Array64[] {
  const body = n.body!;
  const { count, stacked, sizes } = layerSlicing(g, n, 1);
  let x = env.get(n.inputs[0]) as Float64Array;
  const checkpoints = new Float64Array(count * x.length);
  for (let l = 0; l < count; l++) {
    checkpoints.set(x, l * x.length);
    const inner: Env = new Map();
    inner.set(body.params[0], x);
    stacked.forEach((s, i) => inner.set(body.params[1 + i], (env.get(s) as Float64Array).subarray(l * sizes[i], (l + 1) * sizes[i])));
    runRegion(g, body, inner, pk);
    x = inner.get(body.results[0]) as Float64Array;
  }
  return [x, checkpoints];
}

function runRepeatBwd(g: Graph, n: Node, env: Env, pk: Packing): Array64[] {
  const body = n.body!;
  const { count, stacked, sizes } = layerSlicing(g, n, 2);
  let dy = env.get(n.inputs[0]) as Float64Array;
  const checkpoints = env.get(n.inputs[1]) as Float64Array;
  const width = checkpoints.length / count;
  const grads = sizes.map((s) => new Float64Array(s * count));
  for (let l = count - 1; l >= 0; l--) {
    const inner: Env = new Map();
    inner.set(body.params[0], dy);
    inner.set(body.params[1], checkpoints.subarray(l * width, (l + 1) * width));
    stacked.forEach((s, i) => inner.set(body.params[2 + i], (env.get(s) as Float64Array).subarray(l * sizes[i], (l + 1) * sizes[i])));
    runRegion(g, body, inner, pk);
    dy = inner.get(body.results[0]) as Float64Array;
    grads.forEach((gr, i) => gr.set(inner.get(body.results[1 + i]) as Float64Array, l * sizes[i]));
  }
  return [dy, ...grads];
}

function runLeaf(g: Graph, n: Node, ins: Array64[], pk: Packing): Array64[] {
  const dims = (id: string) => g.values[id].type.shape.map((d) => d.eval(g.sizes));
  const last = (id: string) => dims(id).at(-1)!;
  const rowsOf = (id: string) => elements(g, id) / last(id);
  const f = (i: number) => ins[i] as Float64Array;
  const int = (i: number) => ins[i] as Int32Array;
  const eps = n.attrs.eps as number;
  const [in0, in1, in2] = n.inputs;
  const ropeArgs = () => {
    const [s, h, d] = dims(in0);
    return [s, h, d, n.attrs.rotaryDim as number, n.attrs.theta as number, pk.positions ?? 0, n.attrs.scaling as RopeScaling | undefined] as const;
  };
  const attnShape = (): M.AttentionShape => {
    const [s, hq, d] = dims(in0);
    return { s, hq, hkv: dims(in1)[1], d, causal: n.attrs.causal === true, ...(pk.docs ? { docs: pk.docs } : {}) };
  };
  const denominator = (labels: Int32Array) => Math.max(1, M.countLabels(labels));
  switch (n.op) {
    case 'embedding':
      return [M.embeddingFwd(int(0), f(1), last(in1))];
    case 'linear': {
      const [outF, inF] = dims(in1);
      return [M.linearFwd(f(0), f(1), ins[2] as Float64Array | undefined, rowsOf(in0), inF, outF)];
    }
    case 'rmsnorm':
      return [M.rmsnormFwd(f(0), f(1), rowsOf(in0), last(in0), eps)];
    case 'layernorm':
      return [M.layernormFwd(f(0), f(1), f(2), rowsOf(in0), last(in0), eps)];
    case 'view':
      return [ins[0]];
    case 'rope':
      return [M.rope(f(0), ...ropeArgs())];
    case 'attention': {
      const { o, lse } = M.attentionFwd(f(0), f(1), f(2), attnShape());
      return [o, lse];
    }
    case 'swiglu':
      return [M.swigluFwd(f(0), f(1))];
    case 'gelu':
      return [M.geluFwd(f(0))];
    case 'add':
      return [M.addFwd(f(0), f(1))];
    case 'cross_entropy':
      return [Float64Array.of(M.crossEntropyFwd(f(0), int(1), rowsOf(in0), last(in0), denominator(int(1))))];
    case 'ones':
      return [Float64Array.of(1)];
    case 'embedding_bwd':
      return [M.embeddingBwd(f(0), int(1), Dim.parse(String(n.attrs.vocab)).eval(g.sizes), last(in0))];
    case 'linear_dx': {
      const [outF, inF] = dims(in1);
      return [M.linearDx(f(0), f(1), rowsOf(in0), inF, outF)];
    }
    case 'linear_dw':
      return [M.linearDw(f(0), f(1), rowsOf(in0), last(in1), last(in0))];
    case 'linear_db':
      return [M.linearDb(f(0), rowsOf(in0), last(in0))];
    case 'rmsnorm_bwd': {
      const { dx, dw } = M.rmsnormBwd(f(0), f(1), f(2), rowsOf(in1), last(in1), eps);
      return [dx, dw];
    }
    case 'layernorm_bwd': {
      const { dx, dw, db } = M.layernormBwd(f(0), f(1), f(2), rowsOf(in1), last(in1), eps);
      return [dx, dw, db];
    }
    case 'rope_bwd':
      return [M.ropeBwd(f(0), ...ropeArgs())];
    case 'attention_bwd': {
      const [s, hq, d] = dims(in1);
      const { dq, dk, dv } = M.attentionBwd(f(1), f(2), f(3), f(4), f(5), f(0), { s, hq, hkv: dims(in2)[1], d, causal: n.attrs.causal === true, ...(pk.docs ? { docs: pk.docs } : {}) });
      return [dq, dk, dv];
    }
    case 'swiglu_bwd': {
      const { dg, du } = M.swigluBwd(f(0), f(1), f(2));
      return [dg, du];
    }
    case 'gelu_bwd':
      return [M.geluBwd(f(0), f(1))];
    case 'cross_entropy_bwd':
      return [M.crossEntropyBwd(f(0)[0], f(1), int(2), rowsOf(in1), last(in1), denominator(int(2)))];
    case 'grad_add':
      return [M.addFwd(f(0), f(1))];
    default:
      throw new Error(`interpret: no float64 rule for op '${n.op}'`);
  }
}
