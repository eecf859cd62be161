// What every bad-input test asserts: the error a library function throws prints, through the
// command's own reportError, as one line with a non-zero exit code, never "internal error" and
// never a stack; and files that were there before are byte-identical after.
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { reportError } from '../../compiler/cli/report-error.js';
import { errors } from '../../compiler/errors.js';
import { RuntimeError } from '../../runtime/errors.js';

export interface Printed {
  code: number;
  text: string;
}

/**
 * What `fpdtc` would print for an error, and its exit code. A runtime error (runtime/errors.ts)
 * is shown as the commands show it, through the catalog's `errors.runtime`, and must already be
 * one line.
 */
export function printed(e: unknown): Printed {
  if (e instanceof RuntimeError) {
    expect(e.message, 'a runtime error').not.to.include('\n');
    e = errors.runtime(e.message);
  }
  let text = '';
  const write = process.stderr.write;
  const saved = process.env.FPDTC_DEBUG;
  delete process.env.FPDTC_DEBUG;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: reportError(e), text };
  } finally {
    process.stderr.write = write;
    if (saved !== undefined) process.env.FPDTC_DEBUG = saved;
  }
}

/** Asserts the one-line shape of a user error's output; returns the line. */
export function expectOneLine(p: Printed, context = ''): string {
  expect(p.code, `${context}: exit code of ${p.text}`).to.be.oneOf([1, 2]);
  expect(p.text, context).to.match(/\n$/);
  const lines = p.text.slice(0, -1).split('\n');
  expect(lines, `${context}: ${p.text}`).to.have.length(1);
  expect(p.text, context).not.to.include('internal error');
  expect(p.text, context).not.to.match(/\n\s+at /);
  expect(p.text, context).to.match(/(^|: )error: /);
  return lines[0];
}

/** Runs `f`, which must fail, and returns the one line `fpdtc` would print for it. */
export async function failsWithOneLine(f: () => unknown, context = ''): Promise<string> {
  let thrown: unknown;
  let threw = false;
  try {
    await f();
  } catch (e) {
    thrown = e;
    threw = true;
  }
  expect(threw, `${context}: expected a failure`).to.equal(true);
  return expectOneLine(printed(thrown), context);
}

/** Every file under `dir` (relative path -> bytes); folders are implied by their files. */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p).toString('base64'));
    }
  };
  walk(dir);
  return out;
}

/** Asserts that every file of `before` is still there, byte for byte, and nothing was added. */
export function expectUnchanged(dir: string, before: Map<string, string>, context = ''): void {
  const now = snapshot(dir);
  expect([...now.keys()], context).to.deep.equal([...before.keys()]);
  for (const [k, v] of before) expect(now.get(k) === v, `${context}: ${k} changed`).to.equal(true);
}
