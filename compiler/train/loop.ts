// The training loop behind `fpdtc run`: load the built addon, set weights and tokens, step,
// and print per-step loss, step time, tokens/s, MFU and planned vs measured GPU memory.
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DistEnv } from '../../runtime/dist-env.js';
import { loadAddon } from '../../runtime/load.js';
import { RuntimeError, runtimeErrors } from '../../runtime/errors.js';
import { reportStartPhase, type StartPhase } from '../../runtime/launcher.js';
import { joinWorld } from '../../runtime/rendezvous.js';
import { openTokenSource, windowIndex } from '../../runtime/tokens.js';
import { errors, UserError } from '../errors.js';
import { formatStep, mfu, packedFlopsPerWindow, scheduleFlopsPerStep, type StepFigures } from './report.js';
import { RankSet } from './ranks.js';
import { learningRate, type ScheduleOptions } from './schedule.js';
import { checkResumable, readTrainerState, restoreCheckpoint, saveCheckpoint, type CheckpointTarget, type TrainerState } from './checkpoint.js';
import { loadWeights, saveGathered } from './weights.js';
import { writeFileAtomic } from '../atomic-write.js';
import { readScheduleJson, scheduleFromJson } from '../schedule/export-json.js';
import { copyExposureLine, measuredTraceText } from './measured-trace.js';
import { accumulatedStep, countedLabels, defaultLabelCount, microWindow, type MicroWindow } from './accumulate.js';
import { PackedData, type DocumentFlags } from './packed-data.js';
import { StopRequest } from './stop-request.js';
import type { AgreedStop } from '../../runtime/stop-agreement.js';

/** The schedule flags; the peak is --lr or the compiled lr. */
export type LrSchedule = Omit<ScheduleOptions, 'peak'>;

export interface RunOptions {
  dir: string;
  steps: number;
  tokens?: string;
  weights?: string;
  save?: string;
  dumpGrads?: string;
  lr?: number;
  /** --warmup, --schedule, --min-lr, --total-steps; without it the rate stays the compiled one */
  schedule?: LrSchedule;
  /** --metrics: one JSON line per step, appended by rank 0 */
  metrics?: string;
  /** --seed: the token windows in a seeded order */
  seed?: number;
  /** --betas, --eps, --weight-decay: AdamW's settings (default: the compiled ones) */
  optimizer?: { beta1?: number; beta2?: number; eps?: number; weight_decay?: number; max_grad_norm?: number };
  /** --save-every N --checkpoint-dir DIR --keep-checkpoints K */
  checkpoints?: CheckpointTarget & { every: number };
  /** --resume: a checkpoint folder (resolved); the run continues after its step */
  resume?: string;
  /** the command line, kept in each checkpoint */
  argv?: string[];
  /** --trace: the last step's measured timeline as a Chrome trace (rank 0; every rank of a local world) */
  trace?: string;
  /** --accumulate: windows (of each dp group) per optimizer step, gradients accumulated (default 1) */
  accumulate?: number;
  /** the local backend: this many ranks in this process on one GPU */
  ranksPerGpu?: number;
  /** the NCCL backend: this process's place in the world (see runtime/dist-env.ts) */
  dist?: DistEnv;
  /** a packed program's document boundaries and loss mask (--eod-token, --documents, --loss-mask) */
  documents?: DocumentFlags;
  log: (line: string) => void;
}

const definedOnly = <T extends object>(x: T) => Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined));

/** What a run needs to know about the model beyond the program: from schedule.json. */
interface RunFacts {
  model: string;
  /** tokens of one sequence */
  tokens: number;
  flops_per_step: number;
  config: { seed?: number; lr: number };
}

/** The addon that `fpdtc build` produced under <dir>/build. */
export function findBuiltAddon(dir: string): string {
  const walk = (d: string): string | undefined => {
    if (!existsSync(d)) return undefined;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isFile() && e.name.endsWith('.node')) return join(d, e.name);
      if (e.isDirectory() && e.name !== 'CMakeFiles') {
        const f = walk(join(d, e.name));
        if (f) return f;
      }
    }
    return undefined;
  };
  const found = walk(join(dir, 'build'));
  if (!found) throw new UserError(`no built addon under ${dir}/build; run 'fpdtc build ${dir}' first`);
  return found;
}

/**
 * Seeded tokens in [0, vocab): a fixed LCG, so runs without --tokens are reproducible. Each step
 * has its own stream (seed and step mixed into the start), so a run makes one step's tokens at
 * a time; step 0 is the stream of `seed` alone.
 */
