// Runs a model file (the process runs under tsx, so a dynamic import of .ts works) and
// builds its graph, turning whatever goes wrong into one line that points into the file.
// The model's code runs under a time limit and may not end the process (time-limit.ts).
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { isModel, type Model } from '../dsl/index.js';
import { errors, isUserError, type UserError } from '../errors.js';
import type { Graph, TrainConfig } from '../ir/types.js';
import { locateInStack, withDisplayWhere } from './location.js';
import { displayPath } from './resolve.js';
import { evalTimeout, HOOKS_DATA, HOOKS_URL, runWithin, timedOut, tryTopLevel, withoutExit, withoutExitSync, type TopLevelOutcome } from './time-limit.js';

/** Model files this process has imported: their top level has run and will not run again. */
const imported = new Set<string>();

export type TopLevelRun = ReturnType<typeof tryTopLevel> | undefined;

/** Starts running the file's top level under the time limit, unless this process ran it already. */
export function startTopLevel(path: string): TopLevelRun {
  return imported.has(path) ? undefined : tryTopLevel(path, evalTimeout());
}

/** Waits for the run `startTopLevel` began; how long the top level took, or its one-line error. */
export async function finishTopLevel(run: TopLevelRun, path: string): Promise<number | undefined> {
  if (!run) return undefined;
  const o: TopLevelOutcome = await run.outcome;
  const file = displayPath(path);
  switch (o.kind) {
    case 'finished':
      return o.ms;
    case 'timeout':
      throw errors.modelLoadTimedOut(file, evalTimeout());
    case 'exit':
      throw exitError(o.code, o.stack, path);
    case 'unsettled':
      throw errors.modelLoadUnsettled(file);
    case 'out-of-memory':
      throw errors.modelLoadOutOfMemory(file);
  }
}

/** Imports the model file; its top level first runs under the time limit, unless `run` is null (already done). */
export async function importModel(path: string, run: TopLevelRun | null = startTopLevel(path)): Promise<Model> {
  if (run) {
    try {
      await finishTopLevel(run, path);
    } finally {
      run.cancel();
    }
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await withoutExit((code, stack) => exitError(code, stack, path), () => loadModule(path))) as Record<string, unknown>;
  } catch (e) {
    throw fromThrown(e, path, 'import');
  }
  imported.add(path);
  if (!('default' in mod) || mod.default === undefined) throw errors.noDefaultExport(displayPath(path));
  if (!isModel(mod.default)) throw errors.notAModel(displayPath(path), describe(mod.default));
  return mod.default;
}

// The model must share one copy of every DSL and IR class with the compiler (a Dim made by
// another copy fails `instanceof`), so load it through the module system that loaded this
// file: ESM under `fpdtc`, CommonJS where a host such as mocha requires TypeScript.
async function loadModule(path: string): Promise<unknown> {
  if (typeof require === 'function') return require(path);
  registerModelHooks();
  return import(pathToFileURL(path).href);
}

let hooksRegistered = false;

/** Model files load as ES modules wherever they live, and `fpdtc/dsl` names our DSL (model-hooks.ts). */
function registerModelHooks(): void {
  if (hooksRegistered) return;
  register(HOOKS_URL, { data: HOOKS_DATA });
  hooksRegistered = true;
}

function exitError(code: unknown, stack: string, path: string): UserError {
  const err = new Error('process.exit');
  err.stack = stack;
  return errors.modelCalledExit(locateInStack(err, path) ?? displayPath(path), code);
}

/** Model.build with the model's own mistakes reported at their line. */
export function buildGraph(model: Model, config: TrainConfig, path: string): Graph {
  let g: Graph | ReturnType<typeof runWithin>;
  try {
    g = withoutExitSync((code, stack) => exitError(code, stack, path), () => runWithin(evalTimeout(), () => model.build(config)));
  } catch (e) {
    throw fromThrown(e, path, 'build');
  }
  if (timedOut(g)) throw errors.modelBuildTimedOut(displayPath(path), evalTimeout(), config.seq);
  return g as Graph;
}

function fromThrown(e: unknown, path: string, phase: 'import' | 'build'): UserError {
  if (isUserError(e)) return withDisplayWhere(e);
  const message = e instanceof Error ? firstLine(e.message) : String(e);
  const where = locateInStack(e, path);
  let out: UserError;
  if (where) out = errors.modelThrew(where, message);
  else if (phase === 'import') out = errors.cannotImport(displayPath(path), message);
  else out = errors.modelThrew(displayPath(path), message);
  out.cause = e;
  return out;
}

const firstLine = (s: string) => s.split('\n').find((l) => l.trim() !== '')?.trim() ?? s;

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (typeof x === 'function') return `a function${x.name ? ` (${x.name})` : ''}`;
  if (Array.isArray(x)) return 'an array';
  if (typeof x === 'object') return `an object ${summarizeKeys(x as object)}`;
  return `a ${typeof x} (${JSON.stringify(x)})`;
}

function summarizeKeys(o: object): string {
  const keys = Object.keys(o);
  return `{${keys.slice(0, 4).join(', ')}${keys.length > 4 ? ', ...' : ''}}`;
}
