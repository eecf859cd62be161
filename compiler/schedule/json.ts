// schedule.json and report.json as files a reader can trust. Every read (build, inspect, run)
// goes through here: the JSON schema of docs/schedule-json.md (./json-schema.ts, checked with
// ajv), then what a schema cannot say, in code:
//   1. `world` is `config.sp * config.dp`; `chunk * chunks` is `config.seq`; `layers` is `sizes.L`.
//   2. A buffer's `elems` is the product of its `shape`, its `bytes` what elems, slots and
//      dtype take; buffer ids are unique.
//   3. Two buffers of one space that are live at the same position hold disjoint bytes.
//   4. Every ref names a buffer and stays inside its elements for every value its loop
//      variables take; every affine variable is an enclosing loop's or `r`; every event is declared.
//   5. `hash` is the sha256 of the file's canonical content (so an edited file is not taken
//      for the one a build was made from).
//   6. `memory` comes with every buffer's `offset`, and each placed buffer lies inside its arena.
//   7. `params`: every tensor's shape holds `len` elements and its window lies inside its part's
//      vector, disjoint from the others; `ranks` is `world`; under ZeRO-3 both vectors divide
//      into `ranks` shards; `params.layers` holds `layers` of them (a shard each under ZeRO-3).
//   8. `phases` names top-level items, micro's before update's, and a buffer two phases touch
//      is of a kind kept for the whole step (./phases.ts).
//   9. Every instruction's op is in the catalog (./ops.ts). Whoever reads operands by name
//      checks the rest of the entry (verify.ts, verifyOps: codegen before it renders).
// A failure is one line naming the file and the field.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errors } from '../errors.js';
import type { Report } from '../report.js';
import type { ScheduleJson } from './export-json.js';
import { schemaProblem, SCHEDULE_JSON_FORMAT, SCHEDULE_JSON_VERSION, shown } from './json-schema.js';
import { bufferBytes } from './memory.js';
import { isOpName } from './ops.js';
import { phaseProblem } from './phases.js';
import type { Affine, Item, Ref, Schedule } from './types.js';

/** The IR view of a document, enough for the phase check (buffers keep their extra fields). */
const scheduleFromDoc = (s: ScheduleJson): Schedule => s as unknown as Schedule;

export { SCHEDULE_JSON_FORMAT, SCHEDULE_JSON_VERSION } from './json-schema.js';

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
  if (s.gpuCheckpointLayers !== undefined && s.gpuCheckpointLayers > s.layers) return `gpuCheckpointLayers is ${s.gpuCheckpointLayers}, more than the ${s.layers} layers`;
  if (s.keptActivationLayers !== undefined && s.keptActivationLayers > s.layers) return `keptActivationLayers is ${s.keptActivationLayers}, more than the ${s.layers} layers`;
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
  const phases = phaseProblem(scheduleFromDoc(s));
  if (phases) return `phases: ${phases}`;
  return memoryProblem(s) ?? paramsProblem(s, byId) ?? planOverlap(s) ?? programProblem(s, byId);
}

/** Invariant 6: the arena sizes agree with the placed buffers. */
function memoryProblem(s: ScheduleJson): string | undefined {
  if (!s.memory) return undefined;
  for (const b of s.buffers) {
    if (b.offset === undefined) return `memory is given but buffer '${b.id}' has no offset`;
    const arena = b.space === 'gpu' ? s.memory.gpuBytes : s.memory.hostBytes;
    if (b.offset + b.bytes > arena) return `buffer '${b.id}' [${b.offset}, ${b.offset + b.bytes}) lies outside the ${b.space} arena of ${arena} bytes (memory.${b.space}Bytes)`;
  }
  return undefined;
}

/** Invariant 7: the parameter table describes vectors that the parameter buffers hold. */
function paramsProblem(s: ScheduleJson, buffers: ReadonlyMap<string, ScheduleJson['buffers'][number]>): string | undefined {
  const t = s.params;
  if (!t) return undefined;
  if (t.ranks !== s.world) return `params.ranks is ${t.ranks} but world is ${s.world}`;
  if (t.zero3 && (t.layerElems % t.ranks !== 0 || t.globalElems % t.ranks !== 0)) return `params: layerElems ${t.layerElems} and globalElems ${t.globalElems} must divide into ${t.ranks} shards`;
  const taken: Record<'layers' | 'global', [number, number, string][]> = { layers: [], global: [] };
  for (const [i, p] of t.tensors.entries()) {
    const at = `params.tensors[${i}] ('${p.name}')`;
    if (product(p.shape) !== p.len) return `${at}: len is ${p.len} but shape [${p.shape.join(', ')}] holds ${product(p.shape)}`;
    const size = p.part === 'layers' ? t.layerElems : t.globalElems;
    if (p.offset + p.len > size) return `${at}: elements [${p.offset}, ${p.offset + p.len}) lie outside the ${size} of its part`;
    taken[p.part].push([p.offset, p.offset + p.len, p.name]);
  }
  for (const part of ['layers', 'global'] as const) {
    const xs = taken[part].sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < xs.length; i++) if (xs[i][0] < xs[i - 1][1]) return `params: '${xs[i - 1][2]}' and '${xs[i][2]}' overlap in part ${part}`;
  }
  const shard = (n: number) => (t.zero3 ? n / t.ranks : n);
  const want = { 'params.layers': s.layers * shard(t.layerElems), 'params.global': shard(t.globalElems) };
  for (const [id, n] of Object.entries(want)) {
    const b = buffers.get(id);
    if (b && b.elems !== n) return `buffer '${id}' holds ${b.elems} elements but the parameter table needs ${n}`;
  }
  return undefined;
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
        if (!isOpName(it.op)) return `${here}: op '${it.op}' is not in the catalog (compiler/schedule/ops.ts)`;
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
