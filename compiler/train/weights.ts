// Weights in safetensors under the program's parameter names, which are the Hugging Face Llama
// names (model.layers.N.self_attn.q_proj.weight, ...), so real checkpoints load as they are.
import { SafetensorsReader, writeSafetensors } from '../../runtime/safetensors.js';
import type { Program } from '../../runtime/load.js';
import { UserError } from '../errors.js';

/** Sets every parameter from the file (any float dtype; converted to fp32). */
export async function loadWeights(program: Program, path: string): Promise<number> {
  const reader = await SafetensorsReader.open(path);
  try {
    const have = new Set(reader.names());
    for (const p of program.params()) {
      if (!have.has(p.name)) throw new UserError(`${path}: no tensor '${p.name}' (the model needs ${program.params().length} tensors)`);
      const want = p.shape.reduce((a, b) => a * b, 1);
      const got = reader.entry(p.name).shape.reduce((a, b) => a * b, 1);
      if (got !== want) throw new UserError(`${path}: '${p.name}' has shape [${reader.entry(p.name).shape.join(', ')}], the model needs [${p.shape.join(', ')}]`);
      program.setParam(p.index, await reader.readF32(p.name));
    }
  } finally {
    await reader.close();
  }
  return program.params().length;
}

/** Writes every parameter (or its gradient from the last step) as fp32. */
export async function saveTensors(program: Program, path: string, what: 'params' | 'grads'): Promise<void> {
  const tensors = program.params().map((p) => ({
    name: p.name,
    dtype: 'F32' as const,
    shape: p.shape,
    data: what === 'params' ? program.getParam(p.index) : program.getGrad(p.index),
  }));
  await writeSafetensors(path, tensors);
}