export function randomTokens(n: number, vocab: number, seed: number, step = 0): Int32Array {
  const out = new Int32Array(n);
  let x = (((seed * 2654435761) >>> 0) ^ (Math.imul(step, 0x85ebca6b) >>> 0)) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x % vocab;
  }
  return out;
}

/**
 * Where step k's window of `seq` tokens starts in a file of `length` tokens (windows wrap): in
 * order, or with `shuffle` (--seed) in that seed's order of the same windows.
 */
export function tokenWindowStart(length: number, seq: number, k: number, shuffle?: number): number {
  const windows = Math.floor(length / seq);
  if (windows < 1) throw new UserError(`the token file holds ${length} tokens; one step needs ${seq}`);
  return windowIndex(k, windows, shuffle) * seq;
}

/** Step k's tokens: its window of the token file, read for this step alone, or seeded random tokens. */
export async function stepTokens(file: string | undefined, seq: number, vocab: number, seed: number, k: number, shuffle?: number): Promise<Int32Array> {
  if (!file) return randomTokens(seq, vocab, seed, k);
  const f = await openTokenSource(file);
  try {
    const start = tokenWindowStart(f.length, seq, k, shuffle);
    const ids = await f.read(start, seq);
    const bad = ids.findIndex((id) => id >= vocab);
    if (bad >= 0) throw runtimeErrors.tokenNotInVocab(file, start + bad, ids[bad], vocab);
    return ids;
  } finally {
    await f.close();
  }
}

/**
 * Step k's batch with dp groups: group g trains window dp*k + g, the groups' sequences one after
 * another (as the program's fpdt_set_tokens takes them). With one group, step k's window.
 */
export async function stepBatch(file: string | undefined, seq: number, vocab: number, seed: number, k: number, dp: number, shuffle?: number): Promise<Int32Array> {
  if (dp === 1) return stepTokens(file, seq, vocab, seed, k, shuffle);
  const out = new Int32Array(dp * seq);
  for (let g = 0; g < dp; g++) out.set(await stepTokens(file, seq, vocab, seed, dp * k + g, shuffle), g * seq);
  return out;
}

/** How a compiled world is named in messages: `sp 2`, or `dp 2 x sp 2 (4 ranks)`. */
const worldName = (world: number, dp: number) => (dp > 1 ? `dp ${dp} x sp ${world / dp} (${world} ranks)` : `sp ${world}`);

const asUserError = (e: unknown): unknown => (e instanceof RuntimeError ? new UserError(e.message.split('\n')[0]) : e);

/** The ranks of this process: one program, a local world, or this process's NCCL rank. */
export async function openRanks(dir: string, world: number, config: Record<string, unknown>, o: Pick<RunOptions, 'ranksPerGpu' | 'dist'>, dp = 1): Promise<RankSet> {
  // the world is dp groups of sp ranks; every rank is one program, whichever its group
  const compiled = worldName(world, dp);
  const other = dp > 1 ? 'with other --dp and --sp' : `with --sp ${o.ranksPerGpu ?? o.dist?.world}`;
  if (o.ranksPerGpu !== undefined && o.ranksPerGpu !== world) throw new UserError(`${dir} is compiled for ${compiled}: run it with --ranks-per-gpu ${world}, or compile ${other}`);
  if (o.dist && o.dist.world !== world) throw new UserError(`${dir} is compiled for ${compiled} and started as ${o.dist.world} processes; start ${world} (--gpus ${world}) or compile ${other}`);
  if (o.ranksPerGpu === undefined && !o.dist && world !== 1) throw new UserError(`${dir} is compiled for ${compiled}: run it with --gpus ${world} (one process per GPU) or --ranks-per-gpu ${world} (one GPU)`);
  const d = o.dist;
  // Each start phase goes to the launcher (which names a rank that stalls or dies, and where)
  // and, with FPDTC_DEBUG=1, to stderr as a trace of how far this rank's start got.
  const phase = (p: StartPhase) => {
    if (!d) return;
    reportStartPhase(p);
    if (process.env.FPDTC_DEBUG) process.stderr.write(`rank ${d.rank}/${d.world} (GPU ${d.localRank}): start phase ${p}${p === 'nccl-id' ? ` (rank 0 at ${d.masterAddr}:${d.masterPort})` : ''}\n`);
  };
  phase('addon');
  const addon = loadAddon(findBuiltAddon(dir));
  if (o.ranksPerGpu !== undefined) return RankSet.local(addon, world, config);
  if (d) {
    // ncclCommInitRank cannot be cancelled and the thread running it keeps this process alive:
    // print the one line and leave (the launcher stops the other ranks).
    const leave = (e: RuntimeError) => {
      process.stderr.write(new UserError(e.message).line() + '\n');
      process.exit(1);
    };
    const comm = await joinWorld(addon, d, { onPhase: phase, onStuck: leave });
    phase('program');
    let ranks: RankSet;
    try {
      ranks = RankSet.nccl(addon, d.rank, d.world, comm, config);
    } catch (e) {
      addon.native.ncclDestroy(comm);
      throw e;
    }
    phase('ready');
    return ranks;
  }
  return RankSet.single(addon, config);
}

