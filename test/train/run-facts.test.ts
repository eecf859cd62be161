// `fpdtc run` reads the model from schedule.json alone: the model FLOPs it counts there (for MFU)
// are report.json's flops_per_step, for models with tied and untied heads and for every layer.
import { expect } from 'chai';
import { resolveConfig } from '../../compiler/config.js';
import { runScheduleStages } from '../../compiler/lower/pipeline.js';
import { graphPasses } from '../../compiler/passes/index.js';
import { runGraphPasses } from '../../compiler/passes/pipeline.js';
import { buildReport } from '../../compiler/report.js';
import { scheduleToJson } from '../../compiler/schedule/export-json.js';
import { scheduleFlopsPerStep } from '../../compiler/train/report.js';
import type { Model } from '../../compiler/dsl/index.js';
import tinyGpt from '../../models/tiny-gpt.js';
import tinyLlama from '../../models/tiny-llama.js';
import { tiedLlama } from './hf-fixtures.js';

describe('what run reads from schedule.json', () => {
  for (const m of [tinyLlama, tinyGpt, tiedLlama] as Model[]) {
    it(`counts ${m.name}'s model FLOPs as report.json does`, () => {
      const config = resolveConfig(m.def.train ?? {}, { sp: 2 });
      const graph = runGraphPasses(m.build(config), graphPasses(config));
      const schedule = runScheduleStages(graph, { until: 'plan' }).schedule!;
      expect(scheduleFlopsPerStep(scheduleToJson(schedule))).to.equal(buildReport(graph).flops_per_step);
    });
  }
});
