// `fpdtc run` reads the model from schedule.json alone: the model FLOPs it counts there (for MFU)
// are report.json's flops_per_step, for models with tied and untied heads and for every layer.
import { expect } from 'chai';
import { resolveConfig } from '../../compiler/config.js';
import { runScheduleStages } from '../../compiler/lower/pipeline.js';
import { graphPasses } from '../../compiler/passes/index.js';
import { runGraphPasses } from '../../compiler/passes/pipeline.js';
import { buildReport } from '../../compiler/report.js';
import { scheduleToJson } from '../../compiler/schedule/export-json.js';
import { packedFlopsPerWindow, scheduleFlopsPerStep } from '../../compiler/train/report.js';
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

describe('model FLOPs of a packed window', () => {
  const s = { params: { tensors: [{ len: 100, part: 'layers' }, { len: 10, part: 'global' }] }, layers: 2, sizes: { L: 2, D: 4 }, config: { seq: 8 } } as unknown as Parameters<typeof packedFlopsPerWindow>[0];
  const dense = 6 * 210 * 8; // 6 · params · tokens
  it('counts attention over each document apart', () => {
    // documents of 3, 4 and 1 tokens: 6 · L · D · (9 + 16 + 1)
    expect(packedFlopsPerWindow(s, [0, 0, 0, 1, 1, 1, 1, 2])).to.equal(dense + 6 * 2 * 4 * 26);
    // one document is the unpacked count
    expect(packedFlopsPerWindow(s, new Int32Array(8))).to.equal(scheduleFlopsPerStep(s));
  });
  it('splits dp groups at each window of seq tokens, whatever the ids', () => {
    // two windows of one document each (ids restart at 0 in each)
    expect(packedFlopsPerWindow(s, new Int32Array(16))).to.equal(2 * scheduleFlopsPerStep(s));
  });
});
