// The graph passes in pipeline order. Lowering to the schedule follows them.
import type { TrainConfig } from '../ir/types.js';
import type { GraphPass } from './pipeline.js';
import { autodiff } from './autodiff.js';
import { shapes } from './shapes.js';

export function graphPasses(_config: TrainConfig): GraphPass[] {
  return [shapes, autodiff];
}
