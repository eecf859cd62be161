// A float64 CPU executor of the schedule IR: every virtual rank runs the same program, with
// its streams as separate queues, events as real dependencies and collectives across ranks,
// over arenas laid out by the memory plan. One call runs one training step, AdamW included:
// of one window, or (`executeSteps`) of K windows accumulated as `run --accumulate K` issues
// them: zero and the first micro step, the micro steps between, the last micro step and the
// update, every stream drained between two calls as the GPU program joins them.
//
// Interleaving: at each step a scheduler picks one (rank, stream) whose next instruction may
// run (events allow it; a collective when every rank's comm stream has reached it). Records
// and satisfied waits are taken as soon as they reach the head of their queue, which only
// widens the set of orders. `program` runs instructions in issue order (the sequential
// meaning); `random` picks uniformly; `priority` lets some streams race ahead of others, so
// that a consumer with a missing wait runs long before its producer. With the plan's freed
// bytes poisoned, a missing wait, a wrong slot or an overlap of live buffers gives NaN or a
// wrong number, not a lucky right one.
import type { MemoryPlan } from '../schedule/memory.js';
import { byName } from '../schedule/ops.js';
import { phaseBodies } from '../schedule/phases.js';
import { DOCUMENTS_MEET, evalAff, STREAMS, type Schedule } from '../schedule/types.js';
import { documentsMeet, type DocumentsMeet } from './documents-meet.js';
import type { DynInstr } from '../schedule/unroll.js';
import { COLLECTIVES, runSpannedCollective } from './executor-collectives.js';
import { bufferHomes, layoutOf, loadRank, loadWindow, RankMemory, unpackState, type ArenaMode, type BufferHome, type ParamLayout, type StepInputs } from './executor-layout.js';
import { runOp, type ClipScale } from './executor-ops.js';
import { buildRankProgram, itemPositions, type QueuedItem, type RankProgram } from './executor-program.js';
import { Rng } from './rng.js';

export type Order = 'program' | 'random' | 'priority';

export interface ExecuteOptions {
  readonly order?: Order;
  /** seeds the interleaving (random and priority orders) */
  readonly seed?: number;
  /** NaN over a buffer's bytes when the plan frees them (default true) */
  readonly poison?: boolean;
  /** planned (default): buffers share bytes as the memory plan says; private: each its own */
  readonly arena?: ArenaMode;
  /** AdamW step number, 1-based (default 1) */
  readonly step?: number;
  /** the step's learning rate, as the run loop sets it on the program (default: the schedule's compiled lr) */
  readonly lr?: number;
  /** the clipping factor of the AdamW rule (default clipScale, the kernel's formula; tests break it on purpose) */
  readonly clip?: ClipScale;
  /** sees every instruction's outputs as it runs (per rank; a collective once per rank) */
  readonly watch?: (rank: number, d: DynInstr, ins: readonly Float64Array[], outs: readonly Float64Array[]) => void;
}

export interface StepResult {
  /** io.loss of every rank after the step */
  readonly loss: readonly number[];
  /** gradients and updated parameters per tensor: one view under ZeRO-3, one per rank without */
  readonly grads: readonly Record<string, Float64Array>[];
  readonly params: readonly Record<string, Float64Array>[];
  /** instructions run, over all ranks */
  readonly instructions: number;
  /** packed documents: instructions skipped because their chunks share no document (DOCUMENTS_MEET) */
  readonly skipped: number;
  /**
   * Writes into bytes the plan also gave to another buffer whose accesses were not all done
   * yet (first few): the plan reuses bytes that streams still use. Planned arenas only.
   */
  readonly reuseRaces: readonly string[];
}

/** What does not depend on the order: the unrolled programs of all ranks. */
export interface Prepared {
  readonly schedule: Schedule;
  readonly plan: MemoryPlan;
  readonly layout: ParamLayout;
  /** the whole step (zero, micro, update) of every rank */
  readonly programs: readonly RankProgram[];
  /** the calls of an accumulated step, made when first needed: 'first' (zero + micro), 'middle' (micro), 'last' (micro + update) */
  readonly calls: Map<Call, readonly RankProgram[]>;
}

type Call = 'first' | 'middle' | 'last';

/** The parameter layout comes from the schedule's table, like everything else the executor runs. */
export function prepareExecution(s: Schedule, plan: MemoryPlan): Prepared {
  const programs = Array.from({ length: s.world }, (_, r) => buildRankProgram(s, plan, r, COLLECTIVES));
  return { schedule: s, plan, layout: layoutOf(s), programs, calls: new Map() };
}

