// One Llama-3-8B attention layer as DeepSpeed's FPDT layer computes it (_FPDTGPUOffloadingAttentionImpl_,
// the function ../../../../shared/bench/ds_fpdt/bench_fpdt.py times): q, k, v projections with bias
// (the bench passes a zero bias and gets its gradient), RoPE theta 500000 without scaling, causal GQA
// attention; no norm before it, no output projection and no residual after it, which DeepSpeed's
// function leaves to its caller. Hidden 4096, 32 query heads, 8 kv heads, head dim 128. The model
// around the layer (embedding, final norm, LM head, loss) has a vocabulary of 1024 so that it costs
// little beside the layer. Built and run by test/gpu/ds.
import { attention, crossEntropy, defineModel, embedding, linear, rmsnorm, rope, view, type LayerScope, type ModelScope, type Tensor } from '../../../compiler/dsl/index.js';

// The hidden size is spelled Hq*Dh (= D = 4096 here) so that the attention output, taken without an
// output projection, has the type of the layer's input, as a repeated layer must.
const H = 'Hq*Dh';

const projection = (x: Tensor, l: LayerScope, name: string, out: string): Tensor =>
  linear(x, l.param(name, [out, H]), l.param(`${name}_bias`, [out], { init: { kind: 'zeros' } }), name);

function fpdtAttention(x: Tensor, l: LayerScope): Tensor {
  const rot = { theta: 500000 };
  const q = rope(view(projection(x, l, 'q_proj', 'Hq*Dh'), ['S', 'Hq', 'Dh'], 'q_heads'), rot, 'q_rot');
  const k = rope(view(projection(x, l, 'k_proj', 'Hkv*Dh'), ['S', 'Hkv', 'Dh'], 'k_heads'), rot, 'k_rot');
  const v = view(projection(x, l, 'v_proj', 'Hkv*Dh'), ['S', 'Hkv', 'Dh'], 'v_heads');
  return view(attention(q, k, v), ['S', H], 'attn_flat');
}

export default defineModel({
  name: 'ds-attn8b',
  // F: the kernels are specialized to an ffn size even where no MLP uses them
  sizes: { V: 1024, D: 4096, L: 1, Hq: 32, Hkv: 8, Dh: 128, F: 14336 },
  train: { seq: '128K', sp: 1, chunk: '64K', offload: true, zero: 3, checkpoint: 'host', device: 'h200' },
  forward: (m: ModelScope) => {
    const h = m.layers('L', embedding(m.tokens, m.param('embed_tokens', ['V', H])), fpdtAttention);
    const normed = rmsnorm(h, m.param('norm', [H], { init: { kind: 'ones' } }), 1e-5, 'final_norm');
    return crossEntropy(linear(normed, m.param('lm_head', ['V', H]), undefined, 'logits'), m.labels);
  },
});
