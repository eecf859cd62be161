// `compile`: model file -> verified graph -> out/<model>/{graph.txt, graph.json, report.json, ...}.
// The library function behind `fpdtc compile`; the CLI only parses flags and prints.
// It reads as its list of stages, each timed (`--timings`): load, build, the graph passes
// (passes/), the schedule stages lower, sync, plan, hazards and simulate (lower/pipeline.ts),
// offload-compare, report, write. Every graph pass and schedule stage is verified after it
// runs and can be dumped by name (`--dump-after`).
// The outputs appear together or not at all: they are written into a hidden sibling folder
// that replaces out/<model> in one rename (see replaceOutputDir).
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { readBuildRecord } from '../runtime/build.js';
import { resolveConfig, type TrainDefaults } from './config.js';
import { errors } from './errors.js';
import { buildGraph, displayPath, loadModel, validateConfig } from './frontend/index.js';
import { printGraphJson } from './ir/json.js';
import { printGraph } from './ir/printer.js';
import type { Graph } from './ir/types.js';
import { dumpableStages } from './lower/pipeline.js';
import { graphPasses } from './passes/index.js';
import { PassError, runGraphPasses, type GraphPass } from './passes/pipeline.js';
import { buildReport, type Report } from './report.js';
import { offloadComparison, planGraph, resolveAutoChunk, type Planned } from './plan.js';
import { architectureOf } from './schedule/architecture.js';
import { attentionPricing } from './schedule/document-pricing.js';
import { scheduleOutputs } from './schedule/export-files.js';
import { scheduleHash } from './schedule/json.js';
import { StageTimer, type Timings } from './timings.js';

/** Flags that override the model's default run. */
export type ConfigOverrides = TrainDefaults & { hostMemGiB?: number };

export interface CompileOptions {
  /** output root; the model's files go to <outDir>/<model name>/ (default: out) */
  outDir?: string;
  /** pass or schedule stage names (or 'all', 'input') whose output is written to passes/NNN_<name>.txt */
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
  /** things people should know that are not errors (a previous build dropped), one line each */
  readonly notes: readonly string[];
  /** wall time of each stage, in the order they ran */
  readonly timings: Timings;
}

interface Dump {
  index: number;
  pass: string;
  text: string;
}

export async function compile(modelPathOrName: string, overrides: ConfigOverrides = {}, opts: CompileOptions = {}): Promise<CompileResult> {
  const timer = new StageTimer();
  const outRoot = resolve(opts.outDir ?? 'out');
  const { model, path } = await timer.timeAsync('load', () => loadModel(modelPathOrName, { cacheDir: join(outRoot, '.cache', 'typecheck'), typeCheck: opts.typeCheck }));
  checkModelName(model.name, path);
  const config = resolveConfig(model.def.train ?? {}, overrides);
  validateConfig(config, model.def.sizes);
  const passes = graphPasses(config);
  checkPassNames(passes, opts);
  const build = (c: typeof config) => buildGraph(model, c, path);
  const dumps: Dump[] = [];
  const dump = (index: number, pass: string, text: string) => dumps.push({ index, pass, text });
  // A pipeline with passes skipped stops at the graph: there is no schedule to plan.
  const scheduled = !opts.skip?.length;

  // --chunk auto: the policy's choice, planned with every pass whatever --skip says, so that
  // the chunk does not depend on what is dumped or skipped (and check checks the same one)
  const chosen = config.chunk === 'auto' ? timer.time('auto-chunk', () => resolveAutoChunk(build, config)) : config;
  const input = timer.time('build', () => build(chosen));
  const graph = runTimedPasses(input, passes, opts, dump, timer);
  const planned = scheduled ? planGraph(graph, { dumpAfter: opts.dumpAfter, dump, firstIndex: passes.length + 1, timer }) : undefined;
  const attention = planned && timer.time('offload-compare', () => offloadComparison(build, graph.config));
  const report = timer.time('report', () => compileReport(graph, passes, opts.skip, planned, attention));
  checkModelName(graph.name, path);
  const modelOutDir = join(outRoot, graph.name);
  const { files, notes } = opts.write === false ? { files: [], notes: [] } : timer.time('write', () => writeOutputs(outRoot, graph, report, dumps, planned));
  const timings = timer.done();

  if (planned && !planned.summary.memory.fits) {
    const err = errors.doesNotFit(graph.name, planned.summary.memory.advice);
    (err as { result?: unknown }).result = { graph, report, files, modelPath: path, modelOutDir, notes, timings };
    throw err;
  }
  return { graph, report, files, modelPath: path, modelOutDir, notes, timings, ...(planned ? { planned } : {}) };
}

