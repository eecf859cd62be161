// The JSON schemas of schedule.json and report.json (the fields docs/schedule-json.md lists),
// checked with ajv, and ajv's first complaint turned into one line that names the field.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { DEVICE_NAMES } from './devices.js';
import { STREAMS } from './types.js';

export const SCHEDULE_JSON_FORMAT = 'fpdtc.schedule';
export const SCHEDULE_JSON_VERSION = 4;

// integers past 2^53 are not exact in JavaScript, so none is a count, offset or size
const int = (minimum?: number) => ({ type: 'integer', maximum: Number.MAX_SAFE_INTEGER, ...(minimum === undefined ? {} : { minimum }) });
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
  device: { enum: DEVICE_NAMES },
  hostMemGiB: { type: 'number', exclusiveMinimum: 0 },
  keepAttention: { anyOf: [int(0), { const: 'auto' }] },
  keepForm: { enum: ['all', 'outputs'] },
  gpuCheckpoints: { anyOf: [int(0), { const: 'auto' }] },
  keepActivations: { anyOf: [int(0), { const: 'auto' }] },
  stashes: { enum: ['host', 'gpu'] },
  optimizer: { enum: ['gpu', 'host'] },
  packed: { type: 'boolean' },
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

const paramTensorSchema = object(['value', 'name', 'shape', 'part', 'offset', 'len', 'init'], {
  value: str,
  name: str,
  shape: { type: 'array', items: int(1) },
  part: { enum: ['layers', 'global'] },
  offset: int(0),
  len: int(1),
  init: object(['kind', 'std'], { kind: { enum: ['normal', 'ones', 'zeros'] }, std: num(0) }),
});
const paramTableSchema = object(['tensors', 'layerElems', 'globalElems', 'zero3', 'ranks'], {
  tensors: { type: 'array', items: paramTensorSchema },
  layerElems: int(0),
  globalElems: int(0),
  zero3: { type: 'boolean' },
  ranks: int(1),
});
const memorySchema = object(['gpuBytes', 'hostBytes', 'commScratchBytes', 'commLibraryBytes'], {
  gpuBytes: int(0),
  hostBytes: int(0),
  commScratchBytes: int(0),
  commLibraryBytes: int(0),
});

const ropeScalingSchema = object(['type', 'factor', 'lowFreqFactor', 'highFreqFactor', 'originalMaxPositions'], {
  type: { const: 'llama3' },
  factor: num(0),
  lowFreqFactor: num(0),
  highFreqFactor: num(0),
  originalMaxPositions: int(1),
});
const architectureSchema = object(['ops', 'ropeThetas', 'rotaryDims', 'ropeScalings', 'normEps', 'tied'], {
  ops: strings,
  ropeThetas: { type: 'array', items: num(0) },
  rotaryDims: { type: 'array', items: int(1) },
  ropeScalings: { type: 'array', items: { anyOf: [{ type: 'null' }, ropeScalingSchema] } },
  normEps: { type: 'array', items: num(0) },
  tied: { type: 'boolean' },
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
    keptForm: { enum: ['all', 'outputs'] },
    gpuCheckpointLayers: int(0),
    keptActivationLayers: int(0),
    gpuStashes: { type: 'boolean' },
    params: paramTableSchema,
    phases: object(['micro', 'update'], { micro: str, update: str }),
    memory: memorySchema,
    architecture: architectureSchema,
    streams: { const: STREAMS },
    buffers: { type: 'array', items: bufferSchema },
    // one event per slot or chunk window: far below this
    events: mapOf({ ...int(1), maximum: 1 << 24 }),
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
  kept_attention_form: { enum: ['all', 'outputs'] },
  gpu_checkpoint_layers: int(0),
  kept_activation_layers: int(0),
  device: str,
  fits: { type: 'boolean' },
  advice: str,
  peak_gpu_bytes: num(0),
  peak_host_bytes: num(0),
  gpu_budget_bytes: num(0),
  host_budget_bytes: num(0),
  ranks: { type: 'array', items: { type: 'object' } },
  predicted_step_s: num(0),
  attention_pricing: str,
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

/** What is wrong with a parsed file by its schema, as one phrase; undefined when nothing is. */
export function schemaProblem(which: 'schedule' | 'report', doc: unknown): string | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return `the file holds ${shown(doc)}, not a JSON object`;
  const v = validator(which);
  return v(doc) ? undefined : describe(v.errors![0], doc);
}
