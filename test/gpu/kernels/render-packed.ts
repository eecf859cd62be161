// Writes the kernels of packed programs (document-masked attention, RoPE at given positions) for
// the check specs, so the GPU machine needs no Node:
//   npx tsx test/gpu/kernels/render-packed.ts [outDir]   (default .carry/kernels-packed)
// Layout: <outDir>/<spec>/{attention_fwd_docs,attention_bwd_docs,rope_pos,attention_util}.cu plus
// spec.json; check_packed.py builds and checks them.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderKernels } from '../../../compiler/codegen/kernels.js';
import { gptSpec, llamaSpec } from './specs.js';

const outDir = process.argv[2] ?? '.carry/kernels-packed';
// the packed files, and attention_util.cu for the accumulator init and delta the FPDT checks call
const FILES = ['attention_fwd_docs.cu', 'attention_fwd_docs_sm90.cu', 'attention_fwd_docs_mma.cu', 'attention_bwd_docs.cu', 'attention_bwd_docs_sm90.cu',
  'attention_bwd_docs_mma.cu', 'rope_pos.cu', 'attention_util.cu'];
// <spec>: the kernels of generic packed programs (mma.sync); <spec>-sm90: of sm_90a ones, the wgmma forward
// and backward taking document ids: fpdt_attn_{fwd,bwd}_docs are those kernels with their mma.sync fallbacks
const specs = [['llama', { ...llamaSpec, packed: true }], ['gpt', { ...gptSpec, packed: true }]] as const;
for (const [name, spec] of specs.flatMap(([n, s]) => [[n, s], [`${n}-sm90`, { ...s, target: 'sm90a' as const }]] as const)) {
  const dir = join(outDir, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const files = renderKernels(spec).filter((f) => FILES.includes(f.file));
  for (const f of files) writeFileSync(join(dir, f.file), f.text);
  writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec, null, 2) + '\n');
  console.log(`${dir}: ${files.map((f) => f.file).join(' ')}`);
}
