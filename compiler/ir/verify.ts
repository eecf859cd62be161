// Well-formedness of the graph IR. Runs before the first pass and after every pass.
//
// Invariants:
//  1. Every value id named anywhere is declared in `values`, and every declared type has a
//     known dtype and integer sizes under `sizes`.
//  2. Each value is defined exactly once: as a graph input, a parameter, a region parameter
//     or a node output.
//  3. Inside a region, a value is used only after its definition (regions are in program
//     order); region bodies are closed: they see only their own parameters and definitions.
//  4. Every op is in the catalog and has the right number of inputs.
//  5. Re-inferring each leaf node's output types from its inputs gives the declared types
//     (dtype and shape; sharding and placement are annotations and are not re-inferred).
//  6. `repeat`: inputs are [x, ...stacked params], body params [x, ...slices], body results
//     [y] with y's type equal to x's; slices equal the stacked types without the leading
//     count dim. `repeat_bwd` mirrors it: inputs [dy, checkpoints, ...stacked], body params
//     [dy, x, ...slices], results [dx, ...slice grads].
//  7. The graph outputs are defined in the main region; the dataflow graph is acyclic.
import { Graph as DagGraph, alg } from '@dagrejs/graphlib';
import { Dim } from './dim.js';
import { inferTypes, opInfo, ShapeError } from './ops.js';
import { printType } from './printer.js';
import type { Graph, Node, Region, TensorType } from './types.js';

export class VerifyError extends Error {}

const fail = (msg: string): never => {
  throw new VerifyError(msg);
};

function typeEq(a: TensorType, b: TensorType): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d.equals(b.shape[i]));
}

export function verifyGraph(g: Graph): void {
  const defined = new Set<string>();
  const define = (id: string, where: string) => {
    if (!g.values[id]) fail(`${where}: value %${id} is not declared (invariant 1)`);
    if (defined.has(id)) fail(`${where}: value %${id} is defined twice (invariant 2)`);
    defined.add(id);
  };
  for (const [id, v] of Object.entries(g.values)) {
    if (v.id !== id) fail(`value %${id} carries id %${v.id} (invariant 1)`);
    if (!['bf16', 'fp32', 'int32'].includes(v.type.dtype)) fail(`%${id}: unknown dtype ${v.type.dtype} (invariant 1)`);
    for (const d of v.type.shape) {
      let n: number;
      try {
        n = d.eval(g.sizes);
      } catch (e) {
        return fail(`%${id}: ${(e as Error).message} (invariant 1)`);
      }
      if (!Number.isInteger(n) || n < 0) fail(`%${id}: dimension ${d} is ${n} under the sizes, not a whole number (invariant 1)`);
    }
  }
  const outer = new Set<string>();
  for (const id of [...g.inputs, ...g.params]) {
    define(id, 'graph');
    outer.add(id);
  }
  verifyRegion(g, g.main, outer, define);
  for (const o of g.outputs) if (!defined.has(o)) fail(`graph output %${o} is never defined (invariant 7)`);
  checkAcyclic(g);
}

function verifyRegion(g: Graph, r: Region, visible: Set<string>, define: (id: string, where: string) => void): void {
  const scope = new Set(visible);
  for (const p of r.params) {
    define(p, `region ${r.name}`);
    scope.add(p);
  }
  for (const n of r.nodes) {
    const where = `node %${n.outputs[0] ?? n.id} = ${n.op}`;
    for (const i of n.inputs) if (!scope.has(i)) fail(`${where}: uses %${i} before it is defined or from outside its region (invariant 3)`);
    verifyNode(g, n, where, define);
    for (const o of n.outputs) {
      define(o, where);
      scope.add(o);
    }
  }
  for (const res of r.results) if (!scope.has(res)) fail(`region ${r.name}: result %${res} is not defined in it (invariant 3)`);
}

