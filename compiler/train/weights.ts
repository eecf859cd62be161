// Weights in safetensors under the program's parameter names, which are the Hugging Face Llama
// names (model.layers.N.self_attn.q_proj.weight, ...), so real checkpoints load as they are.
// Under ZeRO-3 each rank reads only its shard of each tensor; saving gathers the shards.
import { SafetensorsReader, writeSafetensors } from '../../runtime/safetensors.js';
import { UserError } from '../errors.js';
import type { RankSet } from './ranks.js';

/** Sets every parameter from the file (any float dtype; converted to fp32). */
export async function loadWeights(ranks: RankSet, path: string): Promise<number> {
  const reader = await SafetensorsReader.open(path);
  const params = ranks.params();
  try {
    const have = new Set(reader.names());
    for (const p of params) {
      if (!have.has(p.name)) throw new UserError(`${path}: no tensor '${p.name}' (the model needs ${params.length} tensors)`);
      const want = p.shape.reduce((a, b) => a * b, 1);
      const got = reader.entry(p.name).shape.reduce((a, b) => a * b, 1);
      if (got !== want) throw new UserError(`${path}: '${p.name}' has shape [${reader.entry(p.name).shape.join(', ')}], the model needs [${p.shape.join(', ')}]`);
      await ranks.setParam(p.index, (offset, count) => reader.readF32(p.name, offset, count));
    }
  } finally {
    await reader.close();
  }
  return params.length;
}

/** Writes every parameter (or its gradient from the last step) as fp32, gathered over the ranks held here. */
export async function saveTensors(ranks: RankSet, path: string, what: 'params' | 'grads'): Promise<void> {
  if (!ranks.holdsEveryShard())
    throw new UserError(`saving ${what} of a ${ranks.world}-process NCCL run is not supported yet; use --ranks-per-gpu ${ranks.world} on one GPU to write them`);
  const tensors = ranks.params().map((p) => ({ name: p.name, dtype: 'F32' as const, shape: p.shape, data: ranks.gather(p.index, what) }));
  await writeSafetensors(path, tensors);
}
