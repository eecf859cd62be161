// Where in the user's files an error happened, read from a JavaScript stack. tsx maps
// stacks back to the TypeScript source, so lines and columns are the ones the user sees.
import { dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { displayPath } from './resolve.js';

const COMPILER_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..') + sep;

interface Frame {
  file: string;
  line: number;
  col: number;
}

function frames(stack: string): Frame[] {
  const out: Frame[] = [];
  for (const text of stack.split('\n').slice(1)) {
    const m = /\(?((?:file:\/\/)?[^()\s]+):(\d+):(\d+)\)?\s*$/.exec(text);
    if (!m) continue;
    const file = m[1].startsWith('file://') ? fileURLToPath(m[1]) : m[1];
    out.push({ file, line: Number(m[2]), col: Number(m[3]) });
  }
  return out;
}

const isUserFile = (f: string) => !f.startsWith(COMPILER_DIR) && !f.startsWith('node:') && !f.includes(`${sep}node_modules${sep}`);

/**
 * `path:line:col` of the innermost frame in the model file, else in any file of the user's
 * (a helper the model imports), else undefined.
 */
export function locateInStack(err: unknown, modelPath: string): string | undefined {
  const stack = err instanceof Error ? err.stack : undefined;
  if (!stack) return undefined;
  const fs = frames(stack);
  const hit = fs.find((f) => f.file === modelPath) ?? fs.find((f) => isUserFile(f.file));
  return hit && `${displayPath(hit.file)}:${hit.line}:${hit.col}`;
}

/** The same error with its `file:line:col` shown relative to the working directory. */
export function withDisplayWhere(e: UserError): UserError {
  const m = e.where && /^(.*):(\d+):(\d+)$/.exec(e.where);
  const where = m ? `${displayPath(m[1])}:${m[2]}:${m[3]}` : e.where && displayPath(e.where);
  if (where === e.where) return e;
  const out = new UserError(e.message, e.exitCode, where);
  out.cause = e;
  return out;
}
