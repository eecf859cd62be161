// Renders the memory-bound kernels that test/bench/elementwise.py times, so the GPU machine needs no Node:
//   npx tsx test/bench/render-elementwise.ts [outDir]   (default .carry/kernels-ew)
// Layout: <outDir>/<spec>/*.cu (element-wise, RoPE at offsets and at positions, the MLP activation, the
// norm and the cross-entropy; no attention, so the GPU machine builds them in seconds) plus spec.json. Specs: llama1b's sizes
// (hidden 2048, ffn 8192, 32 q over 8 kv heads of 64), the same at head dim 128, and a GeLU/LayerNorm
// block at those sizes with partial rotary (32 of 64 dims: RoPE's pass-through copy).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderKernels, type KernelSpec } from '../../compiler/codegen/kernels.js';

const outDir = process.argv[2] ?? '.carry/kernels-ew';
const FILES = ['elementwise.cu', 'rope.cu', 'rope_pos.cu', 'mlp_swiglu.cu', 'mlp_gelu.cu', 'norm_rms.cu', 'norm_layer.cu', 'loss.cu'];
const l1b: KernelSpec = {
  headDim: 64, hidden: 2048, kvHeads: 8, qHeads: 32, ffn: 8192, vocab: 128256, rotaryDim: 64, ropeTheta: 500000,
  ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
  norm: 'rms', mlp: 'swiglu', eps: 1e-5, target: 'sm90a', packed: true,
};
const specs: Record<string, KernelSpec> = {
  l1b,
  l1b_d128: { ...l1b, headDim: 128, rotaryDim: 128 },
  gelu: { ...l1b, rotaryDim: 32, ropeTheta: 10000, ropeScaling: undefined, norm: 'layer', mlp: 'gelu' },
};
for (const [name, spec] of Object.entries(specs)) {
  const dir = join(outDir, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const files = renderKernels(spec).filter((f) => FILES.includes(f.file));
  for (const f of files) writeFileSync(join(dir, f.file), f.text);
  writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec, null, 2) + '\n');
  console.log(`${dir}: ${files.map((f) => f.file).join(' ')}`);
}