function verifyNode(g: Graph, n: Node, where: string, define: (id: string, where: string) => void): void {
  let info;
  try {
    info = opInfo(n.op);
  } catch (e) {
    return fail(`${where}: ${(e as Error).message} (invariant 4)`);
  }
  const ty = (id: string) => g.values[id]?.type ?? fail(`${where}: value %${id} is not declared (invariant 1)`);
  if (info.kind === 'region') {
    if (!n.body) fail(`${where}: region op without a body (invariant 6)`);
    verifyRepeat(g, n, where, ty);
    verifyRegion(g, n.body!, new Set(), define);
    return;
  }
  let got: TensorType[];
  try {
    got = inferTypes(n.op, n.inputs.map(ty), n.attrs, g.sizes);
  } catch (e) {
    if (e instanceof ShapeError) return fail(`${where}: ${e.message} (invariant ${/takes/.test(e.message) ? 4 : 5})`);
    throw e;
  }
  if (got.length !== n.outputs.length) fail(`${where}: has ${n.outputs.length} outputs, the op gives ${got.length} (invariant 5)`);
  got.forEach((t, i) => {
    const decl = ty(n.outputs[i]);
    if (!typeEq(t, decl)) fail(`${where}: output %${n.outputs[i]} is declared ${printType(decl)} but inferred ${printType(t)} (invariant 5)`);
  });
}

function sliceOf(stacked: TensorType): TensorType {
  return { dtype: stacked.dtype, shape: stacked.shape.slice(1) };
}

function verifyRepeat(g: Graph, n: Node, where: string, ty: (id: string) => TensorType): void {
  const body = n.body!;
  const count = Dim.parse(String(n.attrs.count));
  const fwd = n.op === 'repeat';
  const lead = fwd ? 1 : 2; // [x] or [dy, checkpoints]
  const stacked = n.inputs.slice(lead);
  const slices = body.params.slice(fwd ? 1 : 2);
  if (stacked.length !== slices.length) fail(`${where}: ${stacked.length} stacked inputs but ${slices.length} slice params (invariant 6)`);
  stacked.forEach((s, i) => {
    const st = ty(s);
    if (!st.shape[0]?.equals(count)) fail(`${where}: stacked %${s} must lead with ${count} (invariant 6)`);
    if (!typeEq(sliceOf(st), ty(slices[i]))) fail(`${where}: slice %${slices[i]} is not a layer of %${s} (invariant 6)`);
  });
  const x = ty(n.inputs[0]);
  if (!typeEq(ty(body.params[0]), x)) fail(`${where}: body parameter %${body.params[0]} differs from input %${n.inputs[0]} (invariant 6)`);
  if (!typeEq(ty(body.results[0]), x)) fail(`${where}: body result %${body.results[0]} differs from the carried value (invariant 6)`);
  if (!typeEq(ty(n.outputs[0]), x)) fail(`${where}: output %${n.outputs[0]} differs from the carried value (invariant 6)`);
  if (fwd) {
    if (body.results.length !== 1) fail(`${where}: a layer body yields one value (invariant 6)`);
    if (n.outputs.length > 2) fail(`${where}: repeat gives the result and optionally the checkpoints (invariant 6)`);
    if (n.outputs[1]) {
      const ck = ty(n.outputs[1]);
      if (!ck.shape[0]?.equals(count) || !typeEq(sliceOf(ck), x)) fail(`${where}: checkpoints %${n.outputs[1]} must be [${count}, ...] of the carried value (invariant 6)`);
    }
  } else {
    const grads = body.results.slice(1);
    if (grads.length !== slices.length) fail(`${where}: ${grads.length} slice gradients for ${slices.length} slices (invariant 6)`);
    if (n.outputs.length !== 1 + stacked.length) fail(`${where}: gives dx and one gradient per stacked input (invariant 6)`);
  }
}

function checkAcyclic(g: Graph): void {
  const dag = new DagGraph({ directed: true });
  const addRegion = (r: Region, prefix: string) => {
    for (const n of r.nodes) {
      dag.setNode(prefix + n.id);
      for (const i of n.inputs) dag.setEdge(prefix + i, prefix + n.id);
      for (const o of n.outputs) dag.setEdge(prefix + n.id, prefix + o);
      if (n.body) addRegion(n.body, `${prefix}${n.id}/`);
    }
  };
  addRegion(g.main, '');
  if (!alg.isAcyclic(dag)) fail(`the dataflow graph has a cycle: ${alg.findCycles(dag)[0]?.join(' -> ')} (invariant 7)`);
}

/** Program order of a region's nodes from the dataflow graph (used by passes that reorder). */
export function topoOrder(r: Region): string[] {
  const dag = new DagGraph({ directed: true });
  const producer = new Map<string, string>();
  for (const n of r.nodes) {
    dag.setNode(n.id);
    for (const o of n.outputs) producer.set(o, n.id);
  }
  for (const n of r.nodes) for (const i of n.inputs) {
    const p = producer.get(i);
    if (p) dag.setEdge(p, n.id);
  }
  return alg.topsort(dag);
}
