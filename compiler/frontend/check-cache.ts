// The type-check verdict for a model file, kept across runs. An entry records the hash of
// every source file the check read, so editing the model or the DSL invalidates it, and a
// hit costs a few file reads instead of loading TypeScript.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import type { CheckResult, Diagnostic } from './typecheck.js';

/** Bump when the check itself changes (options, globals), so old verdicts are ignored. */
const CHECK_VERSION = 1;

interface Entry {
  version: number;
  files: Record<string, string>;
  diagnostics: Diagnostic[];
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

/** The cached diagnostics if nothing the check read has changed since, else undefined. */
export function cachedVerdict(cacheDir: string, modelPath: string): readonly Diagnostic[] | undefined {
  let entry: Entry;
  try {
    entry = JSON.parse(readFileSync(entryPath(cacheDir, modelPath), 'utf8')) as Entry;
  } catch {
    return undefined;
  }
  if (entry.version !== CHECK_VERSION || !entry.files[modelPath]) return undefined;
  for (const [file, hash] of Object.entries(entry.files)) if (hashFile(file) !== hash) return undefined;
  return entry.diagnostics;
}

export function storeVerdict(cacheDir: string, modelPath: string, result: CheckResult): void {
  const files: Record<string, string> = {};
  for (const f of result.files) {
    const h = hashFile(f);
    if (h === undefined) return; // a file vanished mid-check: do not record a verdict for it
    files[f] = h;
  }
  const entry: Entry = { version: CHECK_VERSION, files, diagnostics: [...result.diagnostics] };
  try {
    writeFileAtomic(entryPath(cacheDir, modelPath), JSON.stringify(entry));
  } catch {
    // The cache is an optimisation; a read-only output folder must not fail the compile.
  }
}
