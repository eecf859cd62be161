// Gradient rules of the leaf forward ops: for one forward node and the gradients of its
// outputs, emit the backward nodes and return one gradient per input (undefined where
// the input needs none). The op catalog's backward ops are the only vocabulary.
import type { AttrValue, Node, TensorType } from '../ir/types.js';

/** What a rule may do: read types and add backward nodes to the region being built. */
export interface GradEmitter {
  type(id: string): TensorType;
  /** adds one backward node; `hints` name its outputs; returns the output ids */
  emit(op: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>>, hints: readonly string[]): string[];
}

export type GradRule = (
  n: Node,
  /** gradient of each output, undefined where the output does not reach the loss */
  dys: readonly (string | undefined)[],
  /** whether each input needs a gradient */
  needs: readonly boolean[],
  e: GradEmitter,
) => (string | undefined)[];

const d = (id: string) => `d_${id}`;

function only(n: Node, dys: readonly (string | undefined)[]): string {
  if (dys.slice(1).some((x) => x !== undefined)) throw new Error(`autodiff: ${n.op} output %${n.outputs[1]} has no gradient rule`);
  return dys[0]!;
}

export const GRAD_RULES: Readonly<Record<string, GradRule>> = {
  embedding: (n, dys, needs, e) => {
    const [tokens, table] = n.inputs;
    if (!needs[1]) return [undefined, undefined];
    const vocab = String(e.type(table).shape[0]);
    return [undefined, e.emit('embedding_bwd', [only(n, dys), tokens], { vocab }, [d(table)])[0]];
  },

  linear: (n, dys, needs, e) => {
    const dy = only(n, dys);
    const [x, w, b] = n.inputs;
    return [
      needs[0] ? e.emit('linear_dx', [dy, w], {}, [d(x)])[0] : undefined,
      needs[1] ? e.emit('linear_dw', [dy, x], {}, [d(w)])[0] : undefined,
      b !== undefined && needs[2] ? e.emit('linear_db', [dy], {}, [d(b)])[0] : undefined,
    ];
  },

  rmsnorm: (n, dys, _needs, e) => {
    const [x, w] = n.inputs;
    return e.emit('rmsnorm_bwd', [only(n, dys), x, w], { eps: n.attrs.eps }, [d(x), d(w)]);
  },

  layernorm: (n, dys, _needs, e) => {
    const [x, w, b] = n.inputs;
    return e.emit('layernorm_bwd', [only(n, dys), x, w], { eps: n.attrs.eps }, [d(x), d(w), d(b)]);
  },

  // the backward of a view is a view back to the input's shape
  view: (n, dys, _needs, e) => {
    const [x] = n.inputs;
    return [e.emit('view', [only(n, dys)], { shape: e.type(x).shape.map(String) }, [d(x)])[0]];
  },

  rope: (n, dys, _needs, e) => [e.emit('rope_bwd', [only(n, dys)], n.attrs, [d(n.inputs[0])])[0]],

  attention: (n, dys, _needs, e) => {
    const [q, k, v] = n.inputs;
    const [o, lse] = n.outputs;
    if (dys[1] !== undefined) throw new Error(`autodiff: the log-sum-exp %${lse} of attention is used downstream; it has no gradient rule`);
    return e.emit('attention_bwd', [dys[0]!, q, k, v, o, lse], n.attrs, [d(q), d(k), d(v)]);
  },

  swiglu: (n, dys, _needs, e) => {
    const [g, u] = n.inputs;
    return e.emit('swiglu_bwd', [only(n, dys), g, u], {}, [d(g), d(u)]);
  },

  gelu: (n, dys, _needs, e) => [e.emit('gelu_bwd', [only(n, dys), n.inputs[0]], {}, [d(n.inputs[0])])[0]],

  // the same gradient flows to both summands
  add: (n, dys, needs) => [needs[0] ? only(n, dys) : undefined, needs[1] ? only(n, dys) : undefined],

  cross_entropy: (n, dys, needs, e) => {
    const [logits, labels] = n.inputs;
    if (!needs[0]) return [undefined, undefined];
    return [e.emit('cross_entropy_bwd', [only(n, dys), logits, labels], {}, [d(logits)])[0], undefined];
  },
};
