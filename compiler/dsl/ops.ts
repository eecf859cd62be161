// The primitive ops of the DSL. Each adds one node to the graph of its inputs.
import { errors } from '../errors.js';
import type { DimLike } from '../ir/dim.js';
import { Dim } from '../ir/dim.js';
import { ropeScalingProblem } from '../ir/ops.js';
import type { RopeScaling } from '../ir/types.js';
import { callerLocation, type Tensor } from './builder.js';

const b = (x: Tensor) => x.owner;

export function embedding(tokens: Tensor, table: Tensor): Tensor {
  return b(table).emit('embedding', [tokens, table], {}, 'emb')[0];
}

/** y = x W^T (+ bias); W is [out, in] as in PyTorch and Hugging Face checkpoints. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, hint = 'lin'): Tensor {
  return b(x).emit('linear', bias ? [x, weight, bias] : [x, weight], {}, hint)[0];
}

export function rmsnorm(x: Tensor, weight: Tensor, eps = 1e-5, hint = 'norm'): Tensor {
  return b(x).emit('rmsnorm', [x, weight], { eps }, hint)[0];
}

export function layernorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5, hint = 'norm'): Tensor {
  return b(x).emit('layernorm', [x, weight, bias], { eps }, hint)[0];
}

/** Same elements, new shape: `view(x, ['S', 'Hq', 'Dh'])`. */
export function view(x: Tensor, shape: readonly DimLike[], hint = 'view'): Tensor {
  return b(x).emit('view', [x], { shape: shape.map((d) => String(Dim.of(d))) }, hint)[0];
}

/**
 * Llama 3.1's RoPE frequency scaling (`rope_type: llama3` in a Hugging Face config), e.g.
 * `{ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 }`.
 */
export type { RopeScaling };

export interface RopeOptions {
  theta: number;
  /** fraction of the head dim that rotates (GPT-NeoX style partial rotary), default 1 */
  fraction?: number;
  /** frequency scaling for contexts longer than the model was first trained on; none by default */
  scaling?: RopeScaling;
}

/** Rotary position embedding on [tokens, heads, head_dim], rotate-half convention. */
export function rope(x: Tensor, opts: RopeOptions, hint = 'rope'): Tensor {
  const headDim = x.shape[2]?.eval(x.owner.sizes) ?? 0;
  const rotaryDim = Math.round(headDim * (opts.fraction ?? 1));
  const s = opts.scaling;
  const problem = ropeScalingProblem(s);
  if (problem) throw errors.ropeScaling(callerLocation(), problem);
  // A copy with fixed keys: the graph owns it, and printed and JSON forms do not depend on
  // how the model file spelled the object. No attr at all without scaling.
  const scaling = s && { type: s.type, factor: s.factor, lowFreqFactor: s.lowFreqFactor, highFreqFactor: s.highFreqFactor, originalMaxPositions: s.originalMaxPositions };
  return b(x).emit('rope', [x], { theta: opts.theta, rotaryDim, ...(scaling ? { scaling } : {}) }, hint)[0];
}

/** Causal softmax attention; k and v may have fewer heads than q (GQA). */
export function attention(q: Tensor, k: Tensor, v: Tensor, hint = 'attn'): Tensor {
  return b(q).emit('attention', [q, k, v], { causal: true }, hint)[0];
}

export function swiglu(gate: Tensor, up: Tensor, hint = 'act'): Tensor {
  return b(gate).emit('swiglu', [gate, up], {}, hint)[0];
}

/** GeLU, tanh approximation. */
export function gelu(x: Tensor, hint = 'act'): Tensor {
  return b(x).emit('gelu', [x], {}, hint)[0];
}

export function add(a: Tensor, c: Tensor, hint = 'res'): Tensor {
  return b(a).emit('add', [a, c], {}, hint)[0];
}

/** Mean next-token cross-entropy over labels that are not -1. */
export function crossEntropy(logits: Tensor, labels: Tensor, hint = 'loss'): Tensor {
  return b(logits).emit('cross_entropy', [logits, labels], {}, hint)[0];
}
