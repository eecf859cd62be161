// Reusable transformer blocks built from the primitive ops. They use the standard size
// names: D (hidden), Hq, Hkv (query and kv heads), Dh (head dim), F (ffn), V (vocab).
import type { LayerScope, Tensor } from './builder.js';
import { add, attention, gelu, layernorm, linear, rmsnorm, rope, swiglu, view, type RopeScaling } from './ops.js';

const hf = (s: string) => ({ name: `model.layers.{i}.${s}` });

export interface AttentionOptions {
  ropeTheta: number;
  /** fraction of the head dim that rotates; default 1 */
  rotaryFraction?: number;
  /** RoPE frequency scaling (Llama 3.1 and later); none by default */
  ropeScaling?: RopeScaling;
}

/** Llama self-attention: q/k/v/o projections without bias, RoPE, causal GQA attention. */
export function llamaAttention(x: Tensor, l: LayerScope, o: AttentionOptions): Tensor {
  const wq = l.param('q_proj', ['Hq*Dh', 'D'], hf('self_attn.q_proj.weight'));
  const wk = l.param('k_proj', ['Hkv*Dh', 'D'], hf('self_attn.k_proj.weight'));
  const wv = l.param('v_proj', ['Hkv*Dh', 'D'], hf('self_attn.v_proj.weight'));
  const wo = l.param('o_proj', ['D', 'Hq*Dh'], hf('self_attn.o_proj.weight'));
  return attentionCore(x, [wq, wk, wv, wo], [], o);
}

/** GPT self-attention: projections with bias, partial rotary, causal attention. */
export function gptAttention(x: Tensor, l: LayerScope, o: AttentionOptions): Tensor {
  const names = ['q_proj', 'k_proj', 'v_proj'] as const;
  const w = names.map((n) => l.param(n, [n === 'q_proj' ? 'Hq*Dh' : 'Hkv*Dh', 'D'], hf(`self_attn.${n}.weight`)));
  const bias = names.map((n) => l.param(`${n}_bias`, [n === 'q_proj' ? 'Hq*Dh' : 'Hkv*Dh'], { ...hf(`self_attn.${n}.bias`), init: { kind: 'zeros' } }));
  const wo = l.param('o_proj', ['D', 'Hq*Dh'], hf('self_attn.o_proj.weight'));
  const bo = l.param('o_proj_bias', ['D'], { ...hf('self_attn.o_proj.bias'), init: { kind: 'zeros' } });
  return attentionCore(x, [...w, wo], [...bias, bo], o);
}

function attentionCore(x: Tensor, [wq, wk, wv, wo]: Tensor[], biases: Tensor[], o: AttentionOptions): Tensor {
  const [bq, bk, bv, bo] = biases;
  const rot = { theta: o.ropeTheta, fraction: o.rotaryFraction ?? 1, scaling: o.ropeScaling };
  const q = rope(view(linear(x, wq, bq, 'q'), ['S', 'Hq', 'Dh'], 'q_heads'), rot, 'q_rot');
  const k = rope(view(linear(x, wk, bk, 'k'), ['S', 'Hkv', 'Dh'], 'k_heads'), rot, 'k_rot');
  const v = view(linear(x, wv, bv, 'v'), ['S', 'Hkv', 'Dh'], 'v_heads');
  const a = view(attention(q, k, v), ['S', 'Hq*Dh'], 'attn_flat');
  return linear(a, wo, bo, 'attn_out');
}

/** Llama MLP: down(silu(gate(x)) * up(x)). */
export function swigluMlp(x: Tensor, l: LayerScope): Tensor {
  const wg = l.param('gate_proj', ['F', 'D'], hf('mlp.gate_proj.weight'));
  const wu = l.param('up_proj', ['F', 'D'], hf('mlp.up_proj.weight'));
  const wd = l.param('down_proj', ['D', 'F'], hf('mlp.down_proj.weight'));
  return linear(swiglu(linear(x, wg, undefined, 'gate'), linear(x, wu, undefined, 'up')), wd, undefined, 'mlp_out');
}

/** GPT MLP: fc2(gelu(fc1(x))), with biases. */
export function geluMlp(x: Tensor, l: LayerScope): Tensor {
  const w1 = l.param('fc1', ['F', 'D'], hf('mlp.fc1.weight'));
  const b1 = l.param('fc1_bias', ['F'], { ...hf('mlp.fc1.bias'), init: { kind: 'zeros' } });
  const w2 = l.param('fc2', ['D', 'F'], hf('mlp.fc2.weight'));
  const b2 = l.param('fc2_bias', ['D'], { ...hf('mlp.fc2.bias'), init: { kind: 'zeros' } });
  return linear(gelu(linear(x, w1, b1, 'fc1')), w2, b2, 'mlp_out');
}

/** Pre-norm Llama decoder layer (RMSNorm, attention, RMSNorm, SwiGLU MLP). */
export function llamaLayer(x: Tensor, l: LayerScope, o: AttentionOptions & { eps?: number }): Tensor {
  const n1 = l.param('input_layernorm', ['D'], { name: 'model.layers.{i}.input_layernorm.weight', init: { kind: 'ones' } });
  const n2 = l.param('post_attention_layernorm', ['D'], { name: 'model.layers.{i}.post_attention_layernorm.weight', init: { kind: 'ones' } });
  const h = add(x, llamaAttention(rmsnorm(x, n1, o.eps, 'attn_in'), l, o), 'h_attn');
  return add(h, swigluMlp(rmsnorm(h, n2, o.eps, 'mlp_in'), l), 'h_mlp');
}

/** Pre-norm GPT decoder layer (LayerNorm, attention with partial rotary, LayerNorm, GeLU MLP). */
export function gptLayer(x: Tensor, l: LayerScope, o: AttentionOptions & { eps?: number }): Tensor {
  const lnParams = (n: string) => [
    l.param(n, ['D'], { name: `model.layers.{i}.${n}.weight`, init: { kind: 'ones' } }),
    l.param(`${n}_bias`, ['D'], { name: `model.layers.{i}.${n}.bias`, init: { kind: 'zeros' } }),
  ];
  const [w1, b1] = lnParams('input_layernorm');
  const [w2, b2] = lnParams('post_attention_layernorm');
  const h = add(x, gptAttention(layernorm(x, w1, b1, o.eps, 'attn_in'), l, o), 'h_attn');
  return add(h, geluMlp(layernorm(h, w2, b2, o.eps, 'mlp_in'), l), 'h_mlp');
}
