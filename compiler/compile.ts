// `compile`: model file -> verified graph -> out/<model>/{graph.txt, graph.json, report.json, ...}.
// The library function behind `fpdtc compile`; the CLI only parses flags and prints.
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
import { graphPasses } from './passes/index.js';
import { PassError, runGraphPasses, type GraphPass } from './passes/pipeline.js';
import { buildReport, type Report } from './report.js';
import { offloadComparison, planGraph, resolveAutoChunk, type Planned } from './plan.js';
import { scheduleOutputs } from './schedule/export-files.js';
import { scheduleHash } from './schedule/json.js';

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
  /** things people should know that are not errors (a previous build dropped), one line each */
  readonly notes: readonly string[];
}

interface Dump {
  index: number;
  pass: string;
  text: string;
}

export async function compile(modelPathOrName: string, overrides: ConfigOverrides = {}, opts: CompileOptions = {}): Promise<CompileResult> {
  const outRoot = resolve(opts.outDir ?? 'out');
  const { model, path } = await loadModel(modelPathOrName, { cacheDir: join(outRoot, '.cache', 'typecheck'), typeCheck: opts.typeCheck });
  checkModelName(model.name, path);
  const config = resolveConfig(model.def.train ?? {}, overrides);
  validateConfig(config, model.def.sizes);
  const passes = graphPasses(config);
  checkPassNames(passes, opts);

  const build = (c: typeof config) => buildGraph(model, c, path);
  // --chunk auto: the policy's choice, planned with every pass whatever --skip says, so that
  // the chunk does not depend on what is dumped or skipped (and check checks the same one)
  const chosen = resolveAutoChunk(build, config);
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

  checkModelName(graph.name, path);
  const modelOutDir = join(outRoot, graph.name);
  let files: string[] = [];
  let notes: string[] = [];
  if (opts.write !== false) {
    const outputs = [
      { name: 'graph.txt', text: printGraph(graph) },
      { name: 'graph.json', text: printGraphJson(graph) },
      { name: 'report.json', text: JSON.stringify(report, null, 2) + '\n' },
      ...dumps.map((d) => ({ name: join('passes', `${String(d.index).padStart(3, '0')}_${d.pass}.txt`), text: d.text })),
      ...(planned ? scheduleOutputs({ schedule: planned.schedule, plan: planned.summary.plan, timeline: planned.summary.full }) : []),
    ];
    const schedule = outputs.find((o) => o.name === 'schedule.json');
    ({ files, notes } = replaceOutputDir(outRoot, graph.name, outputs, schedule && scheduleHash(JSON.parse(schedule.text))));
  }
  if (planned && !planned.summary.memory.fits) {
    const err = errors.doesNotFit(graph.name, planned.summary.memory.advice);
    (err as { result?: unknown }).result = { graph, report, files, modelPath: path, modelOutDir, notes };
    throw err;
  }
  return { graph, report, files, modelPath: path, modelOutDir, notes, ...(planned ? { planned } : {}) };
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
