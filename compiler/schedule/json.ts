// schedule.json and report.json as files a reader can trust. Every read (build, inspect, run)
// goes through here: the JSON schema of docs/schedule-json.md (checked with ajv), then what a
// schema cannot say, in code:
//   1. `world` is `config.sp * config.dp`; `chunk * chunks` is `config.seq`; `layers` is `sizes.L`.
//   2. A buffer's `elems` is the product of its `shape`, its `bytes` what elems, slots and
//      dtype take; buffer ids are unique.
//   3. Two buffers of one space that are live at the same position hold disjoint bytes.
//   4. Every ref names a buffer and stays inside its elements for every value its loop
//      variables take; every affine variable is an enclosing loop's or `r`; every event is declared.
//   5. `hash` is the sha256 of the file's canonical content (so an edited file is not taken
//      for the one a build was made from).
// A failure is one line naming the file and the field.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { errors } from '../errors.js';
import type { Report } from '../report.js';
import type { ScheduleJson } from './export-json.js';
import { bufferBytes } from './memory.js';
import { STREAMS, type Affine, type Item, type Ref } from './types.js';

export const SCHEDULE_JSON_FORMAT = 'fpdtc.schedule';
export const SCHEDULE_JSON_VERSION = 1;

// ---- the content hash ----

