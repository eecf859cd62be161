// The two model shapes the kernel checks render: a Llama-3-8B-like block (GQA, RMSNorm, SwiGLU,
// full rotary) and a GPT-like block (LayerNorm, GeLU, head dim 64, partial rotary, odd vocab).
import type { KernelSpec } from '../../../compiler/codegen/kernels.js';

export const llamaSpec: KernelSpec = {
  headDim: 128, hidden: 4096, kvHeads: 8, qHeads: 32, ffn: 14336, vocab: 128256,
  rotaryDim: 128, ropeTheta: 500000, norm: 'rms', mlp: 'swiglu', eps: 1e-5,
};

export const gptSpec: KernelSpec = {
  headDim: 64, hidden: 1536, kvHeads: 12, qHeads: 24, ffn: 6144, vocab: 50257,
  rotaryDim: 32, ropeTheta: 10000, norm: 'layer', mlp: 'gelu', eps: 1e-5,
};
