// Turns what the user typed (`models/llama70b.ts`, `llama70b`, `llama70b.ts`) into the
// absolute path of a model file. Paths win; a bare name falls back to the models/ folder.
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errors } from '../errors.js';

/** The repository's models/ folder, found from this file so it works from any cwd. */
export const MODELS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../models');

/** The name a model file outside this repository imports the DSL by (package.json "exports"). */
export const DSL_PACKAGE = 'fpdtc/dsl';
/** The DSL's entry file: what DSL_PACKAGE means, wherever the model file lives. */
export const DSL_INDEX = resolve(dirname(fileURLToPath(import.meta.url)), '../dsl/index.ts');

export function resolveModelPath(arg: string, cwd = process.cwd()): string {
  const withTs = arg.endsWith('.ts') ? arg : `${arg}.ts`;
  const candidates = [resolve(cwd, arg), resolve(cwd, withTs)];
  // A bare name (no folder) is also looked up among the bundled models.
  if (!arg.includes('/') && !arg.includes('\\') && !isAbsolute(arg)) candidates.push(join(MODELS_DIR, withTs));
  const tried = [...new Set(candidates)];
  for (const c of tried) if (existsSync(c) && statSync(c).isFile()) return c;
  throw errors.modelNotFound(arg, tried.map((c) => displayPath(c, cwd)));
}

/** A path as people want to read it: relative to cwd when it lies below it. */
export function displayPath(abs: string, cwd = process.cwd()): string {
  const rel = relative(cwd, abs);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
}
