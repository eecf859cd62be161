// `check`: the numerical proof that a compiled training step equals the plain model.
// Compiles the model at the given (small) sizes, runs the schedule on the float64 executor in
// several stream interleavings, runs the unchunked forward and backward on the graph
// interpreter (the autodiff graph, before sharding and chunking) with the same seeded weights
// and tokens, and reports the largest relative error of the loss, of every parameter's
// gradient and of every updated parameter. With dp groups, each group trains its own seeded
// sequence and the reference is one rank on the batch of all of them (reference/batch.ts).
// With packed documents (`packed`), each window holds seeded documents of random lengths and
// the reference is the token-weighted sum over its documents, each run on its own by the
// unpacked graph of its length (reference/packed.ts).
// With `accumulate` K, the step runs K windows as `run --accumulate K` does (zero, K micro steps
// each dividing by the labels of all K windows, one update) and the reference is the batch of
// all K windows' sequences: the loss and gradients are the mean over every counted token of the
// K windows (token-weighted, as a K-sequence batch is), not the mean of the windows' means.
// With `schedule` (`--steps N` and run's learning-rate flags), N optimizer steps run on one
// executor memory as `fpdtc run` calls the program, each on new windows at the rate of the run
// loop's schedule function; the reference does N AdamW steps at the rates of its own formulas
// (check-schedule.ts), its moments carried over, each step's gradients from the interpreter at
// the weights the step before left. Losses of every step, the last step's gradients and the
// final weights are compared.
// With `maxGradNorm` (`--clip-grad-norm X`), every update clips by the global gradient norm: the
// executor by the schedule's all-reduced norm and the kernel's formula, the reference by its own
// torch formula (check-update.ts); each step's norm before clipping is compared too.
// The library function behind `fpdtc check`.
import { dpOf, resolveConfig } from './config.js';
import type { ConfigOverrides } from './compile.js';
import { errors, UserError } from './errors.js';
import { buildGraph, loadModel, validateConfig } from './frontend/index.js';
import type { Graph, TrainConfig } from './ir/types.js';
import { numel } from './ir/types.js';
import { runScheduleStages } from './lower/pipeline.js';
import { graphPasses } from './passes/index.js';
import { runGraphPasses } from './passes/pipeline.js';
import { resolveAutoChunk } from './plan.js';
import { clipScale, type ClipScale } from './reference/executor-ops.js';
import { findAdamW, referenceUpdate, withMaxGradNorm, type StepClip } from './check-update.js';
import { executeTraining, prepareExecution, type Order } from './reference/executor.js';
import { stepRates, type CheckedSchedule } from './check-schedule.js';
import type { learningRate } from './train/schedule.js';
import { countLabels } from './reference/cpu-loss.js';
import type { ArenaMode, StepInputs } from './reference/executor-layout.js';
import { concatBatch, interpretBatch } from './reference/batch.js';
import { initParams, randomBatch, type Batch } from './reference/init.js';
import { concatPacked, documentsOf, interpretDocuments, packedBatch, type PackedBatch } from './reference/packed.js';
import type { MemoryPlan } from './schedule/memory.js';
import type { Schedule } from './schedule/types.js';
import type { Model } from './dsl/index.js';

/** Above this the run is not a proof but an accident of rounding. */
export const CHECK_LIMIT = 1e-9;
/** What a CPU can check in float64 in reasonable time and memory. */
export const CPU_LIMITS = { params: 50_000_000, seq: 4096 } as const;

