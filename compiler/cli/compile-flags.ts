// `fpdtc compile` flags: strings from the command line -> typed overrides. Every mistake
// is a usage error (exit 2) from the catalog, naming the flag and what it accepts.
import { parseSize } from '../config.js';
import type { ConfigOverrides } from '../compile.js';
import { errors } from '../errors.js';
import { MAX_EVAL_TIMEOUT_S, setEvalTimeout } from '../frontend/index.js';
import type { Checkpoint } from '../ir/types.js';

/** The options object commander hands over: every value is still the text the user typed. */
export interface RawCompileFlags {
  seq?: string;
  sp?: string;
  dp?: string;
  chunk?: string;
  offload?: string;
  checkpoint?: string;
  zero?: string;
  fpdt?: string;
  device?: string;
  hostMem?: string;
  keepAttention?: string;
  keepForm?: string;
  gpuCheckpoints?: string;
  keepActivations?: string;
  stashes?: string;
  optimizer?: string;
  /** `--packed`: windows of packed documents */
  packed?: boolean;
  out?: string;
  dumpAfter?: string[];
  skip?: string[];
  evalTimeout?: string;
  /** print each stage's time (compile only) */
  timings?: boolean;
}

export function parseCompileFlags(raw: RawCompileFlags): ConfigOverrides {
  const o: { -readonly [K in keyof ConfigOverrides]: ConfigOverrides[K] } = {};
  if (raw.seq !== undefined) o.seq = parseSize(raw.seq, 'seq');
  if (raw.sp !== undefined) o.sp = positiveInt('sp', raw.sp);
  if (raw.dp !== undefined) o.dp = positiveInt('dp', raw.dp);
  if (raw.chunk !== undefined) o.chunk = raw.chunk === 'auto' ? 'auto' : parseSize(raw.chunk, 'chunk');
  if (raw.offload !== undefined) o.offload = onOff('offload', raw.offload);
  if (raw.checkpoint !== undefined) o.checkpoint = oneOf('checkpoint', raw.checkpoint, ['off', 'gpu', 'host'] as const) satisfies Checkpoint;
  if (raw.zero !== undefined) o.zero = Number(oneOf('zero', raw.zero, ['0', '3'] as const)) as 0 | 3;
  if (raw.fpdt !== undefined) o.fpdt = onOff('fpdt', raw.fpdt);
  if (raw.device !== undefined) o.device = deviceName(raw.device);
  if (raw.keepAttention !== undefined) o.keepAttention = raw.keepAttention === 'auto' ? 'auto' : wholeNumber('keep-attention', raw.keepAttention);
  if (raw.keepForm !== undefined && raw.keepForm !== 'auto') o.keepForm = oneOf('keep-form', raw.keepForm, ['all', 'outputs'] as const);
  if (raw.gpuCheckpoints !== undefined) o.gpuCheckpoints = raw.gpuCheckpoints === 'auto' ? 'auto' : wholeNumber('gpu-checkpoints', raw.gpuCheckpoints);
  if (raw.keepActivations !== undefined) o.keepActivations = raw.keepActivations === 'auto' ? 'auto' : wholeNumber('keep-activations', raw.keepActivations);
  if (raw.stashes !== undefined && raw.stashes !== 'auto') o.stashes = oneOf('stashes', raw.stashes, ['host', 'gpu'] as const);
  if (raw.optimizer !== undefined) o.optimizer = oneOf('optimizer', raw.optimizer, ['gpu', 'host'] as const);
  if (raw.hostMem !== undefined) o.hostMemGiB = hostMemGiB(raw.hostMem);
  if (raw.packed === true) o.packed = true;
  return o;
}

/** `--eval-timeout S`: how long the model file's code may run each time (loading, building a graph). */
export function applyEvalTimeout(raw: RawCompileFlags): void {
  if (raw.evalTimeout === undefined) return;
  const n = /^\d+(\.\d+)?$/.test(raw.evalTimeout) ? Number(raw.evalTimeout) : NaN;
  if (!(n >= 0.001 && n <= MAX_EVAL_TIMEOUT_S)) throw errors.badFlag('eval-timeout', raw.evalTimeout, `expected a number of seconds from 0.001 to ${MAX_EVAL_TIMEOUT_S}`);
  setEvalTimeout(n);
}

/** `--dump-after a b`, `--dump-after a,b` and repeated flags all mean the list [a, b]. */
export function passList(values: readonly string[] | undefined): string[] | undefined {
  return values?.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

function positiveInt(flag: string, v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw errors.badFlag(flag, v, 'expected a whole number of at least 1');
  return n;
}

function wholeNumber(flag: string, v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw errors.badFlag(flag, v, 'expected auto or a whole number of layers');
  return n;
}

function positiveNumber(flag: string, v: string, expected: string): number {
  const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
  if (!(n > 0)) throw errors.badFlag(flag, v, `expected ${expected}`);
  return n;
}

/** Pinned host memory per GPU: below a GiB no plan fits, and the advice would read "over by 0.0 GiB". */
const HOST_MEM_GIB = { min: 1, max: 1 << 20 };

function hostMemGiB(v: string): number {
  const n = positiveNumber('host-mem', v, 'a positive number of GiB, e.g. 512');
  if (n < HOST_MEM_GIB.min || n > HOST_MEM_GIB.max)
    throw errors.badFlag('host-mem', v, `expected from ${HOST_MEM_GIB.min} to ${HOST_MEM_GIB.max} GiB of pinned host memory per GPU, e.g. 512`);
  return n;
}

function onOff(flag: string, v: string): boolean {
  return oneOf(flag, v, ['on', 'off'] as const) === 'on';
}

function oneOf<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) throw errors.badFlag(flag, v, `expected ${allowed.join(' or ')}`);
  return v as T;
}

function deviceName(v: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(v)) throw errors.badFlag('device', v, 'expected a device name such as h200');
  return v.toLowerCase();
}
