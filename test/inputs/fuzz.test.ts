// A seeded fuzzer over the files fpdtc reads: safetensors headers, token files and the fields of
// schedule.json and report.json. Every mutated file is either read or refused with one line and
// a non-zero exit code, never "internal error" and never a stack. It calls the library functions
// (a process per file would take minutes); the CLI checks below tie them to the command's output.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkReportDoc, scheduleHash } from '../../compiler/schedule/json.js';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { readScheduleJson, scheduleFromJson, stringifySchedule } from '../../compiler/schedule/export-json.js';
import { summarizeSchedule } from '../../compiler/schedule/summary.js';
import { planMemory } from '../../compiler/schedule/memory.js';
import { SafetensorsReader, writeSafetensors } from '../../runtime/safetensors.js';
import { checkTokenFile } from '../../runtime/tokens.js';
import { runCli } from '../cli/run-cli.js';
import { fpdtLike } from '../schedule/fixtures.js';
import { expectOneLine, printed } from './helpers.js';

/** mulberry32: seeded, so that a failure names a case that reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const ODD_VALUES: Json[] = [null, true, false, 0, -1, -3, 1, 2.5, 1e300, -1e300, 2 ** 53, '', 'x', 'F64', 'I32', 'bf16', [], [1], [-1, 5], [0, 1e20], [1, 2, 3], {}, { c: 0 }, { c: 0, t: { zz: 1 } }];

/** Every path into a JSON value: ['buffers', 3, 'elems'], ... */
function paths(x: Json, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (at.length) out.push(at);
  if (Array.isArray(x)) x.forEach((v, i) => paths(v, [...at, i], out));
  else if (x !== null && typeof x === 'object') for (const [k, v] of Object.entries(x)) paths(v, [...at, k], out);
  return out;
}

/** `doc` with the value at a random path replaced by an odd value, or removed. */
function mutate(doc: Json, r: () => number, pick: <T>(xs: readonly T[]) => T): Json {
  const copy = JSON.parse(JSON.stringify(doc)) as Json;
  const all = paths(copy);
  const path = pick(all);
  let parent = copy as Record<string | number, Json>;
  for (const p of path.slice(0, -1)) parent = parent[p] as Record<string | number, Json>;
  const last = path[path.length - 1];
  if (r() < 0.15 && !Array.isArray(parent)) delete parent[last];
  else parent[last] = pick(ODD_VALUES);
  return copy;
}

/** Runs `read`; an error must print as one line, and the outcome is counted. */
async function outcome(read: () => Promise<unknown> | unknown, context: string): Promise<'read' | 'refused'> {
  try {
    await read();
    return 'read';
  } catch (e) {
    expectOneLine(printed(e), context);
    return 'refused';
  }
}

