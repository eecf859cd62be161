// The graph passes in pipeline order. Lowering to the schedule follows them.
import type { TrainConfig } from '../ir/types.js';
import type { GraphPass } from './pipeline.js';
import { autodiff } from './autodiff.js';
import { checkpoint } from './checkpoint.js';
import { chunk } from './chunk.js';
import { offload } from './offload.js';
import { shapes } from './shapes.js';
import { shard } from './shard.js';

export function graphPasses(_config: TrainConfig): GraphPass[] {
  return [shapes, autodiff, shard, chunk, offload, checkpoint];
}
