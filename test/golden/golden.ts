// Golden files: the expected text lives in test/golden/<name>.txt. UPDATE_GOLDEN=1 rewrites
// it; on a mismatch the actual text is written beside it as <name>.actual for diffing.
import { expect } from 'chai';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const GOLDEN_DIR = dirname(fileURLToPath(import.meta.url));

export function expectGolden(name: string, actual: string): void {
  const expectedPath = join(GOLDEN_DIR, `${name}.txt`);
  const actualPath = join(GOLDEN_DIR, `${name}.actual`);
  if (process.env.UPDATE_GOLDEN === '1') {
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