/** The rank programs of one call of an accumulated step: a run of the phases, as its own program. */
function callPrograms(prep: Prepared, call: Call): readonly RankProgram[] {
  const have = prep.calls.get(call);
  if (have) return have;
  const p = phaseBodies(prep.schedule);
  const body = call === 'first' ? [...p.zero, ...p.micro] : call === 'middle' ? p.micro : [...p.micro, ...p.update];
  const s = { ...prep.schedule, body };
  const positions = itemPositions(prep.schedule.body);
  const made = Array.from({ length: s.world }, (_, r) => buildRankProgram(s, prep.plan, r, COLLECTIVES, positions));
  prep.calls.set(call, made);
  return made;
}

interface RankState {
  readonly prog: RankProgram;
  readonly mem: RankMemory;
  readonly heads: number[];
  readonly recorded: Uint8Array;
  readonly pending: Int32Array;
  readonly started: Uint8Array;
  /** buffer -> its instance that ran last */
  readonly current: Map<string, number>;
}

interface Candidate {
  readonly rank: number;
  readonly stream: number;
  readonly item: QueuedItem;
}

export class DeadlockError extends Error {}

export function executeStep(prep: Prepared, inputs: StepInputs, opts: ExecuteOptions = {}): StepResult {
  return executeSteps(prep, [inputs], opts);
}

/**
 * One optimizer step over K windows (each the sequences of every dp group), gradients
 * accumulated: the parameters come from the first window's inputs, each window's tokens and
 * labels go in before its micro step, and `loss` is the sum of the micro steps' losses (each
 * divided by the window's `labelCount`, the count over all K for the batch's mean). One window
 * runs the whole step as one program.
 */
export function executeSteps(prep: Prepared, windows: readonly StepInputs[], opts: ExecuteOptions = {}): StepResult {
  if (windows.length === 0) throw new Error('executor: no window to run');
  const ranks = startRanks(prep, windows[0], opts);
  const done = optimizerStep(prep, ranks, windows, opts);
  return finishRanks(prep, ranks, done.loss, done.instructions, done.skipped);
}

/** One optimizer step of a run: its windows and the learning rate the run loop sets for it. */
export interface TrainingStep {
  readonly windows: readonly StepInputs[];
  /** absent: the schedule's compiled lr */
  readonly lr?: number;
}

export interface TrainingResult extends StepResult {
  /** io.loss of every rank, per optimizer step */
  readonly losses: readonly (readonly number[])[];
  /** the gradient norm before clipping of every rank, per optimizer step: sqrt(io.gradsq), as Program.gradNorm reads it */
  readonly gradNorms: readonly (readonly number[])[];
}

/**
 * Optimizer steps 1..N on one memory, as `fpdtc run` calls the program: parameters and AdamW
 * moments carry from step to step, step k updates with AdamW step number k and its own lr.
 * The parameters come from the first step's first window; `grads` are the last step's.
 */
export function executeTraining(prep: Prepared, steps: readonly TrainingStep[], opts: ExecuteOptions = {}): TrainingResult {
  if (steps.length === 0 || steps[0].windows.length === 0) throw new Error('executor: no step to run');
  const ranks = startRanks(prep, steps[0].windows[0], opts);
  const losses: number[][] = [];
  const gradNorms: number[][] = [];
  let instructions = 0;
  let skipped = 0;
  steps.forEach((st, j) => {
    // step 1 interleaves as a single step does; later steps their own orders
    const done = optimizerStep(prep, ranks, st.windows, { ...opts, step: j + 1, lr: st.lr, seed: (opts.seed ?? 1) + 104723 * j });
    losses.push(done.loss);
    gradNorms.push(ranks.mems.map((m) => Math.sqrt(m.read(m.whole('io.gradsq'))[0])));
    instructions += done.instructions;
    skipped += done.skipped;
  });
  return { ...finishRanks(prep, ranks, losses[losses.length - 1], instructions, skipped), losses, gradNorms };
}

/** Every rank's memory with the model state loaded, and what the race finder needs across calls. */
interface Ranks {
  readonly mems: readonly RankMemory[];
  readonly sharing: ReadonlyMap<string, string[]>;
  readonly reuseRaces: string[];
}

function startRanks(prep: Prepared, first: StepInputs, opts: ExecuteOptions): Ranks {
  const homes = bufferHomes(prep.schedule, prep.plan, opts.arena);
  const mems = prep.programs.map((prog) => {
    const mem = new RankMemory(homes);
    loadRank(mem, prep.schedule, prep.layout, first, prog.rank);
    return mem;
  });
  return { mems, sharing: opts.arena === 'private' ? new Map<string, string[]>() : sharedBytes(homes), reuseRaces: [] };
}

