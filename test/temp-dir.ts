// Temporary folders for tests: each test removes what it makes under the system temp dir when it
// is done, passed or failed. In a describe: `before(() => (dir = makeTempDir('fpdt-x-')))` and
// `after(() => removeTempDir(dir))` (made in a hook, so nothing is made when no test of it runs);
// inside one test: `await withTempDir('fpdt-x-', async (dir) => ...)`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A new, empty folder under the system temp dir whose name starts with `prefix`. */
export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Removes `dir` and all in it; nothing when it is unset or already gone. */
export function removeTempDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** Calls `f` with a new temp folder and removes the folder when `f` is done, also when it throws. */
export async function withTempDir<T>(prefix: string, f: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = makeTempDir(prefix);
  try {
    return await f(dir);
  } finally {
    removeTempDir(dir);
  }
}
