// Weights in safetensors under the program's parameter names, which are the Hugging Face Llama
// names (model.layers.N.self_attn.q_proj.weight, ...), so real checkpoints load as they are.
// Under ZeRO-3 each rank reads only its shard of each tensor; saving gathers the shards to one
// writer (rank 0 when each rank is its own process).
import { SafetensorsReader, writeSafetensors } from '../../runtime/safetensors.js';
import { UserError } from '../errors.js';
import type { DistEnv } from '../../runtime/dist-env.js';
import { gatherToRank0 } from '../../runtime/gather.js';
import type { RankSet } from './ranks.js';
import { packShards, unpackShards, type ShardKind } from './shards.js';

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
export async function saveTensors(ranks: RankSet, path: string, what: ShardKind): Promise<void> {
  if (!ranks.holdsEveryShard()) throw new Error(`saveTensors: this process holds ${ranks.programs.length} of ${ranks.world} ranks; use saveGathered`);
  const tensors = ranks.params().map((p) => ({ name: p.name, dtype: 'F32' as const, shape: p.shape, data: ranks.gather(p.index, what) }));
  await writeSafetensors(path, tensors);
}

/**
 * Writes the weights and/or gradients of every rank to one file each. With one process per rank
 * (NCCL), every rank sends its shards to rank 0, which writes; returns whether this process wrote.
 */
export async function saveGathered(ranks: RankSet, dist: DistEnv | undefined, files: Partial<Record<ShardKind, string>>): Promise<boolean> {
  const kinds = (['params', 'grads'] as const).filter((k) => files[k]);
  if (kinds.length === 0) return false;
  if (ranks.holdsEveryShard()) {
    for (const k of kinds) await saveTensors(ranks, files[k]!, k);
    return true;
  }
  if (!dist) throw new Error('saveGathered: a process holding some of the ranks needs its launcher environment');
  const all = await gatherToRank0(dist, packShards(ranks, kinds));
  if (!all) return false;
  const params = ranks.params();
  const whole = unpackShards(all, params.map((p) => p.shape.reduce((a, b) => a * b, 1)));
  for (const k of kinds) {
    const data = whole.get(k)!;
    await writeSafetensors(files[k]!, params.map((p, i) => ({ name: p.name, dtype: 'F32' as const, shape: p.shape, data: data[i] })));
  }
  return true;
}
