// Lowering: the chunked, sharded, placed graph becomes one rank's schedule.
import type { Graph } from '../ir/types.js';
import { lowerStep } from '../lower/step.js';
import { syncStreams } from '../schedule/sync.js';
import type { Schedule } from '../schedule/types.js';

export const lower = {
  name: 'lower',
  run(g: Graph): Schedule {
    return syncStreams(lowerStep(g));
  },
};
