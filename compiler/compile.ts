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

  const dumps: Dump[] = [];
  let graph: Graph;
  try {
    graph = runGraphPasses(buildGraph(model, config, path), passes, {
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
  const report = buildReport(graph, { passes: ran, ...(opts.skip?.length ? { skipped: [...opts.skip] } : {}) });

  const modelOutDir = join(outRoot, safeName(graph.name));
  const files = opts.write === false ? [] : writeOutputs(modelOutDir, graph, report, dumps, opts.dumpAfter !== undefined);
  return { graph, report, files, modelPath: path, modelOutDir };
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
