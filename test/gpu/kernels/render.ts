// Writes the rendered kernels for the check specs, so the GPU machine needs no Node:
//   npx tsx test/gpu/kernels/render.ts [outDir]   (default .carry/kernels)
// Layout: <outDir>/<spec>/*.cu plus <outDir>/<spec>/spec.json.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderKernels, type AttentionTiling } from '../../../compiler/codegen/kernels.js';
import { gptSpec, llamaSpec } from './specs.js';

const outDir = process.argv[2] ?? '.carry/kernels';
// benchmark variants of the attention tiles (each also checked for correctness)
const variants: { suffix: string; tiling: AttentionTiling }[] = [
  { suffix: '_v1', tiling: { warps: 4, mw: 2, bc: 64, bwdWarps: 8, bwdBq: 64, bwdDq: 'atomic4' } },
  { suffix: '_v2', tiling: { warps: 8, mw: 2, bc: 64, bwdWarps: 8, bwdBq: 64, bwdDq: 'bulk' } },
  { suffix: '_v3', tiling: { warps: 8, mw: 2, bc: 32, bwdWarps: 4, bwdBq: 64, bwdDq: 'bulk' } },
];
// Both are rendered for sm_90a, so the wgmma forward is checked at head dims 128 (llama) and 64 (gpt):
// fpdt_attn_fwd is the wgmma kernel with its mma.sync fallback, and check_kernels.py also tests
// fpdt_attn_fwd_sm90 (no fallback) and fpdt_attn_fwd_mma
const sm90Llama = { ...llamaSpec, target: 'sm90a' as const };
const sm90Gpt = { ...gptSpec, target: 'sm90a' as const };
for (const [name, spec] of [['llama', sm90Llama], ['gpt', sm90Gpt]] as const) {
  const dir = join(outDir, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // and the wgmma forward with other K/V ring depths than the default (2 at head dim 128, 4 at 64); the
  // head-dim-64 backward with partial dQ tiles summed in shared memory (_dqpartial); the forward and backward with
  // full blocks with the heads fastest (_heads, the programs' until 2026-12-01); the backward's band swept (_band)
  const sm90StageVariants = name === 'llama' ? [3] : [2, 3];
  const files = renderKernels(spec, { attentionVariants: name === 'llama' ? variants : [], sm90StageVariants, sm90TwoConsumers: true, sm90UnrotatedBackward: true, sm90HeadsFastestAttention: true, sm90PartialDQBackward: true, sm90BandSweepBackward: true });
  for (const f of files) writeFileSync(join(dir, f.file), f.text);
  writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec, null, 2) + '\n');
  console.log(`${dir}: ${files.map((f) => f.file).join(' ')}`);
}