/** Runs the calls of one optimizer step, each window loaded before its micro step; the summed loss per rank. */
function optimizerStep(prep: Prepared, ranks: Ranks, windows: readonly StepInputs[], opts: ExecuteOptions): { loss: number[]; instructions: number; skipped: number } {
  const s = prep.schedule;
  if (windows.length === 0) throw new Error('executor: no window to run');
  if (windows.length > 1 && !s.phases) throw new Error('executor: the schedule has no phases, so it cannot accumulate windows');
  const { mems } = ranks;
  const loss = mems.map(() => 0);
  let instructions = 0;
  const skipped = { count: 0 };
  windows.forEach((w, k) => {
    mems.forEach((m, r) => loadWindow(m, s, w, r));
    const K = windows.length;
    const programs = K === 1 ? prep.programs : callPrograms(prep, k === 0 ? 'first' : k === K - 1 ? 'last' : 'middle');
    // each call its own interleavings
    instructions += runPrograms(programs, mems, ranks.sharing, ranks.reuseRaces, { ...opts, seed: (opts.seed ?? 1) + 7907 * k }, documentsMeet(s, w), skipped);
    mems.forEach((m, r) => (loss[r] += m.read(m.whole('io.loss'))[0]));
  });
  return { loss, instructions, skipped: skipped.count };
}

function finishRanks(prep: Prepared, ranks: Ranks, loss: readonly number[], instructions: number, skipped: number): StepResult {
  const { mems } = ranks;
  return {
    loss,
    grads: unpackState(mems, prep.schedule, prep.layout, 'grads'),
    params: unpackState(mems, prep.schedule, prep.layout, 'params'),
    instructions,
    skipped,
    reuseRaces: ranks.reuseRaces,
  };
}

/** Runs one program on every rank's memory until every stream of every rank is done; the instructions run. */
function runPrograms(programs: readonly RankProgram[], mems: readonly RankMemory[], sharing: ReadonlyMap<string, string[]>, reuseRaces: string[], opts: ExecuteOptions, meets?: DocumentsMeet, skipped = { count: 0 }): number {
  const ranks: RankState[] = programs.map((prog, r) => ({
    prog, mem: mems[r], heads: STREAMS.map(() => 0), recorded: new Uint8Array(prog.size), pending: Int32Array.from(prog.instances, (x) => x.accesses), started: new Uint8Array(prog.instances.length), current: new Map(),
  }));
  const pick = picker(opts.order ?? 'program', opts.seed ?? 1, ranks.length);
  const poison = opts.poison !== false;
  const optimizer = { step: opts.step ?? 1, lr: opts.lr, clip: opts.clip };
  let instructions = 0;

  const finish = (st: RankState, q: QueuedItem, ran = true) => {
    const d = q.dyn as DynInstr;
    for (const w of ran ? d.writes : [])
      for (const other of sharing.get(w.buf) ?? []) {
        const id = st.current.get(other);
        if (id !== undefined && st.pending[id] > 0 && reuseRaces.length < 5)
          reuseRaces.push(`rank ${st.prog.rank}: ${where(d)} writes ${w.buf} over bytes of ${other}, which ${st.pending[id]} more access(es) still use`);
      }
    for (const id of q.instances) {
      st.started[id] = 1;
      const inst = st.prog.instances[id];
      st.current.set(inst.buf, id);
      if (--st.pending[id] === 0 && poison && (inst.next < 0 || !st.started[inst.next])) st.mem.poison(inst.buf);
    }
  };
  for (;;) {
    const cands = candidates(ranks);
    if (cands.length === 0) {
      if (ranks.every((st) => st.heads.every((h, k) => h >= st.prog.queues[k].length))) break;
      throw new DeadlockError(`executor: no stream can run: ${describeHeads(ranks)}`);
    }
    const c = pick(cands);
    const d = c.item.dyn as DynInstr;
    if (c.item.collective >= 0) {
      const comm = STREAMS.indexOf('comm');
      const items = ranks.map((st) => st.prog.queues[comm][st.heads[comm]]);
      // each rank's instance of the collective, its operands by name
      const ops = items.map((q) => {
        const di = q.dyn as DynInstr;
        return { src: byName(di.item, 'reads', di.reads).src, dst: byName(di.item, 'writes', di.writes).dst };
      });
      const ins = ops.map((o, r) => ranks[r].mem.read(o.src));
      const outs = runSpannedCollective(d.item, ins);
      items.forEach((q, r) => {
        ranks[r].mem.write(ops[r].dst, outs[r]);
        opts.watch?.(r, q.dyn as DynInstr, [ins[r]], [outs[r]]);
        ranks[r].heads[comm]++;
        finish(ranks[r], q);
      });
      instructions += ranks.length;
      continue;
    }
    const st = ranks[c.rank];
    // packed documents: skipped as the program skips it, its accesses done without happening
    if (d.item.attrs[DOCUMENTS_MEET] === true && meets && !meets(st.prog.rank, evalAff(d.item.args!.docsQ, d.env), evalAff(d.item.args!.docsKv, d.env))) {
      st.heads[c.stream]++;
      finish(st, c.item, false);
      skipped.count++;
      continue;
    }
    const ins = d.reads.map((r) => st.mem.read(r));
    const outs = runOp(d.item, d.env, ins, (k) => st.mem.read(d.writes[k]), optimizer);
    outs.forEach((x, k) => st.mem.write(d.writes[k], x));
    opts.watch?.(c.rank, d, ins, outs);
    st.heads[c.stream]++;
    finish(st, c.item);
    instructions++;
  }
  return instructions;
}