export interface CheckOptions {
  /** seeds weights, tokens and the interleavings (default: the config's seed) */
  readonly seed?: number;
  /** interleavings to run: the first in program order, the others adversarial (default 4) */
  readonly orders?: number;
  /** run the schedule's hazard checker first (default true) */
  readonly verify?: boolean;
  /** planned (default): buffers share bytes as the memory plan says; private: each its own */
  readonly arena?: ArenaMode;
  /** rewrites the schedule before it runs (tests use it to break schedules on purpose) */
  readonly mutate?: (s: Schedule) => Schedule;
  /** rewrites the memory plan the executor places buffers by (tests use it to overlap live buffers on purpose) */
  readonly mutatePlan?: (p: MemoryPlan) => MemoryPlan;
  /** clip by the global gradient norm at this maximum (as `fpdtc run --clip-grad-norm`), in the schedule and the reference */
  readonly maxGradNorm?: number;
  /** the clipping factor the executor's AdamW scales by (default the kernel's formula; tests break it on purpose) */
  readonly clipFn?: ClipScale;
  /** sequence windows per optimizer step, gradients accumulated (as `fpdtc run --accumulate K`; default 1) */
  readonly accumulate?: number;
  /** rewrites the accumulated windows' inputs before they run (tests use it to break the loss scaling on purpose) */
  readonly mutateWindows?: (w: readonly StepInputs[]) => readonly StepInputs[];
  /** optimizer steps at the rates of a learning-rate schedule (as `fpdtc run --steps --lr --warmup --schedule --min-lr`) */
  readonly schedule?: CheckedSchedule;
  /** the schedule function the executor's rates come from (default the run loop's; tests break it on purpose) */
  readonly scheduleFn?: typeof learningRate;
  /** run even when the estimate says it takes longer than CHECK_MAX_SECONDS */
  readonly force?: boolean;
  /** receives a line as each part of a long check finishes (the CLI prints them) */
  readonly onProgress?: (line: string) => void;
  /** report progress when the estimate is at least this (default CHECK_PROGRESS_SECONDS) */
  readonly progressAfterSeconds?: number;
}

/** A check estimated to take longer than this is refused unless forced. */
export const CHECK_MAX_SECONDS = 300;
/** Checks estimated to take at least this long report progress. */
export const CHECK_PROGRESS_SECONDS = 10;

/**
 * CPU seconds per FLOP of one float64 run of the step (the interpreter or one interleaving of
 * the executor), for the two terms of the FLOP convention: 6 * params * tokens and
 * 6 * layers * S^2 * hidden. Fitted on a busy two-core machine with a 344K-parameter Llama
 * at seq 512 to 4096 (4 to 80 s a run); a faster CPU only makes the estimate cautious.
 */
const CHECK_COST = { denseSecondsPerFlop: 2e-9, attentionSecondsPerFlop: 2.7e-9 } as const;

/** Estimated seconds of `check`: the reference run and one run per interleaving. */
export function estimateCheckSeconds(g: Graph, orders: number, accumulate = 1): { seconds: number; flopsPerRun: number } {
  // every data-parallel group runs its own sequence, in each of the accumulated windows
  const groups = dpOf(g.config) * accumulate;
  const seq = g.config.seq;
  const dense = 6 * paramCount(g) * seq * groups;
  const attention = 6 * (g.sizes.L ?? 1) * seq * seq * (g.sizes.D ?? 0) * groups;
  const perRun = dense * CHECK_COST.denseSecondsPerFlop + attention * CHECK_COST.attentionSecondsPerFlop;
  return { seconds: perRun * (orders + 1), flopsPerRun: dense + attention };
}

