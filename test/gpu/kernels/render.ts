// Writes the rendered kernels for the check specs, so the GPU machine needs no Node:
//   npx tsx test/gpu/kernels/render.ts [outDir]   (default .carry/kernels)
// Layout: <outDir>/<spec>/*.cu plus <outDir>/<spec>/spec.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderKernels } from '../../../compiler/codegen/kernels.js';
import { gptSpec, llamaSpec } from './specs.js';

const outDir = process.argv[2] ?? '.carry/kernels';
const variants = [
  { suffix: '_w8', tiling: { warps: 8, bc: 64, bwdBq: 32 } as const },
  { suffix: '_b128', tiling: { warps: 4, bc: 128, bwdBq: 32 } as const },
  { suffix: '_b32', tiling: { warps: 4, bc: 32, bwdBq: 32 } as const },
];
for (const [name, spec] of [['llama', llamaSpec], ['gpt', gptSpec]] as const) {
  const dir = join(outDir, name);
  mkdirSync(dir, { recursive: true });
  const files = renderKernels(spec, { forwardVariants: name === 'llama' ? variants : [] });
  for (const f of files) writeFileSync(join(dir, f.file), f.text);
  writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec, null, 2) + '\n');
  console.log(`${dir}: ${files.map((f) => f.file).join(' ')}`);
}
