// Token-wise ops on one chunk of rows: one instruction each, operands from the bindings.
// Views and sums of gradients that share an accumulator need no instruction.
import type { Graph, Node, RopeScaling } from '../ir/types.js';
import { addAff, scaleAff, v } from '../schedule/types.js';
import type { Bindings } from './bindings.js';
import { positionRows } from './packed.js';

/** Ops whose weight-shaped outputs accumulate over chunks (they are zeroed before). */
export const ACCUMULATES: Readonly<Record<string, readonly number[]>> = {
  linear_dw: [0],
  linear_db: [0],
  rmsnorm_bwd: [1],
  layernorm_bwd: [1, 2],
  embedding_bwd: [0],
  cross_entropy: [0],
};

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
  const acc = ACCUMULATES[n.op] ?? [];
  if (acc.length) attrs.accumulate = true;
  switch (n.op) {
    case 'view':
      return;
    case 'grad_add':
      if (b.get(n.inputs[0]).kind === 'flat') return; // accumulators are shared
      e.instr({ stream: 'compute', op: 'add', reads: ins, writes: [op(0)], attrs: { n: c * rowOf(g, n.outputs[0]) } });
      return;
    case 'embedding':
      e.instr({ stream: 'compute', op: 'embedding', reads: ins, writes: [op(0)], attrs: { ...attrs, dim: last(g, n.outputs[0]) } });
      return;
    case 'embedding_bwd':
      e.instr({ stream: 'compute', op: 'embedding_bwd', reads: ins, writes: [op(0)], attrs: { ...attrs, dim: last(g, n.inputs[0]) } });
      return;
    case 'linear':
    case 'linear_dx':
    case 'linear_dw': {
      const [inF, outF] =
        n.op === 'linear' ? [last(g, n.inputs[0]), last(g, n.outputs[0])] : n.op === 'linear_dx' ? [last(g, n.outputs[0]), last(g, n.inputs[0])] : [last(g, n.inputs[1]), last(g, n.inputs[0])];
      e.instr({
        stream: 'compute',
        op: n.op,
        reads: ins,
        writes: [op(0)],
        attrs: { ...attrs, in: inF, out: outF, bias: n.inputs.length === 3 },
        flops: 2 * c * inF * outF,
      });
      return;
    }
    case 'linear_db':
      e.instr({ stream: 'compute', op: n.op, reads: ins, writes: [op(0)], attrs: { ...attrs, out: last(g, n.inputs[0]) } });
      return;
    case 'rmsnorm':
    case 'layernorm':
      e.instr({ stream: 'compute', op: n.op, reads: ins, writes: [op(0)], attrs: { ...attrs, dim: last(g, n.inputs[0]) } });
      return;
    case 'rmsnorm_bwd':
    case 'layernorm_bwd':
      e.instr({ stream: 'compute', op: n.op, reads: ins, writes: n.outputs.map((_, k) => op(k)), attrs: { ...attrs, dim: last(g, n.inputs[1]) } });
      return;
    case 'rope':
    case 'rope_bwd': {
      const shape = g.values[n.inputs[0]].type.shape.map((d) => d.eval(g.sizes));
      const ropeAttrs = { ...attrs, heads: shape[1], headDim: shape[2], ...ropeScalingAttr(n) };
      // packed documents: the rows' positions inside their documents are an operand (packed.ts)
      if (geo.packed) {
        e.instr({ stream: 'compute', op: n.op, reads: [...ins, positionRows(e, geo, cv)], writes: [op(0)], attrs: { ...ropeAttrs, packed: true } });
        return;
      }
      // Rank r holds piece r of each chunk: its first token of chunk cv is at cv*C + r*c.
      const pos0 = addAff(scaleAff(v(cv), geo.C), v('r', c));
      e.instr({ stream: 'compute', op: n.op, reads: ins, writes: [op(0)], attrs: ropeAttrs, args: { pos0 } });
      return;
    }
    case 'swiglu':
    case 'gelu':
    case 'add':
      e.instr({ stream: 'compute', op: n.op, reads: ins, writes: [op(0)], attrs: { n: c * rowOf(g, n.outputs[0]) } });
      return;
    case 'swiglu_bwd':
    case 'gelu_bwd':
      e.instr({ stream: 'compute', op: n.op, reads: ins, writes: n.outputs.map((_, k) => op(k)), attrs: { n: c * rowOf(g, n.inputs[0]) } });
      return;
    case 'cross_entropy':
      e.instr({ stream: 'compute', op: n.op, reads: [...ins, e.whole(io.nvalid)], writes: [op(0)], attrs: { ...attrs, vocab: last(g, n.inputs[0]) } });
      return;
    case 'cross_entropy_bwd':
      e.instr({ stream: 'compute', op: n.op, reads: [...ins, e.whole(io.nvalid)], writes: [op(0)], attrs: { ...attrs, vocab: last(g, n.inputs[1]) } });
      return;
    default:
      throw new Error(`lowering: no chunked form for op ${n.op}`);
  }
}