/**
 * FPDTC_DEBUG=1: after each step, the norm of this rank's shard of one parameter's gradient and
 * how far the shard moved in the step, so a step whose update does not land shows at once.
 */
function updateWatch(p: RankSet['programs'][number]): () => string {
  // the smallest shard this rank holds: cheap to read back every step
  const info = p.params().filter((x) => x.shardLength > 0).sort((a, b) => a.shardLength - b.shardLength)[0];
  if (!info) return () => 'holds no parameter shard';
  const norm = (a: Float32Array, b?: Float32Array) => Math.sqrt(a.reduce((n, x, i) => n + (x - (b ? b[i] : 0)) ** 2, 0));
  let before = p.getParam(info.index);
  return () => {
    const now = p.getParam(info.index);
    const line = `${info.name} [${info.shardOffset}, +${info.shardLength}): |grad| ${norm(p.getGrad(info.index)).toExponential(3)}, |update| ${norm(now, before).toExponential(3)}, |w| ${norm(now).toExponential(3)}`;
    before = now;
    return line;
  };
}

/** One --metrics line: a step's figures as JSON, appended (and so on disk) before the next step starts. */
export function metricsLine(f: StepFigures, lr: number, now = new Date()): string {
  return JSON.stringify({
    step: f.step, loss: f.loss, lr, ...(f.gradNorm === undefined ? {} : { grad_norm: f.gradNorm }), tokens: f.tokens, step_ms: f.ms, tokens_per_s: f.tokens / (f.ms / 1e3), mfu: f.mfu,
    peak_gpu_bytes: f.peakGpu, planned_gpu_bytes: f.plannedGpu, time: now.toISOString(),
  });
}

/** The line printed every 30 s inside a long step: how long it has run, and, after a first step, about how long is left. */
export function stepProgress(step: number, elapsedMs: number, meanStepMs?: number): string {
  const left = meanStepMs === undefined ? '' : meanStepMs > elapsedMs ? ` of about ${formatDuration(meanStepMs)} (${formatDuration(meanStepMs - elapsedMs)} left)` : ` (longer than the mean ${formatDuration(meanStepMs)} so far)`;
  return `  step ${step}: running, ${formatDuration(elapsedMs)}${left}`;
}

/** 42 s, 3m 05s, 2h 07m: an ETA as people read one. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
}

/** --dump-grads with `{step}` in the path writes every step's gradients, the step number put in. */
export const perStep = (path: string) => path.includes('{step}');
export const stepPath = (path: string, step: number) => path.replaceAll('{step}', String(step));

/** The number of tokens a token file holds (its data position is relative to it). */
async function tokenCount(file: string): Promise<number> {
  const f = await openTokenSource(file);
  try {
    return f.length;
  } finally {
    await f.close();
  }
}

/** What a run stopped by a signal prints last (it exits 0: the checkpoint is complete). */
export function stoppedLine(s: AgreedStop, ranksAsProcesses: boolean, step: number, ckpt: string): string {
  return `stopped   by ${s.signal}${ranksAsProcesses ? ` (to rank ${s.rank})` : ''} after step ${step}; continue with --resume ${ckpt}`;
}

