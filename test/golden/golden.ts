// Golden files: the expected text lives in a file (test/golden/<name>.txt for the IR goldens).
// UPDATE_GOLDEN=1 rewrites it; on a mismatch, or when the file is missing (a missing golden fails:
// it is never written silently), the actual text is written beside it as <file>.actual.
import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const GOLDEN_DIR = dirname(fileURLToPath(import.meta.url));

export function expectGolden(name: string, actual: string): void {
  expectGoldenFile(join(GOLDEN_DIR, `${name}.txt`), actual, join(GOLDEN_DIR, `${name}.actual`));
}

/** The same for a golden file anywhere (the schedule listing, the generated host program, ...). */
export function expectGoldenFile(expectedPath: string, actual: string, actualPath = `${expectedPath}.actual`): void {
  const name = basename(expectedPath);
  if (process.env.UPDATE_GOLDEN) {
    mkdirSync(dirname(expectedPath), { recursive: true });
    writeFileSync(expectedPath, actual);
    rmSync(actualPath, { force: true });
    return;
  }
  const expected = existsSync(expectedPath) ? readFileSync(expectedPath, 'utf8') : undefined;
  if (expected === actual) {
    rmSync(actualPath, { force: true });
    return;
  }
  writeFileSync(actualPath, actual);
  const hint = `; compare with ${actualPath}, or regenerate with UPDATE_GOLDEN=1`;
  if (expected === undefined) expect.fail(`no golden file ${expectedPath}${hint}`);
  const a = actual.split('\n');
  const e = expected.split('\n');
  const line = e.findIndex((l, i) => l !== a[i]);
  expect.fail(`${name} differs from the golden file at line ${line + 1}:\n  expected: ${e[line]}\n  actual:   ${a[line]}\n${hint}`);
}