/** JSON with object keys sorted (by UTF-16 code unit) and no whitespace; undefined fields left out. */
export function canonicalJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map((e) => (e === undefined ? 'null' : canonicalJson(e))).join(',')}]`;
  if (x !== null && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(x) ?? 'null';
}

/** sha256 (hex) of a schedule document's canonical JSON, its `hash` field left out. */
export function scheduleHash(doc: object): string {
  const { hash: _hash, ...content } = doc as { hash?: unknown };
  return createHash('sha256').update(canonicalJson(content)).digest('hex');
}

// ---- schemas ----

const int = (minimum?: number) => ({ type: 'integer', ...(minimum === undefined ? {} : { minimum }) });
const num = (minimum?: number) => ({ type: 'number', ...(minimum === undefined ? {} : { minimum }) });
const str = { type: 'string' };
const strings = { type: 'array', items: str };
const object = (required: string[], properties: Record<string, unknown>) => ({ type: 'object', required, properties });
const mapOf = (values: unknown) => ({ type: 'object', additionalProperties: values });

const configSchema = object(['seq', 'sp', 'chunk', 'offload', 'checkpoint', 'zero', 'fpdt', 'device', 'lr', 'seed'], {
  seq: int(1),
  sp: int(1),
  dp: int(1),
  chunk: { anyOf: [int(1), { const: 'auto' }] },
  offload: { type: 'boolean' },
  checkpoint: { enum: ['off', 'gpu', 'host'] },
  zero: { enum: [0, 3] },
  fpdt: { type: 'boolean' },
  device: str,
  hostMemGiB: { type: 'number', exclusiveMinimum: 0 },
  keepAttention: { anyOf: [int(0), { const: 'auto' }] },
  optimizer: { enum: ['gpu', 'host'] },
  lr: num(0),
  seed: int(),
});

const affineSchema = object(['c', 't'], { c: int(), t: mapOf(int()) });
const refSchema = object(['buf', 'off', 'len'], { buf: str, off: affineSchema, len: int(1), slot: affineSchema });
const attrValue = { anyOf: [{ type: ['number', 'string', 'boolean'] }, { type: 'array', items: { type: 'number' } }] };

const itemSchemas = {
  instr: object(['kind', 'id', 'stream', 'op', 'reads', 'writes', 'attrs', 'flops', 'bytes'], {
    kind: { const: 'instr' },
    id: str,
    stream: { enum: STREAMS },
    op: str,
    reads: { type: 'array', items: { $ref: '#/$defs/ref' } },
    writes: { type: 'array', items: { $ref: '#/$defs/ref' } },
    attrs: mapOf(attrValue),
    args: mapOf({ $ref: '#/$defs/affine' }),
    flops: num(0),
    bytes: num(0),
  }),
  event: object(['kind', 'id', 'stream', 'event'], {
    kind: { enum: ['record', 'wait'] },
    id: str,
    stream: { enum: STREAMS },
    event: str,
    index: { $ref: '#/$defs/affine' },
  }),
  loop: object(['kind', 'id', 'var', 'from', 'to', 'role', 'body'], {
    kind: { const: 'loop' },
    id: str,
    var: str,
    from: { $ref: '#/$defs/affine' },
    to: { $ref: '#/$defs/affine' },
    role: { enum: ['layer', 'chunk', 'kv', 'q'] },
    reverse: { type: 'boolean' },
    body: { type: 'array', items: { $ref: '#/$defs/item' } },
  }),
};

const bufferSchema = object(['id', 'space', 'dtype', 'elems', 'slots', 'kind', 'shape', 'bytes'], {
  id: str,
  space: { enum: ['gpu', 'host'] },
  dtype: { enum: ['bf16', 'fp32', 'int32'] },
  elems: int(1),
  slots: int(1),
  kind: { enum: ['param', 'gathered', 'grad', 'optim', 'ckpt', 'stash', 'act', 'chunk', 'attn', 'io'] },
  value: str,
  shape: { type: 'array', items: int(1) },
  bytes: int(0),
  offset: int(0),
  live: { type: 'array', items: int(0), minItems: 2, maxItems: 2 },
});

const scheduleSchema = {
  ...object(['format', 'version', 'hash', 'model', 'config', 'world', 'chunk', 'chunks', 'layers', 'sizes', 'streams', 'buffers', 'events', 'body'], {
    format: { const: SCHEDULE_JSON_FORMAT },
    version: { const: SCHEDULE_JSON_VERSION },
    hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    model: str,
    config: configSchema,
    world: int(1),
    chunk: int(1),
    chunks: int(1),
    layers: int(0),
    sizes: mapOf(int(0)),
    keptLayers: int(0),
    streams: { const: STREAMS },
    buffers: { type: 'array', items: bufferSchema },
    events: mapOf(int(1)),
    body: { type: 'array', items: { $ref: '#/$defs/item' } },
  }),
  $defs: {
    affine: affineSchema,
    ref: refSchema,
    item: { type: 'object', required: ['kind'], properties: { kind: str }, discriminator: { propertyName: 'kind' }, oneOf: [itemSchemas.instr, itemSchemas.event, itemSchemas.loop] },
  },
};

const breakdown = object(['params', 'grads', 'optimizer', 'checkpoints', 'working'], {
  params: num(0),
  grads: num(0),
  optimizer: num(0),
  checkpoints: num(0),
  working: num(0),
  comm: num(0),
  total: num(0),
});
const arena = object(['size', 'peakLive', 'budget', 'breakdown'], { size: num(0), need: num(0), peakLive: num(0), budget: num(0), breakdown });
const streamNumbers = object([...STREAMS], Object.fromEntries(STREAMS.map((s) => [s, num(0)])));

const reportSchema = object(['model', 'params', 'tokens', 'layers', 'hidden', 'config'], {
  model: str,
  params: int(0),
  tokens: int(1),
  layers: int(0),
  hidden: int(0),
  flops_per_step: num(0),
  flops_convention: str,
  config: configSchema,
  passes: strings,
  skipped: strings,
  chunk: int(1),
  chunks: int(1),
  kept_attention_layers: int(0),
  device: str,
  fits: { type: 'boolean' },
  advice: str,
  peak_gpu_bytes: num(0),
  peak_host_bytes: num(0),
  gpu_budget_bytes: num(0),
  host_budget_bytes: num(0),
  ranks: { type: 'array', items: { type: 'object' } },
  predicted_step_s: num(0),
  mfu: num(0),
  exposed_copy_s: num(0),
  exposed_comm_s: num(0),
  attention_working_set: { type: 'object' },
  memory: object(['device', 'fits', 'advice', 'gpu', 'host'], { device: str, fits: { type: 'boolean' }, advice: str, gpu: arena, host: arena, buffers: int(0) }),
  timeline: object(['stepSeconds', 'peakFlops', 'exposedCopySeconds', 'exposedCommSeconds', 'utilization', 'windowLayers', 'layers', 'extrapolated', 'simulatedItems'], {
    stepSeconds: num(0),
    mfu: num(0),
    modelFlops: num(0),
    peakFlops: num(0),
    exposedCopySeconds: num(0),
    exposedCommSeconds: num(0),
    busySeconds: streamNumbers,
    utilization: streamNumbers,
    windowLayers: int(0),
    layers: int(0),
    extrapolated: { type: 'boolean' },
    simulatedItems: int(0),
  }),
});

// Compiled on first use: most commands read neither file.
let validators: { schedule: ValidateFunction; report: ValidateFunction } | undefined;
function validator(which: 'schedule' | 'report'): ValidateFunction {
  if (!validators) {
    // strict: a schema mistake throws here, in tests, instead of being logged to a user's terminal
    const ajv = new Ajv({ discriminator: true, allErrors: false, strict: true, allowUnionTypes: true });
    validators = { schedule: ajv.compile(scheduleSchema), report: ajv.compile(reportSchema) };
  }
  return validators[which];
}

// ---- one line per failure ----

/** `/buffers/3/elems` -> `buffers[3].elems` */
function fieldPath(pointer: string): string {
  const parts = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : `${i === 0 ? '' : '.'}${p}`)).join('');
}

function valueAt(doc: unknown, pointer: string): unknown {
  let x = doc;
  for (const p of pointer.split('/').slice(1)) x = (x as Record<string, unknown> | undefined)?.[p.replace(/~1/g, '/').replace(/~0/g, '~')];
  return x;
}

/** A value as a short piece of a message. */
export function shown(v: unknown): string {
  const text = v === undefined ? 'missing' : JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

function describe(e: ErrorObject, doc: unknown): string {
  const path = fieldPath(e.instancePath);
  const at = valueAt(doc, e.instancePath);
  const field = path || 'the file';
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${path ? `${path}: ` : ''}missing field '${String(p.missingProperty)}'`;
    case 'type':
      return `${field} is ${shown(at)}, expected ${String(p.type).replace(',', ' or ')}`;
    case 'enum':
      return `${field} is ${shown(at)}, expected one of ${(p.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')}`;
    case 'const':
      return `${field} is ${shown(at)}, expected ${shown(p.allowedValue)}`;
    case 'discriminator':
      return `${path}.kind is ${shown(valueAt(at, '/kind'))}, expected one of "instr", "record", "wait", "loop"`;
    case 'pattern':
      return `${field} is ${shown(at)}, not a sha256 digest (64 hex digits)`;
    case 'anyOf':
      return `${field} is ${shown(at)}, which is none of the allowed forms`;
    default:
      return `${field} is ${shown(at)}: ${e.message ?? 'not allowed'}`;
  }
}

