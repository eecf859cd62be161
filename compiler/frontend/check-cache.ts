// The type-check verdict for a model file, kept across runs. An entry records the hash of
// every source file the check read, so editing the model or the DSL invalidates it, and a
// hit costs a few file reads instead of loading TypeScript.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import type { CheckResult, Diagnostic } from './typecheck.js';

/** Bump when the check itself changes (options, globals), so old verdicts are ignored. */
const CHECK_VERSION = 2;

interface Entry {
  version: number;
  files: Record<string, string>;
  diagnostics: Diagnostic[];
  /** how long the file's top level took to run, once it has run within the time limit */
  loadMs?: number;
}

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

function hashFile(path: string): string | undefined {
  try {
    return sha(readFileSync(path));
  } catch {
    return undefined;
  }
}

const entryPath = (cacheDir: string, modelPath: string) => join(cacheDir, `${sha(modelPath).slice(0, 24)}.json`);

/** The entry if nothing the check read has changed since, else undefined. */
function currentEntry(cacheDir: string, modelPath: string): Entry | undefined {
  let entry: Entry;
  try {
    entry = JSON.parse(readFileSync(entryPath(cacheDir, modelPath), 'utf8')) as Entry;
  } catch {
    return undefined;
  }
  if (entry.version !== CHECK_VERSION || !entry.files[modelPath]) return undefined;
  for (const [file, hash] of Object.entries(entry.files)) if (hashFile(file) !== hash) return undefined;
  return entry;
}

/** The cached diagnostics if nothing the check read has changed since, else undefined. */
export function cachedVerdict(cacheDir: string, modelPath: string): readonly Diagnostic[] | undefined {
  return currentEntry(cacheDir, modelPath)?.diagnostics;
}

/**
 * How long the model file's top level took when it last ran, if nothing it reads has changed
 * since: such a file need not be run under a time limit again.
 */
export function cachedLoadMs(cacheDir: string, modelPath: string): number | undefined {
  return currentEntry(cacheDir, modelPath)?.loadMs;
}

export function storeLoadMs(cacheDir: string, modelPath: string, ms: number): void {
  const entry = currentEntry(cacheDir, modelPath);
  if (entry) write(cacheDir, modelPath, { ...entry, loadMs: ms });
}

export function storeVerdict(cacheDir: string, modelPath: string, result: CheckResult): void {
  const files: Record<string, string> = {};
  for (const f of result.files) {
    const h = hashFile(f);
    if (h === undefined) return; // a file vanished mid-check: do not record a verdict for it
    files[f] = h;
  }
  write(cacheDir, modelPath, { version: CHECK_VERSION, files, diagnostics: [...result.diagnostics] });
}

function write(cacheDir: string, modelPath: string, entry: Entry): void {
  try {
    writeFileAtomic(entryPath(cacheDir, modelPath), JSON.stringify(entry));
  } catch {
    // The cache is an optimisation; a read-only output folder must not fail the compile.
  }
}
