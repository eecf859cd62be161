// Runs a model file (the process runs under tsx, so a dynamic import of .ts works) and
// builds its graph, turning whatever goes wrong into one line that points into the file.
import { pathToFileURL } from 'node:url';
import { isModel, type Model } from '../dsl/index.js';
import { errors, isUserError, type UserError } from '../errors.js';
import type { Graph, TrainConfig } from '../ir/types.js';
import { locateInStack, withDisplayWhere } from './location.js';
import { displayPath } from './resolve.js';

export async function importModel(path: string): Promise<Model> {
  let mod: Record<string, unknown>;
  try {
    mod = (await loadModule(path)) as Record<string, unknown>;
  } catch (e) {
    throw fromThrown(e, path, 'import');
  }
  if (!('default' in mod) || mod.default === undefined) throw errors.noDefaultExport(displayPath(path));
  if (!isModel(mod.default)) throw errors.notAModel(displayPath(path), describe(mod.default));
  return mod.default;
}

// The model must share one copy of every DSL and IR class with the compiler (a Dim made by
// another copy fails `instanceof`), so load it through the module system that loaded this
// file: ESM under `fpdtc`, CommonJS where a host such as mocha requires TypeScript.
async function loadModule(path: string): Promise<unknown> {
  if (typeof require === 'function') return require(path);
  return import(pathToFileURL(path).href);
}

/** Model.build with the model's own mistakes reported at their line. */
export function buildGraph(model: Model, config: TrainConfig, path: string): Graph {
  try {
    return model.build(config);
  } catch (e) {
    throw fromThrown(e, path, 'build');
  }
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
