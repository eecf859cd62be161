// The decoder-only language model around a repeated layer: embedding, layers, final
// norm, LM head (optionally tied to the embedding), next-token cross-entropy.
import type { LayerScope, Tensor } from './builder.js';
import type { ModelScope } from './model.js';
import { crossEntropy, embedding, layernorm, linear, rmsnorm } from './ops.js';

export interface CausalLMOptions {
  layer: (x: Tensor, l: LayerScope) => Tensor;
  norm: 'rms' | 'layer';
  tiedEmbeddings?: boolean;
  eps?: number;
}

export function causalLM(m: ModelScope, o: CausalLMOptions): Tensor {
  const embed = m.param('embed_tokens', ['V', 'D'], { name: 'model.embed_tokens.weight' });
  const h = m.layers('L', embedding(m.tokens, embed), o.layer);
  const w = m.param('norm', ['D'], { name: 'model.norm.weight', init: { kind: 'ones' } });
  const normed =
    o.norm === 'rms'
      ? rmsnorm(h, w, o.eps, 'final_norm')
      : layernorm(h, w, m.param('norm_bias', ['D'], { name: 'model.norm.bias', init: { kind: 'zeros' } }), o.eps, 'final_norm');
  const head = o.tiedEmbeddings ? embed : m.param('lm_head', ['V', 'D'], { name: 'lm_head.weight' });
  return crossEntropy(linear(normed, head, undefined, 'logits'), m.labels);
}
