// Token-wise ops on one chunk of rows: one instruction each, operands from the bindings, named
// as the op catalog (schedule/ops.ts) names the graph node's inputs and outputs in order.
// Views and sums of gradients that share an accumulator need no instruction.
import type { Graph, Node, RopeScaling } from '../ir/types.js';
import { isOpName, opSpec } from '../schedule/ops.js';
import { addAff, scaleAff, v } from '../schedule/types.js';
import type { Bindings } from './bindings.js';
import { positionRows } from './packed.js';

const last = (g: Graph, id: string) => g.values[id].type.shape.at(-1)!.eval(g.sizes);
const rowOf = (g: Graph, id: string) => g.values[id].type.shape.slice(1).reduce((n, d) => n * d.eval(g.sizes), 1);

/**
 * Instruction attrs hold plain numbers: a rope node's `scaling` becomes
 * `llama3Scaling: [factor, lowFreqFactor, highFreqFactor, originalMaxPositions]`, named by its type.
 */
function ropeScalingAttr(n: Node): { llama3Scaling?: number[] } {
  const s = n.attrs.scaling as RopeScaling | undefined;
  if (!s) return {};
  if (s.type !== 'llama3') throw new Error(`lowering: rope scaling type '${String(s.type)}' has no instruction form`);
  return { llama3Scaling: [s.factor, s.lowFreqFactor, s.highFreqFactor, s.originalMaxPositions] };
}

