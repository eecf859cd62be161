// Builds schedules of the shipped models for tests, the way `compile` does.
import { resolveConfig, type TrainDefaults } from '../../compiler/config.js';
import type { Model } from '../../compiler/dsl/index.js';
import { runScheduleStages } from '../../compiler/lower/pipeline.js';
import { graphPasses } from '../../compiler/passes/index.js';
import { runGraphPasses } from '../../compiler/passes/pipeline.js';
import type { Schedule } from '../../compiler/schedule/types.js';
import gpt67 from '../../models/gpt6.7b.js';
import llama1b from '../../models/llama1b.js';
import llama70b from '../../models/llama70b.js';
import llama8b from '../../models/llama8b.js';
import tinyGpt from '../../models/tiny-gpt.js';
import tinyLlama from '../../models/tiny-llama.js';

export const MODELS: Record<string, Model> = { 'tiny-llama': tinyLlama, 'tiny-gpt': tinyGpt, llama1b, llama8b, llama70b, 'gpt6.7b': gpt67 };

export function graphOf(name: string, over: TrainDefaults & { hostMemGiB?: number } = {}) {
  return graphOfModel(MODELS[name], over);
}

export function graphOfModel(m: Model, over: TrainDefaults & { hostMemGiB?: number } = {}) {
  const cfg = resolveConfig(m.def.train ?? {}, over);
  return runGraphPasses(m.build(cfg), graphPasses(cfg));
}

/** The schedule after the lower and sync stages, as compile makes it. */
export const syncedSchedule = (g: ReturnType<typeof graphOf>): Schedule => runScheduleStages(g, { until: 'sync' }).schedule!;

export function scheduleOf(name: string, over: TrainDefaults & { hostMemGiB?: number } = {}): Schedule {
  return syncedSchedule(graphOf(name, over));
}
