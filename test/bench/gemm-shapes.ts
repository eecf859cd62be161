// The distinct GEMMs one training step of a compiled program runs, as JSON, for test/bench/gemm.py on
// the GPU machine (no Node there):
//   npx fpdtc compile models/llama1b.ts --seq 65536 --chunk 16384 --out /tmp/x
//   npx tsx test/bench/gemm-shapes.ts /tmp/x/llama1b test/bench/gemm-shapes-llama1b-64k.json
// Each GEMM is read back from the call the host program itself makes: the instruction is rendered by
// codegen/host-ops.ts and the arguments of its fpdt_gemm_bf16(...) are parsed, so transposes, m, n,
// k, leading dimensions, beta and output type are the program's own (pointers are dropped). `count` is
// how many times one step (zero, one micro step, update) issues it, every loop unrolled; with
// gradient accumulation the micro step's GEMMs run K times.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { arenasOf } from '../../compiler/codegen/host-c.js';
import { hostCalls } from '../../compiler/codegen/host-ops.js';
import { readScheduleJson, scheduleFromJson, type ScheduleJson } from '../../compiler/schedule/export-json.js';
import type { Instr, Ref } from '../../compiler/schedule/types.js';
import { unroll } from '../../compiler/schedule/unroll.js';

const GEMM_OPS = new Set(['linear', 'linear_dx', 'linear_dx_add', 'linear_dw']);
const ARGS = ['gemm', 'stream', 'transA', 'transB', 'm', 'n', 'k', 'alpha', 'a', 'lda', 'b', 'ldb', 'beta', 'c', 'ldc', 'out'] as const;

export interface GemmShape {
  readonly transA: number;
  readonly transB: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly lda: number;
  readonly ldb: number;
  readonly ldc: number;
  readonly alpha: number;
  readonly beta: number;
  readonly out: 'bf16' | 'fp32';
}

export interface GemmUse {
  readonly op: string;
  /** the parameter tensor the GEMM reads (linear, linear_dx) or whose gradient it writes (linear_dw) */
  readonly weight: string;
  readonly instrs: string[];
  count: number;
}

export interface GemmShapeCount extends GemmShape {
  readonly key: string;
  count: number;
  readonly flops: number;
  readonly uses: GemmUse[];
}

/** The arguments of the first `name(...)` call in C text, split at top-level commas. */
export function callArgs(text: string, name: string): string[] {
  const at = text.indexOf(`${name}(`);
  if (at < 0) throw new Error(`no ${name}( in: ${text}`);
  const args: string[] = [];
  let depth = 0;
  let start = at + name.length + 1;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (ch === '(') depth++;
    else if (ch === ')' && depth > 0) depth--;
    else if ((ch === ',' || ch === ')') && depth === 0) {
      args.push(text.slice(start, i).trim());
      if (ch === ')') return args;
      start = i + 1;
    }
  }
  throw new Error(`unbalanced ${name}( in: ${text}`);
}

const number = (s: string, what: string): number => {
  const x = Number(s.replace(/f$/, ''));
  if (!Number.isFinite(x)) throw new Error(`fpdt_gemm_bf16 argument ${what} is not a number: '${s}'`);
  return x;
};

/** The GEMM of one host call `fpdt_gemm_bf16(...)`, pointers dropped. */
export function gemmOfCall(call: string): GemmShape {
  const a = callArgs(call, 'fpdt_gemm_bf16');
  if (a.length !== ARGS.length) throw new Error(`fpdt_gemm_bf16 takes ${ARGS.length} arguments, the call has ${a.length}: ${call}`);
  const v = Object.fromEntries(ARGS.map((name, i) => [name, a[i]])) as Record<(typeof ARGS)[number], string>;
  const out = v.out === 'FPDT_GEMM_OUT_F32' ? 'fp32' : v.out === 'FPDT_GEMM_OUT_BF16' ? 'bf16' : undefined;
  if (!out) throw new Error(`fpdt_gemm_bf16 output type '${v.out}' is unknown`);
  const n = (k: (typeof ARGS)[number]) => number(v[k], k);
  return { transA: n('transA'), transB: n('transB'), m: n('m'), n: n('n'), k: n('k'), lda: n('lda'), ldb: n('ldb'), ldc: n('ldc'), alpha: n('alpha'), beta: n('beta'), out };
}