export async function runTraining(o: RunOptions): Promise<StepFigures[]> {
  // the schedule is all a run reads about the model (checked: schema, hash, invariants)
  const schedPath = join(o.dir, 'schedule.json');
  const sched = readScheduleJson(readFileSync(schedPath, 'utf8'), schedPath);
  const report: RunFacts = { model: sched.model, tokens: sched.config.seq, flops_per_step: scheduleFlopsPerStep(sched), config: { seed: sched.config.seed, lr: sched.config.lr } };
  const sizes = sched.sizes;
  // dp groups each train their own sequence of report.tokens: a step takes dp windows, K times
  const dp = sched.config.dp ?? 1;
  const K = o.accumulate ?? 1;
  if (K > 1 && !sched.phases) throw errors.outFileInvalid(join(o.dir, 'schedule.json'), 'it has no phases, so it cannot accumulate gradients');
  let ranks: RankSet;
  try {
    ranks = await openRanks(o.dir, sched.world, { seed: report.config.seed ?? 0, ...(o.lr !== undefined ? { lr: o.lr } : {}), ...definedOnly(o.optimizer ?? {}), ...(o.trace ? { trace: 1 } : {}) }, o, dp);
  } catch (e) {
    throw asUserError(e);
  }
  const lead = ranks.programs[0];
  // the model's FLOPs are spread over the GPUs of an NCCL world; a local world shares one GPU
  const gpus = ranks.backend === 'nccl' ? ranks.world : 1;
  const writer = !o.dist || o.dist.rank === 0;
  const log = (l: string) => (writer ? o.log(l) : undefined);
  const figures: StepFigures[] = [];
  let stop: StopRequest | undefined;
  let packed: PackedData | undefined;
  try {
    if (sched.config.packed) {
      packed = await PackedData.open(o.dir, o.tokens, o.documents ?? {});
      log(`documents ${packed.describe}`);
    }
    if (ranks.world > 1) log(`ranks     ${ranks.world}${dp > 1 ? ` (dp ${dp} x sp ${ranks.world / dp}, a sequence per group)` : ''} (${ranks.backend === 'local' ? 'local backend, one GPU' : 'NCCL, one process per GPU'})`);
    const identity = { model: report.model, schedule_hash: sched.hash, world: sched.world, dp, seq: report.tokens, tokens: { length: o.tokens ? await tokenCount(o.tokens) : null, seed: o.seed ?? null }, accumulate: K };
    let first = 0;
    if (o.resume) {
      const saved = readTrainerState(o.resume);
      checkResumable(o.resume, saved, identity);
      await restoreCheckpoint(ranks, o.dist, o.resume, saved, o.dir);
      first = saved.step;
      log(`resumed   from ${o.resume} after step ${first} (weights, AdamW moments, step count)`);
    } else if (o.weights) log(`weights   ${await loadWeights(ranks, o.weights, o.dir)} tensors from ${o.weights}`);
    else log(`weights   seeded random init (seed ${report.config.seed ?? 0})`);
    // SIGTERM/SIGINT: every rank saves after the same step, then exits 0 (./stop-request.ts)
    stop = o.checkpoints ? new StopRequest(o.dist) : undefined;
    const watch = process.env.FPDTC_DEBUG ? updateWatch(lead) : undefined;
    const schedule: ScheduleOptions = { peak: o.lr ?? report.config.lr, ...(o.schedule ?? { warmup: 0, kind: 'constant', minLr: 0, totalSteps: o.steps }) };
    const metrics = writer ? o.metrics : undefined;
    let totalMs = 0;
    if (K > 1) log(`accumulate ${K} windows${dp > 1 ? ` of each of the ${dp} groups` : ''} per optimizer step: loss and gradients are the mean over all their tokens`);
    for (let k = first; k < o.steps; k++) {
      const windows: MicroWindow[] = [];
      for (let j = 0; j < K; j++) {
        const at = microWindow(k, j, K);
        const batch = await stepBatch(o.tokens, report.tokens, sizes.V, report.config.seed ?? 0, at, dp, o.seed);
        if (packed) {
          // packed documents: ids, positions and labels that stop at each document's end
          const w = await packed.step(batch, report.tokens, at, dp, o.seed);
          windows.push({ labels: countedLabels(w.labels, sizes.V), flops: packedFlopsPerWindow(sched, w.docs), load: () => (ranks.setDocuments(w.positions, w.docs), ranks.setTokens(batch, w.labels)) });
        } else windows.push({ labels: defaultLabelCount(report.tokens, dp), flops: report.flops_per_step * dp, load: () => ranks.setTokens(batch) });
      }
      // the rate of optimizer step k + 1, whatever K: the schedule counts updates
      const lr = learningRate(k + 1, schedule);
      for (const p of ranks.programs) p.setLearningRate(lr);
      const started = Date.now();
      const progress = setInterval(() => log(stepProgress(k + 1, Date.now() - started, figures.length ? totalMs / figures.length : undefined)), 30_000);
      let loss: number;
      let stepMs: number;
      try {
        const lastMs = () => lead.timings().find((t) => t.name === 'step')?.ms ?? NaN;
        ({ loss, ms: stepMs } = await accumulatedStep(ranks, windows, lastMs));
      } finally {
        clearInterval(progress);
      }
      if (watch) process.stderr.write(`rank ${o.dist?.rank ?? 0}: step ${k + 1} ${watch()}\n`);
      const timings = lead.timings();
      const ms = Number.isFinite(stepMs) ? stepMs : Date.now() - started;
      const a2a = timings.find((t) => t.name === 'all_to_all');
      const a2aMB = timings.find((t) => t.name === 'all_to_all_MB');
      if (a2a && a2aMB && a2a.ms > 0) log(`  all-to-all  ${a2a.ms.toFixed(1)} ms of the step on rank 0, ${(a2aMB.ms / a2a.ms).toFixed(1)} GB/s (bytes exchanged / time inside)`);
      // FPDT_PROFILE=1: each op's time on its stream, largest first (streams overlap, so these sum past the step)
      const ops = timings.filter((t) => t.name.startsWith('op:') && t.ms > 0).sort((a, b) => b.ms - a.ms);
      if (ops.length) log(`  op time     ${ops.slice(0, 12).map((t) => `${t.name.slice(3)} ${t.ms.toFixed(1)} ms`).join(', ')}`);
      const mem = lead.memory();
      // the model FLOPs count one sequence; a step trains dp * K of them
      const f: StepFigures = { step: k + 1, loss, gradNorm: lead.gradNorm(), ms, tokens: report.tokens * dp * K, mfu: mfu(windows.reduce((n, w) => n + w.flops, 0) / gpus, ms), plannedGpu: mem.plannedGpu, peakGpu: mem.peakGpuMeasured };
      figures.push(f);
      totalMs += ms;
      stop?.stepTook(ms);
      // on a terminal the line also says when the run should end: steps left at the mean step time
      const eta = process.stdout.isTTY && k + 1 < o.steps ? `  ETA ${formatDuration(((o.steps - k - 1) * totalMs) / (k + 1 - first))}` : '';
      log(`${formatStep(f)}  lr ${lr.toExponential(3)}${eta}`);
      if (metrics) appendFileSync(metrics, metricsLine(f, lr) + '\n');
      if (o.dumpGrads && perStep(o.dumpGrads) && (await saveGathered(ranks, o.dist, { grads: stepPath(o.dumpGrads, k + 1) }, { outDir: o.dir, weights: o.weights }))) log(`saved     gradients to ${stepPath(o.dumpGrads, k + 1)}`);
      const ck = o.checkpoints;
      const stopNow = await stop?.agree(k + 1);
      if (ck && ((k + 1) % ck.every === 0 || k + 1 === o.steps || stopNow)) {
        const state: TrainerState = {
          format: 'fpdtc checkpoint', version: 1, step: k + 1, ...identity, weights: ck.weights,
          lr: { ...schedule }, optimizer: { ...definedOnly(o.optimizer ?? {}) }, loss,
          rng: 'none at run time: the data order is a function of the step and --seed', time: new Date().toISOString(), flags: o.argv ?? [],
        };
        const saved = await saveCheckpoint(ranks, o.dist, state, ck);
        if (saved) log(`saved     checkpoint ${saved}`);
        if (stopNow) {
          log(stoppedLine(stopNow, ranks.backend === 'nccl', k + 1, saved ?? ck.dir));
          return figures;
        }
      }
    }
    const lastGrads = o.dumpGrads && !perStep(o.dumpGrads) ? o.dumpGrads : undefined;
    if (await saveGathered(ranks, o.dist, { params: o.save, grads: lastGrads }, { outDir: o.dir, weights: o.weights })) {
      if (o.save) log(`saved     weights to ${o.save}`);
      if (lastGrads) log(`saved     gradients to ${lastGrads}`);
    }
    const last = figures.at(-1);
    if (o.trace && writer && last) {
      // the programs traced every step (config trace); the events of the last one are still there
      const traced = ranks.programs.map((p, i) => ({ rank: (o.dist?.rank ?? 0) + i, events: p.trace() }));
      const s = scheduleFromJson(sched);
      writeFileAtomic(o.trace, measuredTraceText(s, traced, { model: report.model, step: last.step, date: new Date().toISOString(), stepMs: last.ms }));
      log(`trace     step ${last.step} as measured to ${o.trace} (beside the predicted ${join(o.dir, 'trace.json')})`);
      if (traced[0]) log(`  copies    ${copyExposureLine(traced[0]).replace(/^copies /, '')}; fpdtc inspect ${o.dir} --measured ${o.trace} compares each op kind`);
    }
  } catch (e) {
    throw asUserError(e);
  } finally {
    stop?.dispose();
    await packed?.close();
    ranks.destroy();
  }
  return figures;
}
