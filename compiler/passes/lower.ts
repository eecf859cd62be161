// Lowering: the chunked, sharded, placed graph becomes one rank's schedule. Memory is planned
// before streams are synchronized, so that the sync pass also orders a buffer's first write
// after the last accesses of the buffers whose bytes it reuses.
import type { Graph } from '../ir/types.js';
import { lowerStep } from '../lower/step.js';
import { deviceProfile } from '../schedule/devices.js';
import { planMemory, sharedBytes } from '../schedule/memory.js';
import { syncStreams } from '../schedule/sync.js';
import type { Schedule } from '../schedule/types.js';

export const lower = {
  name: 'lower',
  run(g: Graph): Schedule {
    const s = lowerStep(g);
    const plan = planMemory(s, deviceProfile(g.config.device, { hostMemGiB: g.config.hostMemGiB }));
    return syncStreams(s, sharedBytes(plan));
  },
};