export function emitTokenwise(g: Graph, n: Node, b: Bindings, cv: string, io: { nvalid: string }): void {
  const { e, geo } = b;
  const c = geo.c;
  const op = (o: number) => b.operand(n.outputs[o], cv);
  const ins = n.inputs.map((i) => b.operand(i, cv));
  const attrs: Record<string, number | string | boolean> = { rows: c };
  for (const [k, val] of Object.entries(n.attrs)) if (typeof val !== 'object' && k !== 'loop' && k !== 'remat') attrs[k] = val;
  // ops whose weight-shaped outputs accumulate over chunks (they are zeroed before) say so
  if (isOpName(n.op) && opSpec(n.op).accumulates?.length) attrs.accumulate = true;
  const [in0, in1, in2] = ins;
  switch (n.op) {
    case 'view':
      return;
    case 'grad_add':
      if (b.get(n.inputs[0]).kind === 'flat') return; // accumulators are shared
      if (b.addsInto.has(n.inputs[0]) || b.addsInto.has(n.inputs[1])) return; // its later term added itself in
      e.instr({ stream: 'compute', op: 'add', reads: { a: in0, b: in1 }, writes: { y: op(0) }, attrs: { n: c * rowOf(g, n.outputs[0]) } });
      return;
    case 'embedding':
      e.instr({ stream: 'compute', op: 'embedding', reads: { tokens: in0, table: in1 }, writes: { y: op(0) }, attrs: { ...attrs, dim: last(g, n.outputs[0]) } });
      return;
    case 'embedding_bwd':
      e.instr({ stream: 'compute', op: 'embedding_bwd', reads: { dy: in0, tokens: in1 }, writes: { dtable: op(0) }, attrs: { ...attrs, dim: last(g, n.inputs[0]) } });
      return;
    case 'linear': {
      const [inF, outF] = [last(g, n.inputs[0]), last(g, n.outputs[0])];
      const bias = n.inputs.length === 3;
      e.instr({ stream: 'compute', op: 'linear', reads: { x: in0, w: in1, ...(bias ? { b: in2 } : {}) }, writes: { y: op(0) }, attrs: { ...attrs, in: inF, out: outF, bias }, flops: 2 * c * inF * outF });
      return;
    }
    case 'linear_dx': {
      const [inF, outF] = [last(g, n.outputs[0]), last(g, n.inputs[0])];
      const add = b.addsInto.has(n.outputs[0]);
      e.instr({ stream: 'compute', op: add ? 'linear_dx_add' : 'linear_dx', reads: { dy: in0, w: in1 }, writes: { dx: op(0) }, attrs: { ...attrs, in: inF, out: outF, bias: n.inputs.length === 3 }, flops: 2 * c * inF * outF });
      return;
    }
    case 'linear_dw': {
      const [inF, outF] = [last(g, n.inputs[1]), last(g, n.inputs[0])];
      e.instr({ stream: 'compute', op: 'linear_dw', reads: { dy: in0, x: in1 }, writes: { dw: op(0) }, attrs: { ...attrs, in: inF, out: outF, bias: n.inputs.length === 3 }, flops: 2 * c * inF * outF });
      return;
    }
    case 'linear_db':
      e.instr({ stream: 'compute', op: 'linear_db', reads: { dy: in0 }, writes: { db: op(0) }, attrs: { ...attrs, out: last(g, n.inputs[0]) } });
      return;
    case 'rmsnorm':
      e.instr({ stream: 'compute', op: 'rmsnorm', reads: { x: in0, w: in1 }, writes: { y: op(0) }, attrs: { ...attrs, dim: last(g, n.inputs[0]) } });
      return;
    case 'layernorm':
      e.instr({ stream: 'compute', op: 'layernorm', reads: { x: in0, w: in1, b: in2 }, writes: { y: op(0) }, attrs: { ...attrs, dim: last(g, n.inputs[0]) } });
      return;
    case 'rmsnorm_bwd':
      e.instr({ stream: 'compute', op: 'rmsnorm_bwd', reads: { dy: in0, x: in1, w: in2 }, writes: { dx: op(0), dw: op(1) }, attrs: { ...attrs, dim: last(g, n.inputs[1]) } });
      return;
    case 'layernorm_bwd':
      e.instr({ stream: 'compute', op: 'layernorm_bwd', reads: { dy: in0, x: in1, w: in2 }, writes: { dx: op(0), dw: op(1), db: op(2) }, attrs: { ...attrs, dim: last(g, n.inputs[1]) } });
      return;
    case 'rope':
    case 'rope_bwd': {
      const shape = g.values[n.inputs[0]].type.shape.map((d) => d.eval(g.sizes));
      const ropeAttrs = { ...attrs, heads: shape[1], headDim: shape[2], ...ropeScalingAttr(n) };
      const emit = (extra: { positions?: ReturnType<typeof positionRows>; attrs: typeof ropeAttrs & { packed?: true }; args?: { pos0: ReturnType<typeof addAff> } }) =>
        n.op === 'rope'
          ? e.instr({ stream: 'compute', op: 'rope', reads: { x: in0, positions: extra.positions }, writes: { y: op(0) }, attrs: extra.attrs, args: extra.args })
          : e.instr({ stream: 'compute', op: 'rope_bwd', reads: { dy: in0, positions: extra.positions }, writes: { dx: op(0) }, attrs: extra.attrs, args: extra.args });
      // packed documents: the rows' positions inside their documents are an operand (packed.ts)
      if (geo.packed) return emit({ positions: positionRows(e, geo, cv), attrs: { ...ropeAttrs, packed: true } });
      // Rank r holds piece r of each chunk: its first token of chunk cv is at cv*C + r*c.
      return emit({ attrs: ropeAttrs, args: { pos0: addAff(scaleAff(v(cv), geo.C), v('r', c)) } });
    }
    case 'swiglu':
      e.instr({ stream: 'compute', op: 'swiglu', reads: { gate: in0, up: in1 }, writes: { y: op(0) }, attrs: { n: c * rowOf(g, n.outputs[0]) } });
      return;
    case 'gelu':
      e.instr({ stream: 'compute', op: 'gelu', reads: { x: in0 }, writes: { y: op(0) }, attrs: { n: c * rowOf(g, n.outputs[0]) } });
      return;
    case 'add':
      e.instr({ stream: 'compute', op: 'add', reads: { a: in0, b: in1 }, writes: { y: op(0) }, attrs: { n: c * rowOf(g, n.outputs[0]) } });
      return;
    case 'swiglu_bwd':
      e.instr({ stream: 'compute', op: 'swiglu_bwd', reads: { dy: in0, gate: in1, up: in2 }, writes: { dgate: op(0), dup: op(1) }, attrs: { n: c * rowOf(g, n.inputs[0]) } });
      return;
    case 'gelu_bwd':
      e.instr({ stream: 'compute', op: 'gelu_bwd', reads: { dy: in0, x: in1 }, writes: { dx: op(0) }, attrs: { n: c * rowOf(g, n.inputs[0]) } });
      return;
    case 'cross_entropy':
      e.instr({ stream: 'compute', op: 'cross_entropy', reads: { logits: in0, labels: in1, nvalid: e.whole(io.nvalid) }, writes: { loss: op(0) }, attrs: { ...attrs, vocab: last(g, n.inputs[0]) } });
      return;
    case 'cross_entropy_bwd':
      e.instr({ stream: 'compute', op: 'cross_entropy_bwd', reads: { dloss: in0, logits: in1, labels: in2, nvalid: e.whole(io.nvalid) }, writes: { dlogits: op(0) }, attrs: { ...attrs, vocab: last(g, n.inputs[1]) } });
      return;
    default:
      throw new Error(`lowering: no chunked form for op ${n.op}`);
  }
}
