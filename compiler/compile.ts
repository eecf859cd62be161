// `compile`: model file -> verified graph -> out/<model>/{graph.txt, graph.json, report.json}.
// The library function behind `fpdtc compile`; the CLI only parses flags and prints.
import { join, resolve } from 'node:path';
import { rmSync } from 'node:fs';
import { writeFileAtomic } from './atomic-write.js';
import { resolveConfig, type TrainDefaults } from './config.js';
import { errors } from './errors.js';
import { buildGraph, loadModel, validateConfig } from './frontend/index.js';
import { printGraphJson } from './ir/json.js';
import { printGraph } from './ir/printer.js';
import type { Graph } from './ir/types.js';
import { graphPasses } from './passes/index.js';
import { PassError, runGraphPasses, type GraphPass } from './passes/pipeline.js';
import { buildReport, type Report } from './report.js';
import { offloadComparison, planGraph, searchChunk, type Planned } from './plan.js';
import { writeScheduleOutputs } from './schedule/export-files.js';

/** Flags that override the model's default run. */
export type ConfigOverrides = TrainDefaults & { hostMemGiB?: number };

export interface CompileOptions {
  /** output root; the model's files go to <outDir>/<model name>/ (default: out) */
  outDir?: string;
  /** pass names (or 'all', 'input') whose output IR is written to passes/NNN_<pass>.txt */
  dumpAfter?: readonly string[];
  /** pass names not to run */
  skip?: readonly string[];
  /** default true; false computes everything and writes nothing */
  write?: boolean;
  /** default true; the type-check verdict is cached under <outDir>/.cache */
  typeCheck?: boolean;
}

export interface CompileResult {
  readonly graph: Graph;
  readonly report: Report;
  /** absolute paths of every file written, in write order */
  readonly files: readonly string[];
  /** absolute path of the model file */
  readonly modelPath: string;
  /** absolute path of <outDir>/<model name> */
  readonly modelOutDir: string;
  /** the schedule, its memory plan and timeline (absent when passes were skipped) */
  readonly planned?: Planned;
}

interface Dump {
  index: number;
  pass: string;
  text: string;
}

export async function compile(modelPathOrName: string, overrides: ConfigOverrides = {}, opts: CompileOptions = {}): Promise<CompileResult> {
  const outRoot = resolve(opts.outDir ?? 'out');
  const { model, path } = await loadModel(modelPathOrName, { cacheDir: join(outRoot, '.cache', 'typecheck'), typeCheck: opts.typeCheck });
  const config = resolveConfig(model.def.train ?? {}, overrides);
  validateConfig(config, model.def.sizes);
  const passes = graphPasses(config);
  checkPassNames(passes, opts);

  const build = (c: typeof config) => buildGraph(model, c, path);
  let chosen = config;
  if (config.chunk === 'auto' && config.fpdt && !opts.skip?.length) chosen = { ...config, chunk: searchChunk(build, config).graph.config.chunk };
  const dumps: Dump[] = [];
  let graph: Graph;
  try {
    graph = runGraphPasses(build(chosen), passes, {
      dumpAfter: opts.dumpAfter,
      skip: opts.skip,
      dump: (index, pass, text) => dumps.push({ index, pass, text }),
    });
  } catch (e) {
    if (e instanceof PassError) {
      const out = errors.internal(e.pass, e.cause.message);
      out.cause = e;
      throw out;
    }
    throw e;
  }
  const ran = passes.filter((p) => !opts.skip?.includes(p.name)).map((p) => p.name);
  // A pipeline with passes skipped stops at the graph: there is no schedule to plan.
  const planned = opts.skip?.length ? undefined : planGraph(graph);
  const extras = planned ? scheduleReport(planned, offloadComparison(build, graph.config)) : {};
  const report = buildReport(graph, { passes: planned ? [...ran, 'lower'] : ran, ...(opts.skip?.length ? { skipped: [...opts.skip] } : {}), ...extras });

  const modelOutDir = join(outRoot, safeName(graph.name));
  const files = opts.write === false ? [] : writeOutputs(modelOutDir, graph, report, dumps, opts.dumpAfter !== undefined);
  if (planned && opts.write !== false) files.push(...writeScheduleOutputs(modelOutDir, { schedule: planned.schedule, plan: planned.summary.plan, timeline: planned.summary.full }));
  if (planned && !planned.summary.memory.fits) {
    const err = errors.doesNotFit(graph.name, planned.summary.memory.advice);
    (err as { result?: unknown }).result = { graph, report, files, modelPath: path, modelOutDir };
    throw err;
  }
  return { graph, report, files, modelPath: path, modelOutDir, ...(planned ? { planned } : {}) };
}