describe('fuzzing the files fpdtc reads (seeded)', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'fpdtc-fuzz-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('safetensors headers: 250 mutated files', async () => {
    const r = rng(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
    const base = join(root, 'base.safetensors');
    await writeSafetensors(base, [
      { name: 'w', dtype: 'F32', shape: [4, 4], data: Float32Array.from({ length: 16 }, (_, i) => i) },
      { name: 'b', dtype: 'BF16', shape: [8], data: new Float32Array(8).fill(1) },
      { name: 'n', dtype: 'F16', shape: [2, 3], data: new Float32Array(6).fill(2) },
    ], { format: 'pt' });
    const bytes = new Uint8Array(readFileSync(base));
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString('utf8')) as Json;
    const data = bytes.subarray(8 + headerLength);
    const fileOf = (h: string | Uint8Array, body: Uint8Array = data, length?: bigint) => {
      const hb = typeof h === 'string' ? Buffer.from(h) : h;
      const out = new Uint8Array(8 + hb.length + body.length);
      new DataView(out.buffer).setBigUint64(0, length ?? BigInt(hb.length), true);
      out.set(hb, 8);
      out.set(body, 8 + hb.length);
      return out;
    };
    const counts = { read: 0, refused: 0 };
    for (let k = 0; k < 250; k++) {
      const kind = k % 5;
      let file: Uint8Array;
      if (kind <= 1) file = fileOf(JSON.stringify(mutate(header, r, pick)));
      else if (kind === 2) file = bytes.subarray(0, Math.floor(r() * bytes.length));
      else if (kind === 3) {
        file = bytes.slice();
        for (let f = 0; f < 1 + Math.floor(r() * 4); f++) file[8 + Math.floor(r() * headerLength)] = Math.floor(r() * 256);
      } else file = fileOf(JSON.stringify(header), data, pick([0n, 1n, BigInt(headerLength - 1), BigInt(headerLength + 9), 2n ** 62n, BigInt(bytes.length)]));
      const path = join(root, `st-${k}.safetensors`);
      writeFileSync(path, file);
      counts[await outcome(async () => {
        const reader = await SafetensorsReader.open(path);
        try {
          for (const name of reader.names()) await reader.readF32(name);
        } finally {
          await reader.close();
        }
      }, `safetensors case ${k}`)]++;
    }
    expect(counts.refused).to.be.above(100);
  });

  it('token files: 200 mutated .bin and .npy files', async () => {
    const r = rng(11);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
    const ids = Uint32Array.from({ length: 300 }, (_, i) => i % 64);
    const header = "{'descr': '<u4', 'fortran_order': False, 'shape': (300,), }".padEnd(117, ' ') + '\n';
    const npyHead = new Uint8Array(10 + header.length);
    npyHead.set([0x93, ...Buffer.from('NUMPY'), 1, 0]);
    new DataView(npyHead.buffer).setUint16(8, header.length, true);
    npyHead.set(Buffer.from(header, 'latin1'), 10);
    const bin = new Uint8Array(ids.buffer);
    const npy = Buffer.concat([npyHead, bin]);
    const counts = { read: 0, refused: 0 };
    for (let k = 0; k < 200; k++) {
      const asNpy = k % 2 === 1;
      let file = new Uint8Array(asNpy ? npy : bin);
      switch (Math.floor(r() * 5)) {
        case 0: // cut short, or bytes after the end
          file = r() < 0.5 ? file.subarray(0, Math.floor(r() * file.length)) : Buffer.concat([file, new Uint8Array(1 + Math.floor(r() * 9))]);
          break;
        case 1: // ids out of range
          for (let f = 0; f < 3; f++) new DataView(file.buffer, file.byteOffset).setUint32((asNpy ? npyHead.length : 0) + 4 * Math.floor(r() * 300), Math.floor(r() * 2 ** 32), true);
          break;
        case 2: // the header's fields
          file = Buffer.concat([Buffer.from(npyHead).map((b, i) => (i >= 10 && r() < 0.05 ? pick([...Buffer.from("()',:-0123456789abcdefxyz<>uif")]) : b)), bin]);
          break;
        case 3: // text
          file = Buffer.from(pick(['hello world\n', 'ids: 1 2 3 4\n', '{"tokens": [1, 2, 3]}\n', 'ünïcödé tëxt\n']).repeat(1 + Math.floor(r() * 100)));
          break;
        default: // random bytes
          file = Uint8Array.from({ length: Math.floor(r() * 2000) }, () => Math.floor(r() * 256));
      }
      const path = join(root, `tokens-${k}.${asNpy ? 'npy' : 'bin'}`);
      writeFileSync(path, file);
      counts[await outcome(() => checkTokenFile(path, { seq: 96, vocab: 64, steps: 3 }), `token case ${k}`)]++;
    }
    expect(counts.refused).to.be.above(100);
  });

  it('schedule.json and report.json fields: 300 mutated documents', async () => {
    const r = rng(13);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
    const s = fpdtLike({ layers: 2 });
    const doc = JSON.parse(stringifySchedule(s, planMemory(s, deviceProfile('h200')))) as Json & Record<string, Json>;
    readScheduleJson(JSON.stringify(doc)); // the unmutated document reads
    const counts = { read: 0, refused: 0, staleRefused: 0 };
    for (let k = 0; k < 220; k++) {
      const m = mutate(doc, r, pick) as Record<string, Json>;
      // most keep a matching hash, so the schema and the checks in code are what refuses them
      const restamp = k % 5 !== 0;
      if (restamp && m && typeof m === 'object') m.hash = scheduleHash(m);
      const text = JSON.stringify(m);
      // what inspect does with a schedule it read: plan its memory and simulate a step
      const got = await outcome(() => summarizeSchedule(scheduleFromJson(readScheduleJson(text, `fuzz/schedule-${k}.json`)), deviceProfile('h200')), `schedule case ${k}`);
      counts[got]++;
      if (!restamp && JSON.stringify(m) !== JSON.stringify(doc)) {
        expect(got, `schedule case ${k} kept its old hash`).to.equal('refused');
        counts.staleRefused++;
      }
    }
    const report = { model: 'fpdt-like', params: 1e6, tokens: 4096, layers: 2, hidden: 256, flops_per_step: 1e12, config: s.config, fits: true } as unknown as Json;
    for (let k = 0; k < 80; k++) counts[await outcome(() => checkReportDoc(mutate(report, r, pick), `fuzz/report-${k}.json`), `report case ${k}`)]++;
    expect(counts.refused).to.be.above(150);
    expect(counts.staleRefused).to.be.above(30);
  });

  it('the command prints what the library says: inspect of a damaged schedule', function () {
    this.timeout(30000);
    const dir = join(root, 'out-x');
    const s = fpdtLike({ layers: 2 });
    const doc = JSON.parse(stringifySchedule(s)) as Record<string, Json>;
    (doc.buffers as Record<string, Json>[])[0].slots = 'two';
    doc.hash = scheduleHash(doc);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'schedule.json'), JSON.stringify(doc));
    writeFileSync(join(dir, 'report.json'), JSON.stringify({ model: s.model, params: 1, tokens: s.config.seq, layers: 2, hidden: 256, config: s.config }));
    const r = runCli(['inspect', dir]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal(`${dir}/schedule.json: error: buffers[0].slots is "two", expected integer; compile the model again (fpdtc compile)\n`);
  });
});