/** Takes records and satisfied waits off the head of a queue; returns the instruction left there. */
function settle(st: RankState, k: number): QueuedItem | undefined {
  const q = st.prog.queues[k];
  while (st.heads[k] < q.length) {
    const it = q[st.heads[k]];
    if (it.dyn.kind === 'instr') return it;
    if (it.dyn.kind === 'record') st.recorded[it.dyn.seq] = 1;
    else if (it.bound >= 0 && !st.recorded[it.bound]) return undefined;
    st.heads[k]++;
  }
  return undefined;
}

function candidates(ranks: readonly RankState[]): Candidate[] {
  // settle until nothing moves: a record taken on one stream may release a wait on another
  let heads: (QueuedItem | undefined)[][];
  for (;;) {
    const before = ranks.map((st) => st.heads.join());
    heads = ranks.map((st) => STREAMS.map((_, k) => settle(st, k)));
    if (ranks.every((st, r) => st.heads.join() === before[r])) break;
  }
  const comm = STREAMS.indexOf('comm');
  const out: Candidate[] = [];
  ranks.forEach((_, r) =>
    heads[r].forEach((item, k) => {
      if (!item) return;
      if (item.collective < 0) out.push({ rank: r, stream: k, item });
      // a collective is one candidate, offered by rank 0, once every rank has reached it
      else if (r === 0 && heads.every((h) => h[comm]?.collective === item.collective)) out.push({ rank: r, stream: k, item });
    }),
  );
  return out;
}

function picker(order: Order, seed: number, world: number): (c: readonly Candidate[]) => Candidate {
  if (order === 'program') return (c) => c.reduce((a, b) => (b.item.dyn.seq < a.item.dyn.seq || (b.item.dyn.seq === a.item.dyn.seq && b.rank < a.rank) ? b : a));
  const rng = new Rng(seed);
  if (order === 'random') return (c) => c[rng.int(c.length)];
  // priority: each (rank, stream) has a rank in a random permutation, reshuffled now and then
  const prio = Array.from({ length: world * STREAMS.length }, () => rng.uniform());
  return (c) => {
    if (rng.uniform() < 0.01) prio[rng.int(prio.length)] = rng.uniform();
    return c.reduce((a, b) => (prio[b.rank * STREAMS.length + b.stream] > prio[a.rank * STREAMS.length + a.stream] ? b : a));
  };
}

function describeHeads(ranks: readonly RankState[]): string {
  const parts: string[] = [];
  ranks.forEach((st, r) =>
    STREAMS.forEach((name, k) => {
      const it = st.prog.queues[k][st.heads[k]];
      if (!it) return;
      const what = it.dyn.kind === 'instr' ? `${it.dyn.item.op} ${it.dyn.item.id}` : `${it.dyn.kind} ${it.dyn.key}`;
      parts.push(`rank ${r} ${name} at ${what}`);
    }),
  );
  return parts.join('; ');
}

/** Buffers whose planned bytes overlap, per buffer. */
function sharedBytes(homes: ReadonlyMap<string, BufferHome>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const list = [...homes.values()];
  for (const a of list)
    for (const b of list)
      if (a !== b && a.space === b.space && a.cell < b.cell + b.cells && b.cell < a.cell + a.cells) out.set(a.buf.id, [...(out.get(a.buf.id) ?? []), b.buf.id]);
  return out;
}

function where(d: DynInstr): string {
  const env = Object.entries(d.env).filter(([k]) => k !== 'r').map(([k, v]) => `${k}=${v}`).join(' ');
  return `${d.item.id} (${d.item.stream}: ${d.item.op}${env ? ` at ${env}` : ''})`;
}