/** The graph passes, one timing each: its run, its verification and its dump (passes/pipeline.ts). */
function runTimedPasses(input: Graph, passes: readonly GraphPass[], opts: CompileOptions, dump: (index: number, pass: string, text: string) => void, timer: StageTimer): Graph {
  // the pipeline verifies and dumps between runs: a pass's lap ends where the next one starts
  const mark = timer.laps('verify input', 'graph passes');
  const timed = passes.map((p) => ({ name: p.name, run: (g: Graph) => (mark(p.name), p.run(g)) }));
  // the schedule stages' dumps are theirs to write
  const dumpAfter = opts.dumpAfter?.filter((n) => !(dumpableStages as readonly string[]).includes(n));
  try {
    return runGraphPasses(input, timed, { dumpAfter, skip: opts.skip, dump });
  } catch (e) {
    if (e instanceof PassError) {
      const out = errors.internal(e.pass, e.cause.message);
      out.cause = e;
      throw out;
    }
    throw e;
  } finally {
    mark();
  }
}

function compileReport(graph: Graph, passes: readonly GraphPass[], skip: readonly string[] | undefined, planned: Planned | undefined, attention: ReturnType<typeof offloadComparison> | undefined): Report {
  const ran = passes.filter((p) => !skip?.includes(p.name)).map((p) => p.name);
  const extras = planned && attention ? scheduleReport(planned, attention) : {};
  return buildReport(graph, { passes: planned ? [...ran, 'lower'] : ran, ...(skip?.length ? { skipped: [...skip] } : {}), ...extras });
}

/** Renders every output and swaps them in for out/<model> at once (replaceOutputDir). */
function writeOutputs(outRoot: string, graph: Graph, report: Report, dumps: readonly Dump[], planned: Planned | undefined): { files: string[]; notes: string[] } {
  const outputs = [
    { name: 'graph.txt', text: printGraph(graph) },
    { name: 'graph.json', text: printGraphJson(graph) },
    { name: 'report.json', text: JSON.stringify(report, null, 2) + '\n' },
    ...dumps.map((d) => ({ name: join('passes', `${String(d.index).padStart(3, '0')}_${d.pass}.txt`), text: d.text })),
    ...(planned ? scheduleOutputs({ schedule: planned.schedule, plan: planned.summary.plan, timeline: planned.summary.full, architecture: architectureOf(graph) }) : []),
  ];
  const schedule = outputs.find((o) => o.name === 'schedule.json');
  return replaceOutputDir(outRoot, graph.name, outputs, schedule && scheduleHash(JSON.parse(schedule.text)));
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
    ...(p.schedule.keptForm ? { kept_attention_form: p.schedule.keptForm } : {}),
    // with host checkpoints, the last layers that keep theirs on the GPU (where the host cannot hold them all)
    ...(p.schedule.gpuCheckpointLayers ? { gpu_checkpoint_layers: p.schedule.gpuCheckpointLayers } : {}),
    // layers that keep on the GPU the GEMM outputs their backward would recompute
    ...(p.schedule.keptActivationLayers ? { kept_activation_layers: p.schedule.keptActivationLayers } : {}),
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
    attention_pricing: attentionPricing(p.schedule),
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
  const names = passes.map((p) => p.name);
  const check = (flag: string, given: readonly string[] | undefined, known: readonly string[]) => {
    for (const n of given ?? []) if (!known.includes(n)) throw errors.unknownPass(flag, n, known);
  };
  // the schedule stages dump too; skipping any graph pass already drops them all
  check('dump-after', opts.dumpAfter, ['all', 'input', ...names, ...dumpableStages]);
  check('skip', opts.skip, names);
}

/** Model names become folder names under --out: letters, digits, '.', '_', '-', not starting with '.'. */
const MODEL_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;

function checkModelName(name: unknown, file: string): void {
  if (typeof name !== 'string' || !MODEL_NAME.test(name)) throw errors.badModelName(displayPath(file), String(name));
}

/** Throws unless `path` lies strictly inside `root`. */
function checkInside(root: string, path: string): void {
  const rel = relative(root, path);
  if (rel === '' || rel === '..' || rel.startsWith(`..${'/'}`) || isAbsolute(rel)) throw errors.outsideOut(path, root);
}