/** 40 s, 12 min, 5.3 h. */
export function formatDuration(seconds: number): string {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export interface TensorError {
  readonly id: string;
  /** the parameter's external name, when it has one */
  readonly name: string;
  readonly error: number;
}

export interface CheckReport {
  readonly model: string;
  readonly config: TrainConfig;
  readonly orders: readonly Order[];
  readonly loss: { readonly executor: number; readonly reference: number; readonly error: number };
  readonly grads: readonly TensorError[];
  readonly params: readonly TensorError[];
  readonly maxError: number;
  /** the executor's first findings of bytes reused while still in use (see executor.ts) */
  readonly reuseRaces: readonly string[];
  /** windows accumulated into the one optimizer step (1 without accumulation) */
  readonly accumulate: number;
  /** with a schedule: each optimizer step's rate on both sides and its loss's error (worst over the orders) */
  readonly steps?: readonly StepReport[];
  /** with clipping: the maximum norm and each optimizer step's norm before clipping on both sides */
  readonly clip?: { readonly max: number; readonly steps: readonly StepClip[] };
  /** packed documents: how many the windows held (the reference ran each on its own) */
  readonly documents?: number;
  /** packed documents: instructions of one run skipped because their chunks share no document */
  readonly skipped?: number;
  readonly ok: boolean;
  readonly limit: number;
}

export interface StepReport {
  readonly step: number;
  /** the run loop's rate, which the executor trained at */
  readonly lr: number;
  /** the rate of the reference's own formulas */
  readonly referenceLr: number;
  readonly lossError: number;
}

/**
 * Relative error of a tensor: max |a - b| over max |b| (norm-wise, so that entries near zero
 * do not blow up). NaN anywhere is an infinite error.
 */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return Infinity;
    diff = Math.max(diff, d);
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

function paramCount(g: Graph): number {
  return g.params.reduce((n, p) => n + numel(g.values[p].type, g.sizes), 0);
}

/** Refuses sizes a CPU cannot check in float64; one line that says what to change. */
export function checkCpuLimits(g: Graph): void {
  const n = paramCount(g);
  if (n > CPU_LIMITS.params)
    throw new UserError(`${g.name} has ${n} parameters; the float64 check runs on the CPU and takes at most ${CPU_LIMITS.params}: check a small model (e.g. tiny-llama)`);
  if (g.config.seq > CPU_LIMITS.seq) throw new UserError(`seq ${g.config.seq} is too long for the float64 check on the CPU (at most ${CPU_LIMITS.seq}); pass a smaller --seq`);
}

/** The orders to run: program order first, then alternating random and racing ones. */
export function ordersFor(k: number): Order[] {
  return Array.from({ length: Math.max(1, k) }, (_, i) => (i === 0 ? 'program' : i % 2 === 1 ? 'priority' : 'random'));
}

/**
 * The configuration `check` runs at: validated, with `--chunk auto` resolved exactly as
 * `compile` resolves it (plan.ts resolveAutoChunk), so that check proves the step compile writes.
 */
export function checkedConfig(model: Model, config: TrainConfig, path = model.def.name): TrainConfig {
  validateConfig(config, model.def.sizes);
  return resolveAutoChunk((c) => buildGraph(model, c, path), config);
}

/** Checks a loaded model at a resolved config. */
export function checkModel(model: Model, requested: TrainConfig, opts: CheckOptions = {}, path = model.def.name): CheckReport {
  validateConfig(requested, model.def.sizes);
  // refuse what a CPU cannot check before `auto` plans the model at its candidate chunks
  const first = buildGraph(model, requested, path);
  checkCpuLimits(first);
  const config = checkedConfig(model, requested, path);
  const built = config === requested ? first : buildGraph(model, config, path);
  const seed = opts.seed ?? config.seed;
  const passes = graphPasses(config);
  const orders = ordersFor(opts.orders ?? 4);
  const K = opts.accumulate ?? 1;
  if (!Number.isSafeInteger(K) || K < 1) throw errors.badFlag('accumulate', String(K), 'expected a whole number of at least 1');
  // the rates of each optimizer step (undefined: one step at the compiled lr, as the check always ran)
  const rates = opts.schedule ? stepRates(opts.schedule, config.lr, opts.scheduleFn) : undefined;
  const N = rates?.executor.length ?? 1;
  // every optimizer step runs its K windows
  const estimate = estimateCheckSeconds(built, orders.length, K * N);
  if (estimate.seconds > CHECK_MAX_SECONDS && !opts.force)
    throw errors.checkTooSlow(built.name, config.seq, formatDuration(estimate.seconds), orders.length + 1, estimate.flopsPerRun, formatDuration(CHECK_MAX_SECONDS));
  const progress = estimate.seconds >= (opts.progressAfterSeconds ?? CHECK_PROGRESS_SECONDS) ? opts.onProgress : undefined;
  let since = performance.now();
  const lap = () => {
    const t = (performance.now() - since) / 1000;
    since = performance.now();
    return formatDuration(t);
  };
  const runs = N === 1 ? 'the step' : `${N} optimizer steps`;
  progress?.(`check: about ${formatDuration(estimate.seconds)} for ${orders.length + 1} float64 runs of ${runs} (the reference, then ${orders.length} interleaving${orders.length === 1 ? '' : 's'})`);
  const upTo = passes.findIndex((p) => p.name === 'autodiff');
  const refGraph = runGraphPasses(built, passes.slice(0, upTo + 1));
  const lowered = runGraphPasses(built, passes);
  // compile's schedule stages up to the hazard check, the schedule rewritten after sync
  const rewrite = (s: Schedule): Schedule => {
    if (opts.maxGradNorm !== undefined) s = withMaxGradNorm(s, opts.maxGradNorm);
    return opts.mutate ? opts.mutate(s) : s;
  };
  const staged = runScheduleStages(lowered, {
    until: 'hazards',
    skip: opts.verify === false ? ['hazards'] : [],
    after: (stage, st) => (stage === 'sync' ? { ...st, schedule: rewrite(st.schedule!) } : st),
  });
  const s = staged.schedule!;
  const plan = opts.mutatePlan ? opts.mutatePlan(staged.plan!) : staged.plan!;

  const params = initParams(refGraph, seed);
  // one graph per document length, differentiated as the reference graph is (packed windows)
  const graphs = new Map<number, Graph>();
  const graphAt = (n: number) => graphs.get(n) ?? graphs.set(n, runGraphPasses(buildGraph(model, { ...config, seq: n, packed: false }, path), passes.slice(0, upTo + 1))).get(n)!;
  // optimizer step j's windows, seeded apart from the other steps' (j = 0: the step without a schedule)
  const steps = Array.from({ length: N }, (_, j) => stepWindows(config, s.chunk, refGraph, K, seed + 32452843 * j, graphAt));
  const documents = config.packed ? steps.reduce((n, st) => n + st.documents, 0) : undefined;

  // the reference: each step's gradients at the weights the step before left, AdamW's moments carried
  const adamw = findAdamW(s);
  const moments = new Map(refGraph.params.map((p) => [p, { m: new Float64Array(params[p].length), v: new Float64Array(params[p].length) }]));
  // the flag's maximum, not the schedule's attribute that the executor clips by
  const maxGradNorm = opts.maxGradNorm ?? adamw.maxGradNorm;
  let updated: Record<string, Float64Array> = params;
  const refClips: ReturnType<typeof referenceUpdate>['clip'][] = [];
  const refs = steps.map((st, j) => {
    const ref = st.reference(updated);
    const done = referenceUpdate(refGraph, updated, ref.grads, { ...adamw, lr: rates?.reference[j] ?? adamw.lr, maxGradNorm }, j + 1, moments);
    updated = done.params;
    refClips.push(done.clip);
    return ref;
  });
  const ref = refs[N - 1];

  progress?.(`check: reference done in ${lap()}`);

  const prep = prepareExecution(s, plan);
  let lossErr = 0;
  let lossSeen = NaN;
  let lossRef = NaN;
  const stepLossErr = refs.map(() => 0);
  // each step's executor norm farthest from the reference's, and its error
  const stepNorm = refs.map(() => ({ norm: NaN, error: 0 }));
  const gradErr = new Map<string, number>();
  const paramErr = new Map<string, number>();
  const races: string[] = [];
  let skipped = 0;
  const worst = (m: Map<string, number>, id: string, e: number) => m.set(id, Math.max(m.get(id) ?? 0, e));
  orders.forEach((order, k) => {
    const training = steps.map((st, j) => {
      const given = st.micro.map((b): StepInputs => ({ params, ...b, ...(K > 1 ? { labelCount: st.labelCount } : {}) }));
      return { windows: opts.mutateWindows ? opts.mutateWindows(given) : given, lr: rates?.executor[j] };
    });
    const run = executeTraining(prep, training, { order, seed: seed * 7919 + k, arena: opts.arena, clip: opts.clipFn });
    progress?.(`check: interleaving ${k + 1} of ${orders.length} (${order}) done in ${lap()}`);
    if (races.length === 0) races.push(...run.reuseRaces.map((x) => `${order} order: ${x}`));
    skipped = run.skipped;
    run.losses.forEach((ranks, j) => {
      for (const l of ranks) {
        const e = relativeError([l], [refs[j].loss]);
        if (e > lossErr || Number.isNaN(lossSeen)) [lossSeen, lossRef] = [l, refs[j].loss];
        lossErr = Math.max(lossErr, e);
        stepLossErr[j] = Math.max(stepLossErr[j], e);
      }
    });
    run.gradNorms.forEach((ranks, j) => {
      for (const n of ranks) {
        const e = relativeError([n], [refClips[j].norm]);
        if (e > stepNorm[j].error || Number.isNaN(stepNorm[j].norm)) stepNorm[j] = { norm: n, error: e };
      }
    });
    for (const view of run.grads) for (const p of refGraph.params) worst(gradErr, p, relativeError(view[p], ref.grads[p]));
    for (const view of run.params) for (const p of refGraph.params) worst(paramErr, p, relativeError(view[p], updated[p]));
  });
  const list = (m: Map<string, number>) => refGraph.params.map((id) => ({ id, name: refGraph.values[id].name ?? id, error: m.get(id)! }));
  const grads = list(gradErr);
  const upd = list(paramErr);
  const clip = opts.maxGradNorm === undefined ? undefined : clipReport(opts.maxGradNorm, stepNorm, refClips, opts.clipFn ?? clipScale);
  const maxError = Math.max(lossErr, ...grads.map((x) => x.error), ...upd.map((x) => x.error), ...(clip?.steps ?? []).map((x) => x.normError));
  return {
    model: refGraph.name,
    config,
    orders,
    loss: { executor: lossSeen, reference: lossRef, error: lossErr },
    grads,
    params: upd,
    maxError,
    reuseRaces: races,
    accumulate: K,
    ...(rates ? { steps: stepLossErr.map((lossError, j) => ({ step: j + 1, lr: rates.executor[j], referenceLr: rates.reference[j], lossError })) } : {}),
    ...(clip ? { clip } : {}),
    ...(documents !== undefined ? { documents, skipped } : {}),
    ok: maxError <= CHECK_LIMIT,
    limit: CHECK_LIMIT,
  };
}

/** One optimizer step's inputs: its K micro windows as the executor takes them, and the reference on them. */
interface StepWindows {
  readonly micro: readonly (Batch | PackedBatch)[];
  /** every micro step divides by the labels of all K windows, so that their sum is the batch's mean */
  readonly labelCount: number;
  readonly documents: number;
  readonly reference: (params: Readonly<Record<string, Float64Array>>) => ReturnType<typeof interpretBatch>;
}

function stepWindows(config: TrainConfig, chunk: number, refGraph: Graph, K: number, seed: number, graphAt: (n: number) => Graph): StepWindows {
  // micro step k's windows: the dp groups' sequences, seeded apart from the other micro steps' (k = 0: the step without accumulation)
  const microSeed = (k: number) => seed + 15485863 * k;
  if (config.packed) {
    const windows = Array.from({ length: K }, (_, k) => packedWindows(config, chunk, refGraph.sizes.V, microSeed(k)));
    const micro = windows.map(concatPacked);
    const documents = windows.flat().reduce((n, w) => n + documentsOf(w.docs).length, 0);
    return { micro, documents, labelCount: labelsOf(micro), reference: (p) => interpretDocuments(graphAt, windows.flat(), p) };
  }
  const batches = Array.from({ length: K }, (_, k) => groupBatches(config, refGraph.sizes.V, microSeed(k)));
  const micro = batches.map(concatBatch);
  return { micro, documents: 0, labelCount: labelsOf(micro), reference: (p) => interpretBatch(refGraph, batches.flat(), p) };
}

const labelsOf = (micro: readonly (Batch | PackedBatch)[]) => micro.reduce((n, b) => n + countLabels(b.labels), 0);

/** One seeded sequence per dp group; group 0's is the sequence a run without dp checks. */
export function groupBatches(config: TrainConfig, vocab: number, seed: number): Batch[] {
  return Array.from({ length: dpOf(config) }, (_, g) => randomBatch(config.seq, vocab, g === 0 ? seed : seed + 104729 * g));
}

/** One seeded window of packed documents per dp group (reference/packed.ts), cut for the schedule's chunk. */
export function packedWindows(config: TrainConfig, chunk: number, vocab: number, seed: number): PackedBatch[] {
  return Array.from({ length: dpOf(config) }, (_, g) => packedBatch(config.seq, vocab, chunk, config.sp, g === 0 ? seed : seed + 104729 * g));
}

/** Each step's norms before clipping on both sides, and whether each side's clipping acted. */
function clipReport(max: number, executor: readonly { norm: number; error: number }[], reference: readonly { norm: number; clipped: boolean }[], clip: ClipScale): NonNullable<CheckReport['clip']> {
  return {
    max,
    steps: executor.map((x, j) => ({ step: j + 1, norm: x.norm, referenceNorm: reference[j].norm, normError: x.error, clipped: clip(x.norm * x.norm, max) < 1, referenceClipped: reference[j].clipped })),
  };
}

/** Loads a model file (or a name in models/) and checks it at its defaults overridden by `overrides`. */
export async function check(modelPathOrName: string, overrides: ConfigOverrides = {}, opts: CheckOptions & { typeCheck?: boolean } = {}): Promise<CheckReport> {
  const { model, path } = await loadModel(modelPathOrName, { typeCheck: opts.typeCheck ?? false });
  const config = resolveConfig(model.def.train ?? {}, overrides);
  return checkModel(model, config, opts, path);
}
