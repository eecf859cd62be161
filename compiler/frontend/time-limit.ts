// A model file is the user's code running inside fpdtc: its top level once when it loads, its
// forward function each time a graph is built. Neither may hang fpdtc or end it quietly.
// - Top level: a module's body cannot be interrupted on the thread that imports it, so it is
//   first imported once in a worker thread that is terminated when the limit passes.
// - forward(): synchronous, so it runs under a vm timeout, which interrupts any JavaScript on
//   this thread (the model's own functions included) and throws.
// - process.exit: replaced while the model's code runs, so a call becomes an error.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import type { HooksData } from './model-hooks.js';
import { DSL_INDEX, DSL_PACKAGE } from './resolve.js';

export const DEFAULT_EVAL_TIMEOUT_S = 60;
/** vm and timers take whole milliseconds below 2^31. */
export const MAX_EVAL_TIMEOUT_S = 86_400;

let evalTimeoutS = DEFAULT_EVAL_TIMEOUT_S;

/** The limit on each evaluation of a model file (`--eval-timeout`), in seconds. */
export function setEvalTimeout(seconds: number): void {
  evalTimeoutS = seconds;
}

export function evalTimeout(): number {
  return evalTimeoutS;
}

const limitMs = (seconds: number) => Math.max(1, Math.min(Math.ceil(seconds * 1000), MAX_EVAL_TIMEOUT_S * 1000));

export const HOOKS_URL = new URL('./model-hooks.ts', import.meta.url).href;
export const HOOKS_DATA: HooksData = { dslUrl: pathToFileURL(DSL_INDEX).href, dslPackage: DSL_PACKAGE };

// --- the top level, in a worker -------------------------------------------------------------

export type TopLevelOutcome =
  /** ms: how long it took, unknown where the worker itself failed */
  | { kind: 'finished'; ms?: number }
  | { kind: 'timeout' }
  | { kind: 'exit'; code: unknown; stack: string }
  | { kind: 'unsettled' }
  | { kind: 'out-of-memory' };

// The worker has none of this thread's loaders, so it registers TypeScript and the model
// hooks itself; it runs as a CommonJS script because that needs no loader to start.
const PROBE_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { register } = require('node:module');
import(workerData.tsx).then(({ register: registerTsx }) => {
  registerTsx();
  register(workerData.hooks, { data: workerData.hooksData });
  process.exit = (code) => {
    parentPort.postMessage({ kind: 'exit', code, stack: new Error().stack });
    throw new Error('process.exit');
  };
  parentPort.postMessage({ kind: 'started' });
  const t0 = performance.now();
  const finished = () => parentPort.postMessage({ kind: 'finished', ms: performance.now() - t0 });
  return import(workerData.model).then(finished, finished);
});
`;

/** tsx's ESM API as a file: URL (require.resolve would give its CommonJS build). */
function tsxApiUrl(): string {
  const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
  const { exports } = JSON.parse(readFileSync(pkg, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  return pathToFileURL(join(dirname(pkg), exports['./esm/api'].import.default)).href;
}

/**
 * Imports the model file once in a worker thread, where an endless top level can be stopped.
 * Its errors are left for the real import to report at their line; only how the top level
 * ended matters here.
 */
export function tryTopLevel(path: string, seconds: number): { outcome: Promise<TopLevelOutcome>; cancel(): void } {
  const worker = new Worker(PROBE_SOURCE, {
    eval: true,
    // what the model prints belongs to the real import
    stdout: true,
    stderr: true,
    workerData: { tsx: tsxApiUrl(), hooks: HOOKS_URL, hooksData: HOOKS_DATA, model: pathToFileURL(path).href },
  });
  worker.stdout.resume();
  worker.stderr.resume();
  let timer: NodeJS.Timeout | undefined;
  let settle: (o: TopLevelOutcome) => void = () => {};
  let done = false;
  const outcome = new Promise<TopLevelOutcome>((resolve) => {
    settle = (o) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(o);
    };
  });
  worker.on('message', (m: TopLevelOutcome | { kind: 'started' }) => {
    // A message may still arrive after a cancel; the running worker keeps the process alive,
    // so the timer need not (and must not, once the worker is gone).
    if (m.kind !== 'started') settle(m);
    else if (!done) timer = setTimeout(() => settle({ kind: 'timeout' }), limitMs(seconds)).unref();
  });
  // Anything else that breaks the worker is left for the real import to meet and report.
  worker.on('error', (e: NodeJS.ErrnoException) => settle(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? { kind: 'out-of-memory' } : { kind: 'finished' }));
  // Exiting without a word: the top level awaits something that never settles.
  worker.on('exit', () => settle({ kind: 'unsettled' }));
  return { outcome, cancel: () => settle({ kind: 'finished' }) };
}

// --- synchronous calls into the model -----------------------------------------------------

const TIMED_OUT = Symbol('timed out');
// Named after this file so that frames of the wrapper never count as the user's.
const RUN = new vm.Script('run()', { filename: fileURLToPath(import.meta.url) });
let context: vm.Context | undefined;

/** `f()`, or TIMED_OUT when it runs longer than `seconds`. */
export function runWithin<T>(seconds: number, f: () => T): T | typeof TIMED_OUT {
  context ??= vm.createContext({ run: undefined });
  const saved = context.run;
  let out: T | undefined;
  context.run = () => {
    out = f();
  };
  try {
    RUN.runInContext(context, { timeout: limitMs(seconds) });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return TIMED_OUT;
    throw e;
  } finally {
    context.run = saved;
  }
  return out as T;
}

export const timedOut = (x: unknown): x is typeof TIMED_OUT => x === TIMED_OUT;

// --- process.exit ---------------------------------------------------------------------------

/** Runs `f` with process.exit turned into the error `onExit` makes. */
export async function withoutExit<T>(onExit: (code: unknown, stack: string) => Error, f: () => T | Promise<T>): Promise<T> {
  const exit = process.exit;
  process.exit = ((code?: unknown) => {
    throw onExit(code, new Error().stack ?? '');
  }) as typeof process.exit;
  try {
    return await f();
  } finally {
    process.exit = exit;
  }
}

/** The same, for synchronous `f`. */
export function withoutExitSync<T>(onExit: (code: unknown, stack: string) => Error, f: () => T): T {
  const exit = process.exit;
  process.exit = ((code?: unknown) => {
    throw onExit(code, new Error().stack ?? '');
  }) as typeof process.exit;
  try {
    return f();
  } finally {
    process.exit = exit;
  }
}