/** What a compile writes into out/<model>: replaced by every compile, never carried over. */
const COMPILE_OUTPUTS = new Set(['graph.txt', 'graph.json', 'report.json', 'schedule.json', 'schedule.dot', 'trace.json', 'passes']);
/** What `fpdtc build` writes there: valid only for the schedule it was built from. */
const BUILD_OUTPUTS = new Set(['src', 'build']);
export const STALE_BUILD_NOTE = 'note: the previous build was for another schedule; run fpdtc build again';

/** The file operations of the output swap; tests replace them to make one fail. */
export const outputIo = { write: writeFileSync, rename: renameSync };

const ioReason = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message.split('\n')[0];

/**
 * Writes `outputs` into `<root>/.<name>.tmp-<pid>` and swaps that folder in for `<root>/<name>`.
 * From the old folder it carries over its build (build/ and src/) when that build was made from
 * a schedule with the new one's hash, and anything that neither compile nor build wrote there;
 * the old compile's files are not left behind. Any failure leaves the old folder as it was.
 */
export function replaceOutputDir(root: string, name: string, outputs: readonly { name: string; text: string }[], hash: string | undefined): { files: string[]; notes: string[] } {
  const target = join(root, name);
  checkInside(root, target);
  try {
    mkdirSync(root, { recursive: true });
  } catch (e) {
    throw errors.cannotWrite(root, ioReason(e));
  }
  if (existsSync(target) && !statSync(target).isDirectory()) throw errors.cannotWrite(target, 'it is a file, not a folder; move it away or pass another --out');
  removeLeftovers(root, name);
  const tmp = join(root, `.${name}.tmp-${process.pid}`);
  const aside = join(root, `.${name}.old-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  rmSync(aside, { recursive: true, force: true });
  let at = tmp;
  try {
    mkdirSync(tmp);
    for (const o of outputs) {
      at = join(tmp, o.name);
      checkInside(tmp, at);
      mkdirSync(dirname(at), { recursive: true });
      outputIo.write(at, o.text);
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if ((e as { exitCode?: unknown }).exitCode !== undefined) throw e;
    throw errors.cannotWrite(at === tmp ? tmp : join(target, relative(tmp, at)), ioReason(e));
  }
  const notes: string[] = [];
  const carried: string[] = [];
  const undo = () => {
    for (const n of carried.reverse()) if (existsSync(join(tmp, n))) renameSync(join(tmp, n), join(target, n));
    rmSync(tmp, { recursive: true, force: true });
  };
  const old = existsSync(target);
  try {
    if (old) {
      const entries = readdirSync(target);
      const keepBuild = hash !== undefined && builtFrom(join(target, 'build')) === hash;
      if (!keepBuild && entries.includes('build')) notes.push(STALE_BUILD_NOTE);
      for (const n of entries) {
        if (COMPILE_OUTPUTS.has(n) || (BUILD_OUTPUTS.has(n) && !keepBuild)) continue;
        outputIo.rename(join(target, n), join(tmp, n));
        carried.push(n);
      }
      outputIo.rename(target, aside);
    }
  } catch (e) {
    undo();
    throw errors.cannotWrite(target, ioReason(e));
  }
  try {
    outputIo.rename(tmp, target);
  } catch (e) {
    if (old) {
      renameSync(aside, target);
      undo();
    } else rmSync(tmp, { recursive: true, force: true });
    throw errors.cannotWrite(target, ioReason(e));
  }
  if (old) rmSync(aside, { recursive: true, force: true });
  return { files: outputs.map((o) => join(target, o.name)), notes };
}

/** The schedule hash a build folder was made from; undefined when it holds no finished build. */
function builtFrom(buildDir: string): string | undefined {
  try {
    return readBuildRecord(buildDir)?.hash;
  } catch {
    return undefined; // a damaged record: the build cannot be trusted, so it is not kept
  }
}

/** Temporary folders of compiles of this model that were killed before they could clean up. */
function removeLeftovers(root: string, name: string): void {
  const mine = new RegExp(`^\\.${name.replace(/[.]/g, '\\.')}\\.(tmp|old)-(\\d+)$`);
  for (const n of readdirSync(root)) {
    const m = mine.exec(n);
    if (m && !processAlive(Number(m[2]))) rmSync(join(root, n), { recursive: true, force: true });
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