function schemaProblem(which: 'schedule' | 'report', doc: unknown): string | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return `the file holds ${shown(doc)}, not a JSON object`;
  const v = validator(which);
  return v(doc) ? undefined : describe(v.errors![0], doc);
}

/** JSON text -> value; a parse failure is one line naming the file. */
export function parseJsonText(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw errors.outFileInvalid(where, `not JSON: ${(e as Error).message.split('\n')[0]}`);
  }
}

// ---- schedule.json ----

/** Checks a parsed schedule.json (format, version, schema, the checks above, hash) and returns it typed. */
export function checkScheduleDoc(doc: unknown, where: string): ScheduleJson {
  const j = doc as Partial<ScheduleJson> | null;
  if (j !== null && typeof j === 'object' && !Array.isArray(j)) {
    // format and version first: an older or foreign file says so rather than which field differs
    if (j.format !== SCHEDULE_JSON_FORMAT) throw errors.outFileInvalid(where, `not a schedule (format ${shown(j.format)}, expected '${SCHEDULE_JSON_FORMAT}')`);
    if (j.version !== SCHEDULE_JSON_VERSION) throw errors.outFileInvalid(where, `schedule format version ${String(j.version)}; this fpdtc reads version ${SCHEDULE_JSON_VERSION}: compile again`);
  }
  const problem = schemaProblem('schedule', doc) ?? scheduleProblem(doc as ScheduleJson);
  if (problem) throw errors.outFileInvalid(where, problem);
  const s = doc as ScheduleJson;
  if (scheduleHash(s) !== s.hash) throw errors.outFileInvalid(where, `its content does not match its hash (edited since it was compiled?)`);
  return s;
}