const shapeKey = (g: GemmShape): string =>
  `${g.transA ? 'T' : 'N'}${g.transB ? 'T' : 'N'} m=${g.m} n=${g.n} k=${g.k} lda=${g.lda} ldb=${g.ldb} ldc=${g.ldc} beta=${g.beta} ${g.out}`;

/** The parameter tensor a window of a gathered or gradient buffer holds, by its offset and length. */
function weightName(s: ScheduleJson, ref: Ref): string {
  const t = s.params?.tensors.find((x) => x.offset === ref.off.c && x.len === ref.len);
  return t ? t.value.replace(/^layers\./, '') : ref.buf;
}

/** Every GEMM one step issues, grouped by shape, most step FLOPs first. */
export function gemmShapes(s: ScheduleJson): GemmShapeCount[] {
  const ir = scheduleFromJson(s);
  const ar = arenasOf(ir.buffers, { placements: s.buffers.map((b) => ({ buf: b.id, offset: b.offset ?? 0 })) });
  const perInstr = new Map<string, { instr: Instr; count: number }>();
  for (const it of unroll(ir)) {
    if (it.kind !== 'instr' || !GEMM_OPS.has(it.item.op)) continue;
    const seen = perInstr.get(it.item.id);
    if (seen) seen.count++;
    else perInstr.set(it.item.id, { instr: it.item, count: 1 });
  }
  const shapes = new Map<string, GemmShapeCount>();
  for (const { instr, count } of perInstr.values()) {
    const calls = hostCalls(instr, { ar, sizes: s.sizes, world: s.world }).filter((c) => c.includes('fpdt_gemm_bf16('));
    if (calls.length !== 1) throw new Error(`${instr.op} ${instr.id} renders ${calls.length} GEMM calls, not one`);
    const g = gemmOfCall(calls[0]);
    const key = shapeKey(g);
    let row = shapes.get(key);
    if (!row) shapes.set(key, (row = { key, ...g, count: 0, flops: 2 * g.m * g.n * g.k, uses: [] }));
    row.count += count;
    const weight = weightName(s, instr.op === 'linear_dw' ? instr.writes[0] : instr.reads[1]);
    let use = row.uses.find((u) => u.op === instr.op && u.weight === weight);
    if (!use) row.uses.push((use = { op: instr.op, weight, instrs: [], count: 0 }));
    use.instrs.push(instr.id);
    use.count += count;
  }
  return [...shapes.values()].sort((a, b) => b.count * b.flops - a.count * a.flops || a.key.localeCompare(b.key));
}

/** The shapes file gemm.py reads. */
export function gemmShapesDoc(s: ScheduleJson, predictedStepSeconds?: number) {
  const shapes = gemmShapes(s);
  return {
    format: 'fpdtc.gemm-shapes',
    version: 1,
    model: s.model,
    config: s.config,
    scheduleHash: s.hash,
    ...(predictedStepSeconds !== undefined ? { predictedStepSeconds } : {}),
    calls: shapes.reduce((n, x) => n + x.count, 0),
    flops: shapes.reduce((n, x) => n + x.count * x.flops, 0),
    shapes,
  };
}

function main(argv: readonly string[]): void {
  const [dir, outFile] = argv;
  if (!dir) throw new Error('usage: npx tsx test/bench/gemm-shapes.ts <compiled out/<model> folder> [out.json]');
  const schedPath = join(dir, 'schedule.json');
  const s = readScheduleJson(readFileSync(schedPath, 'utf8'), schedPath);
  const reportPath = join(dir, 'report.json');
  const predicted = existsSync(reportPath) ? (JSON.parse(readFileSync(reportPath, 'utf8')) as { predicted_step_s?: number }).predicted_step_s : undefined;
  const text = JSON.stringify(gemmShapesDoc(s, predicted), null, 1) + '\n';
  if (outFile) writeFileSync(outFile, text);
  else process.stdout.write(text);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
