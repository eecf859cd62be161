// Lowering: the chunked, sharded, placed graph becomes one rank's schedule. The planner first
// decides how many layers keep their attention for backward (lower/keep.ts); memory is planned
// before streams are synchronized, so that the sync pass also orders a buffer's first write
// after the last accesses of the buffers whose bytes it reuses.
import type { Graph } from '../ir/types.js';
import { chooseKeptLayers } from '../lower/keep.js';
import { deviceProfile } from '../schedule/devices.js';
import { sharedBytes } from '../schedule/memory.js';
import { syncStreams } from '../schedule/sync.js';
import type { Schedule } from '../schedule/types.js';

export const lower = {
  name: 'lower',
  run(g: Graph): Schedule {
    const { schedule, plan } = chooseKeptLayers(g, deviceProfile(g.config.device, { hostMemGiB: g.config.hostMemGiB }));
    return syncStreams(schedule, sharedBytes(plan));
  },
};