/** Data-parallel groups (configs without `dp` have one). */
const dpOf = (c: object): number => (c as { dp?: number }).dp ?? 1;

const product = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

/** What the schema cannot say about a schedule (invariants 1-4), or undefined. */
export function scheduleProblem(s: ScheduleJson): string | undefined {
  const c = s.config;
  const dp = dpOf(c);
  if (s.world !== c.sp * dp) return `world is ${s.world} but config.sp ${c.sp} times config.dp ${dp} is ${c.sp * dp}`;
  if (s.chunk * s.chunks !== c.seq) return `chunk ${s.chunk} times chunks ${s.chunks} is ${s.chunk * s.chunks}, not config.seq ${c.seq}`;
  if (s.sizes.L !== undefined && s.sizes.L !== s.layers) return `layers is ${s.layers} but sizes.L is ${s.sizes.L}`;
  if (s.keptLayers !== undefined && s.keptLayers > s.layers) return `keptLayers is ${s.keptLayers}, more than the ${s.layers} layers`;
  const byId = new Map<string, ScheduleJson['buffers'][number]>();
  for (const [i, b] of s.buffers.entries()) {
    const at = `buffers[${i}] ('${b.id}')`;
    if (byId.has(b.id)) return `${at}: the id '${b.id}' is used twice`;
    byId.set(b.id, b);
    if (b.elems !== product(b.shape)) return `${at}: elems is ${b.elems} but shape [${b.shape.join(', ')}] holds ${product(b.shape)}`;
    if (b.bytes !== bufferBytes(b)) return `${at}: bytes is ${b.bytes} but ${b.elems} ${b.dtype} elements in ${b.slots} slot(s) take ${bufferBytes(b)}`;
    if ((b.offset === undefined) !== (b.live === undefined)) return `${at}: has ${b.offset === undefined ? 'live but no offset' : 'an offset but no live range'}`;
    if (b.live && b.live[0] > b.live[1]) return `${at}: live range [${b.live.join(', ')}] ends before it starts`;
  }
  return planOverlap(s) ?? programProblem(s, byId);
}

/** Invariant 3: the memory plan gives buffers live at once disjoint bytes. */
function planOverlap(s: ScheduleJson): string | undefined {
  for (const space of ['gpu', 'host'] as const) {
    const placed = s.buffers.filter((b) => b.space === space && b.offset !== undefined).sort((a, b) => a.offset! - b.offset!);
    for (let i = 0; i < placed.length; i++) {
      const a = placed[i];
      for (let j = i + 1; j < placed.length && placed[j].offset! < a.offset! + a.bytes; j++) {
        const b = placed[j];
        if (a.live![1] < b.live![0] || b.live![1] < a.live![0]) continue;
        return `buffers '${a.id}' and '${b.id}' share ${space} bytes [${b.offset}, ${Math.min(a.offset! + a.bytes, b.offset! + b.bytes)}) while both are live; the memory plan is inconsistent`;
      }
    }
  }
  return undefined;
}

type Range = readonly [number, number];

