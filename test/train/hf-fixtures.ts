// Small models and configs for the Hugging Face folder tests: a model's compiled graph,
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
import { modelFacts, type ModelFacts } from '../../compiler/train/hf-config.js';
import { architectureOf, type GraphShape } from '../../compiler/schedule/architecture.js';
import tinyLlama from '../../models/tiny-llama.js';

/** The model as `fpdtc compile` makes it: the graph after the passes, its schedule and memory plan. */
function compiledOf(m: Model) {
  const config = resolveConfig(m.def.train ?? {}, {});
  const graph = runGraphPasses(m.build(config), graphPasses(config));
  const st = runScheduleStages(graph, { until: 'plan' });
  return { graph, schedule: st.schedule!, plan: st.plan! };
}

/** The compiled graph in its graph.json form, its sizes and the schedule's parameter names. */
export function docOf(m: Model): { sizes: Record<string, number>; doc: GraphShape; names: string[] } {
  const { graph, schedule } = compiledOf(m);
  return { sizes: { ...schedule.sizes }, doc: graphToJson(graph), names: schedule.params!.tensors.map((t) => t.name) };
}

/** What `fpdtc run` reads about the model from the schedule.json that `fpdtc compile` writes. */
export function factsOf(m: Model): ModelFacts {
  const { sizes, doc, names } = docOf(m);
  return modelFacts(m.name, sizes, architectureOf(doc), names);
}

/** The program's parameter table (names per layer, whole shapes), as the addon lists it. */
export function paramsOf(m: Model): { name: string; shape: number[] }[] {
  return hostParams(compiledOf(m).schedule).map((p) => ({ name: p.name, shape: [...p.shape] }));
}

/** An out dir with the schedule.json that `fpdtc run` reads the model from. */
export function writeOutDir(dir: string, m: Model): string {
  const { graph, schedule, plan } = compiledOf(m);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'schedule.json'), stringifySchedule(schedule, plan, architectureOf(graph)));
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
