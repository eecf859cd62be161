// The body of fpdt_step: the schedule's items in issue order as C. Loops stay C for-loops,
// events are entries of one flat cudaEvent_t array, each instruction is the calls HOST_OPS
// (host-ops.ts) gives its op, every call checked so that a failure names the instruction.
import { DOCUMENTS_MEET, type Affine, type Instr, type Item, type Schedule } from '../schedule/types.js';
import { affineC, modC, refC, type Arenas } from './host-c.js';
import { isOp, readsOf, writesOf } from '../schedule/ops.js';
import { hostCalls, STATUS_CALLS } from './host-ops.js';

const STREAM_INDEX: Record<string, number> = { compute: 0, h2d: 1, d2h: 2, comm: 3 };

/** Where each event array starts in the flat array, and the total. */
export function eventLayout(events: Readonly<Record<string, number>>): { base: Map<string, number>; total: number } {
  const base = new Map<string, number>();
  let total = 0;
  for (const [name, n] of Object.entries(events)) {
    base.set(name, total);
    total += n;
  }
  return { base, total };
}

const refKey = (r: Instr['reads'][number]) => JSON.stringify([r.buf, r.off, r.slot ?? null]);

/**
 * The loss window each cross_entropy_bwd sums into: that of the cross_entropy reading the same
 * logits earlier in the same loop body (the lowering keeps the loss loop whole).
 */
export function pairLossInstrs(body: readonly Item[], out = new Map<string, string>(), ar?: Arenas): Map<string, string> {
  const fwd = new Map<string, Instr & { readonly op: 'cross_entropy' }>();
  for (const it of body) {
    if (it.kind === 'loop') pairLossInstrs(it.body, out, ar);
    else if (it.kind === 'instr' && isOp(it, 'cross_entropy')) fwd.set(refKey(readsOf(it).logits), it);
    else if (it.kind === 'instr' && isOp(it, 'cross_entropy_bwd')) {
      const twin = fwd.get(refKey(readsOf(it).logits));
      if (twin && ar) out.set(it.id, refC(ar, writesOf(twin).loss));
    }
  }
  return out;
}

export interface BodyCtx {
  readonly schedule: Schedule;
  readonly ar: Arenas;
  readonly eventBase: ReadonlyMap<string, number>;
  readonly loss: ReadonlyMap<string, string>;
  /** op name -> its index in the program's profile table (FPDT_PROFILE=1 times ops by name) */
  readonly profOps: ReadonlyMap<string, number>;
  /** each instruction's index in tracedInstrs: the `instr` of its trace events (fpdt_trace) */
  readonly traceIndex: ReadonlyMap<Instr, number>;
}

/** The ops of a schedule in first-appearance order: the rows of the program's profile. */
export function profileOps(items: readonly Item[], out = new Map<string, number>()): Map<string, number> {
  for (const it of items) {
    if (it.kind === 'loop') profileOps(it.body, out);
    else if (it.kind === 'instr' && !out.has(it.op)) out.set(it.op, out.size);
  }
  return out;
}

/**
 * The schedule's instructions in program order, each once (a loop's body once, whatever its trip
 * count): the program's table of traced instructions. A trace event names its instruction by its
 * index here; events come in issue order, so walking the loops recovers each one's iteration.
 */
export function tracedInstrs(items: readonly Item[], out: Instr[] = []): Instr[] {
  for (const it of items) {
    if (it.kind === 'loop') tracedInstrs(it.body, out);
    else if (it.kind === 'instr') out.push(it);
  }
  return out;
}

function eventC(c: BodyCtx, event: string, index: Affine | undefined): string {
  const base = c.eventBase.get(event);
  if (base === undefined) throw new Error(`host codegen: event ${event} is not declared`);
  const n = c.schedule.events[event];
  return index ? `p->events[${base} + ${modC(index, n, c.ar.rank)}]` : `p->events[${base}]`;
}

function instrC(c: BodyCtx, it: Instr): string[] {
  const calls = hostCalls(it, { ar: c.ar, sizes: c.schedule.sizes, world: c.schedule.world, lossRef: c.loss.get(it.id) });
  const where = `${it.id} ${it.op}`;
  let checked = calls.map((call) => (STATUS_CALLS.some((f) => call.startsWith(f + '(')) ? `FPDT_TRY(${call});` : `FPDT_CK(${call}, "${where}");`));
  // packed documents: a block's transfers and kernels run only where its chunks share a document
  if (it.attrs[DOCUMENTS_MEET] === true) {
    const { docsQ, docsKv } = it.args ?? {};
    if (!docsQ || !docsKv) throw new Error(`host codegen: ${where} is conditional on documents but names no chunks`);
    checked = [`if (fpdt_docs_meet(p, ${affineC(docsQ, c.ar.rank)}, ${affineC(docsKv, c.ar.rank)})) { ${checked.join(' ')} }`];
  }
  // timed between two events on its stream when the program profiles or traces (FPDT_PROFILE=1, config trace)
  const k = c.profOps.get(it.op)!;
  const s = STREAM_INDEX[it.stream];
  const n = c.traceIndex.get(it);
  if (n === undefined) throw new Error(`host codegen: instruction ${it.id} is not in the trace table`);
  return [`FPDT_PROF(${s}, ${k}, ${n}, 0);`, ...checked, `FPDT_PROF(${s}, ${k}, ${n}, 1);`];
}

/** C lines for a list of items, indented by `depth`. */
export function bodyC(c: BodyCtx, items: readonly Item[], depth = 1): string[] {
  const pad = '  '.repeat(depth);
  const lines: string[] = [];
  for (const it of items) {
    if (it.kind === 'instr') {
      for (const l of instrC(c, it)) lines.push(pad + l);
    } else if (it.kind !== 'loop') {
      const e = eventC(c, it.event, it.index);
      const s = `p->s[${STREAM_INDEX[it.stream]}]`;
      lines.push(`${pad}FPDT_CK(${it.kind === 'record' ? `cudaEventRecord(${e}, ${s})` : `cudaStreamWaitEvent(${s}, ${e}, 0)`}, "${it.id}");`);
    } else {
      const v = it.var;
      const head = it.reverse
        ? `for (int64_t ${v} = ${affineC(it.to, c.ar.rank)} - 1; ${v} >= ${affineC(it.from, c.ar.rank)}; --${v})`
        : `for (int64_t ${v} = ${affineC(it.from, c.ar.rank)}; ${v} < ${affineC(it.to, c.ar.rank)}; ++${v})`;
      lines.push(`${pad}${head} {  // ${it.id} ${it.role}`);
      lines.push(...bodyC(c, it.body, depth + 1));
      lines.push(`${pad}}`);
    }
  }
  return lines;
}