/** Invariant 4, walking the program with each loop variable's range of values. */
function programProblem(s: ScheduleJson, buffers: ReadonlyMap<string, ScheduleJson['buffers'][number]>): string | undefined {
  const bounds = (a: Affine, env: ReadonlyMap<string, Range>, at: string): Range | string => {
    let lo = a.c;
    let hi = a.c;
    for (const [name, k] of Object.entries(a.t)) {
      const r = env.get(name);
      if (!r) return `${at}: variable '${name}' is not an enclosing loop's (nor r, the rank)`;
      lo += Math.min(k * r[0], k * r[1]);
      hi += Math.max(k * r[0], k * r[1]);
    }
    return [lo, hi];
  };
  const refProblem = (ref: Ref, env: ReadonlyMap<string, Range>, at: string): string | undefined => {
    const b = buffers.get(ref.buf);
    if (!b) return `${at}: buffer '${ref.buf}' is not in buffers`;
    const off = bounds(ref.off, env, `${at}.off`);
    if (typeof off === 'string') return off;
    if (ref.slot) {
      const slot = bounds(ref.slot, env, `${at}.slot`);
      if (typeof slot === 'string') return slot;
    }
    if (off[0] < 0 || off[1] + ref.len > b.elems) return `${at}: elements [${off[0]}, ${off[1] + ref.len}) of '${b.id}' are outside its ${b.elems} elements`;
    return undefined;
  };
  const walk = (items: readonly Item[], env: ReadonlyMap<string, Range>, at: string): string | undefined => {
    for (const [i, it] of items.entries()) {
      const here = `${at}[${i}]`;
      if (it.kind === 'loop') {
        const from = bounds(it.from, env, `${here}.from`);
        if (typeof from === 'string') return from;
        const to = bounds(it.to, env, `${here}.to`);
        if (typeof to === 'string') return to;
        // a loop that runs for no value of the enclosing variables (one chunk: kv blocks before the first) is never entered
        if (to[1] - 1 < from[0]) continue;
        const p = walk(it.body, new Map(env).set(it.var, [from[0], to[1] - 1]), `${here}.body`);
        if (p) return p;
      } else if (it.kind === 'instr') {
        for (const [k, ref] of it.reads.entries()) {
          const p = refProblem(ref, env, `${here}.reads[${k}]`);
          if (p) return p;
        }
        for (const [k, ref] of it.writes.entries()) {
          const p = refProblem(ref, env, `${here}.writes[${k}]`);
          if (p) return p;
        }
        for (const [name, a] of Object.entries(it.args ?? {})) {
          const b = bounds(a, env, `${here}.args.${name}`);
          if (typeof b === 'string') return b;
        }
      } else {
        if (!(it.event in s.events)) return `${here}: event '${it.event}' is not in events`;
        if (it.index) {
          const b = bounds(it.index, env, `${here}.index`);
          if (typeof b === 'string') return b;
        }
      }
    }
    return undefined;
  };
  // `r` is the rank's position in its sequence-parallel group
  return walk(s.body, new Map([['r', [0, s.config.sp - 1]]]), 'body');
}

// ---- report.json ----

/** Checks a parsed report.json against its schema and returns it typed. */
export function checkReportDoc(doc: unknown, where: string): Report {
  const problem = schemaProblem('report', doc);
  if (problem) throw errors.outFileInvalid(where, problem);
  return doc as Report;
}

/** What must agree between a report and the schedule of one compile. */
export function checkReportAgainstSchedule(r: Report, s: ScheduleJson, where: string): void {
  if (r.model !== s.model) throw errors.outFileInvalid(where, `model is '${r.model}' but schedule.json is of '${s.model}' (files of two compiles)`);
  if (r.tokens !== s.config.seq) throw errors.outFileInvalid(where, `tokens is ${r.tokens} but schedule.json's config.seq is ${s.config.seq} (files of two compiles)`);
  if (r.config.sp !== s.config.sp || dpOf(r.config) !== dpOf(s.config)) throw errors.outFileInvalid(where, `config.sp x dp is ${r.config.sp} x ${dpOf(r.config)} but schedule.json's is ${s.config.sp} x ${dpOf(s.config)} (files of two compiles)`);
}

// ---- an out dir ----

/** A file of an out dir as text; a missing or unreadable file is one line. */
export function readOutFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw errors.cannotReadOut(path, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : (code ?? (e as Error).message));
  }
}

export interface CompiledOut {
  readonly schedule: ScheduleJson;
  readonly report: Report;
}

/** schedule.json and report.json of out/<model>, each checked, and checked against each other. */
export function readCompiledOut(dir: string): CompiledOut {
  const schedPath = join(dir, 'schedule.json');
  const reportPath = join(dir, 'report.json');
  const report = checkReportDoc(parseJsonText(readOutFile(reportPath), reportPath), reportPath);
  const schedule = checkScheduleDoc(parseJsonText(readOutFile(schedPath), schedPath), schedPath);
  checkReportAgainstSchedule(report, schedule, reportPath);
  return { schedule, report };
}
