// Small models and configs for the Hugging Face folder tests: a model's graph.json document,
// its facts, its parameter table, an out dir holding what `fpdtc run` reads, and the
// config.json that tiny-llama's weights fit.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostParams } from '../../compiler/codegen/host-params.js';
import { resolveConfig } from '../../compiler/config.js';
import { runScheduleStages } from '../../compiler/lower/pipeline.js';
import { graphPasses } from '../../compiler/passes/index.js';
import { runGraphPasses } from '../../compiler/passes/pipeline.js';
import { stringifySchedule } from '../../compiler/schedule/export-json.js';
import { causalLM, defineModel, llamaLayer, type Model } from '../../compiler/dsl/index.js';
import { graphToJson } from '../../compiler/ir/json.js';
import { modelFacts, type GraphDoc, type ModelFacts } from '../../compiler/train/hf-config.js';
import tinyLlama from '../../models/tiny-llama.js';

export function docOf(m: Model): { sizes: Record<string, number>; doc: GraphDoc } {
  const g = m.build(resolveConfig(m.def.train ?? {}, {}));
  return { sizes: g.sizes, doc: graphToJson(g) as unknown as GraphDoc };
}

export function factsOf(m: Model): ModelFacts {
  const { sizes, doc } = docOf(m);
  return modelFacts(m.name, sizes, doc);
}

/** The model's schedule (with its memory plan), as `fpdtc compile` makes it. */
function scheduleOf(m: Model) {
  const config = resolveConfig(m.def.train ?? {}, {});
  const st = runScheduleStages(runGraphPasses(m.build(config), graphPasses(config)), { until: 'plan' });
  return { schedule: st.schedule!, plan: st.plan! };
}

/** The program's parameter table (names per layer, whole shapes), as the addon lists it. */
export function paramsOf(m: Model): { name: string; shape: number[] }[] {
  return hostParams(scheduleOf(m).schedule).map((p) => ({ name: p.name, shape: [...p.shape] }));
}

/** An out dir with the schedule.json and graph.json that `fpdtc run` reads the model from. */
export function writeOutDir(dir: string, m: Model): string {
  const { doc } = docOf(m);
  const { schedule, plan } = scheduleOf(m);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'schedule.json'), stringifySchedule(schedule, plan));
  writeFileSync(join(dir, 'graph.json'), JSON.stringify(doc));
  return dir;
}

/** tiny-llama with its LM head tied to the embedding. */
export const tiedLlama = defineModel({
  name: 'tiny-tied',
  sizes: tinyLlama.def.sizes,
  train: tinyLlama.def.train,
  forward: (m) => causalLM(m, { norm: 'rms', tiedEmbeddings: true, layer: (x, l) => llamaLayer(x, l, { ropeTheta: 10000 }) }),
});

/** The config.json of a folder that tiny-llama's weights fit. */
export const tinyLlamaConfig = (): Record<string, unknown> => ({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 64,
  hidden_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 12,
  num_key_value_heads: 2,
  head_dim: 4,
  intermediate_size: 64,
  rope_theta: 10000.0,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
});