/** report.json's fields about the schedule, memory plan and predicted step. */
function scheduleReport(p: Planned, attention: ReturnType<typeof offloadComparison>): Record<string, unknown> {
  const { memory: m, timeline: t } = p.summary;
  const rank = (r: number) => ({
    rank: r,
    gpu_bytes: m.gpu.need,
    host_bytes: m.host.size,
    gpu: m.gpu.breakdown,
    host: m.host.breakdown,
  });
  return {
    chunk: p.schedule.chunk,
    chunks: p.schedule.chunks,
    // layers whose attention is kept in host memory for backward, skipping its recompute
    kept_attention_layers: p.schedule.keptLayers ?? 0,
    device: p.device.name,
    fits: m.fits,
    ...(m.fits ? {} : { advice: m.advice }),
    // the arena plus what the collectives take beside it (scratch, NCCL's buffers)
    peak_gpu_bytes: m.gpu.need,
    peak_host_bytes: m.host.size,
    gpu_budget_bytes: m.gpu.budget,
    host_budget_bytes: m.host.budget,
    // Every rank runs the same program on the same shapes, so each plans to the same bytes.
    ranks: Array.from({ length: p.schedule.world }, (_, r) => rank(r)),
    predicted_step_s: t.stepSeconds,
    mfu: t.mfu,
    exposed_copy_s: t.exposedCopySeconds,
    exposed_comm_s: t.exposedCommSeconds,
    attention_working_set: {
      offload_on: { gpu_bytes: attention.on.gpu, host_bytes: attention.on.host },
      offload_off: { gpu_bytes: attention.off.gpu, host_bytes: attention.off.host },
    },
    timeline: t,
    memory: m,
  };
}

function checkPassNames(passes: readonly GraphPass[], opts: CompileOptions): void {
  const known = passes.map((p) => p.name);
  const check = (flag: string, names: readonly string[] | undefined, extra: string[]) => {
    for (const n of names ?? []) if (!known.includes(n) && !extra.includes(n)) throw errors.unknownPass(flag, n, [...extra, ...known]);
  };
  check('dump-after', opts.dumpAfter, ['all', 'input']);
  check('skip', opts.skip, []);
}

// Each file is written beside its target and renamed into place, so an interrupted or
// failed compile leaves the previous outputs whole.
function writeOutputs(dir: string, graph: Graph, report: Report, dumps: readonly Dump[], dumping: boolean): string[] {
  const files: string[] = [];
  const put = (name: string, text: string) => {
    const path = join(dir, name);
    try {
      writeFileAtomic(path, text);
    } catch (e) {
      throw errors.cannotWrite(path, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
    }
    files.push(path);
  };
  put('graph.txt', printGraph(graph));
  put('graph.json', printGraphJson(graph));
  put('report.json', JSON.stringify(report, null, 2) + '\n');
  // Dumps from an earlier compile would mix with these ones; start the folder afresh.
  if (dumping) rmSync(join(dir, 'passes'), { recursive: true, force: true });
  for (const d of dumps) put(join('passes', `${String(d.index).padStart(3, '0')}_${d.pass}.txt`), d.text);
  return files;
}

/** A model name as a folder name: no separators or odd characters. */
const safeName = (name: string) => name.replace(/[^\w.-]+/g, '_') || 'model';
