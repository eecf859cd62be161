// The frontend: find a model file, type-check it against the DSL, run it, hand back the
// Model it default-exports. It never builds graphs itself beyond calling Model.build.
import type { Model } from '../dsl/index.js';
import { errors } from '../errors.js';
import { cachedVerdict, storeVerdict } from './check-cache.js';
import { importModel } from './evaluate.js';
import { displayPath, resolveModelPath } from './resolve.js';
import { typeCheckFile, type Diagnostic } from './typecheck.js';

export { buildGraph } from './evaluate.js';
export { displayPath, MODELS_DIR, resolveModelPath } from './resolve.js';
export { validateConfig, nearestDivisor } from './config-check.js';

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
  if (opts.typeCheck !== false) {
    const diagnostics = await checkTypes(path, opts.cacheDir);
    if (diagnostics.length > 0)
      throw errors.typeErrors(diagnostics.map((d) => ({ where: `${displayPath(d.file)}:${d.line}:${d.col}`, message: d.message })));
  }
  return { model: await importModel(path), path };
}

async function checkTypes(path: string, cacheDir: string | undefined): Promise<readonly Diagnostic[]> {
  const cached = cacheDir ? cachedVerdict(cacheDir, path) : undefined;
  if (cached) return cached;
  const result = await typeCheckFile(path);
  if (cacheDir) storeVerdict(cacheDir, path, result);
  return result.diagnostics;
}
