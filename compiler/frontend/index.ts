// The frontend: find a model file, type-check it against the DSL, run it, hand back the
// Model it default-exports. It never builds graphs itself beyond calling Model.build.
import type { Model } from '../dsl/index.js';
import { errors } from '../errors.js';
import { cachedLoadMs, cachedVerdict, storeLoadMs, storeVerdict } from './check-cache.js';
import { finishTopLevel, importModel, startTopLevel } from './evaluate.js';
import { validateModelDefinition } from './model-check.js';
import { evalTimeout } from './time-limit.js';
import { displayPath, resolveModelPath } from './resolve.js';
import { typeCheckFile, type Diagnostic } from './typecheck.js';

export { buildGraph } from './evaluate.js';
export { displayPath, MODELS_DIR, resolveModelPath } from './resolve.js';
export { validateConfig, nearestDivisor } from './config-check.js';
export { DEFAULT_EVAL_TIMEOUT_S, MAX_EVAL_TIMEOUT_S, setEvalTimeout } from './time-limit.js';

export interface LoadOptions {
  /** where type-check verdicts are kept between runs; no caching when absent */
  cacheDir?: string;
  /** default true; tests that only exercise evaluation may turn it off */
  typeCheck?: boolean;
}

export interface LoadedModel {
  readonly model: Model;
  /** absolute path of the model file */
  readonly path: string;
}

export async function loadModel(arg: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const path = resolveModelPath(arg);
  const checking = opts.typeCheck !== false;
  // A top level that ran within half the limit before, unchanged since, need not be timed again.
  const ranBefore = checking && opts.cacheDir ? cachedLoadMs(opts.cacheDir, path) : undefined;
  const run = ranBefore !== undefined && ranBefore < (evalTimeout() * 1000) / 2 ? undefined : startTopLevel(path);
  try {
    if (checking) {
      // the top level runs in its worker meanwhile
      const diagnostics = await checkTypes(path, opts.cacheDir);
      if (diagnostics.length > 0)
        throw errors.typeErrors(diagnostics.map((d) => ({ where: `${displayPath(d.file)}:${d.line}:${d.col}`, message: d.message })));
    }
    const ms = await finishTopLevel(run, path);
    if (ms !== undefined && checking && opts.cacheDir) storeLoadMs(opts.cacheDir, path, ms);
  } finally {
    run?.cancel();
  }
  const model = await importModel(path, null);
  await validateModelDefinition(model.def, path);
  return { model, path };
}

async function checkTypes(path: string, cacheDir: string | undefined): Promise<readonly Diagnostic[]> {
  const cached = cacheDir ? cachedVerdict(cacheDir, path) : undefined;
  if (cached) return cached;
  const result = await typeCheckFile(path);
  if (cacheDir) storeVerdict(cacheDir, path, result);
  return result.diagnostics;
}
