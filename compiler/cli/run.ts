// `fpdtc run out/<name> --steps N`: loads the built addon and trains; the work is in
// compiler/train/, this file parses flags and picks the ranks: one GPU, a local world
// (--ranks-per-gpu N), or one process per GPU over NCCL (--gpus N starts them here; under
// torchrun, srun or mpirun the launcher environment says which rank this process is).
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { readBuildRecord } from '../../runtime/build.js';
import { parseDistEnv } from '../../runtime/dist-env.js';
import { launch } from '../../runtime/launcher.js';
import { RuntimeError } from '../../runtime/errors.js';
import { checkTokenFile } from '../../runtime/tokens.js';
import { errors, UserError } from '../errors.js';
import { readCompiledOut } from '../schedule/json.js';
import { checkResumable, readTrainerState, resolveCheckpoint } from '../train/checkpoint.js';
import { llamaProblem, readModelFacts } from '../train/hf-config.js';
import { runTraining, perStep, type LrSchedule } from '../train/loop.js';
import type { DocumentFlags } from '../train/packed-data.js';
import { openTokenSource } from '../../runtime/tokens.js';
import { SCHEDULE_KINDS, type ScheduleKind } from '../train/schedule.js';
import { checkDocumentFlags, documentFlags } from './run-documents.js';
import { checkWeightPaths } from '../train/weights.js';

export interface RunFlags {
  steps: string;
  tokens?: string;
  weights?: string;
  save?: string;
  dumpGrads?: string;
  lr?: string;
  warmup?: string;
  schedule?: string;
  minLr?: string;
  totalSteps?: string;
  metrics?: string;
  trace?: string;
  seed?: string;
  betas?: string;
  eps?: string;
  weightDecay?: string;
  clipGradNorm?: string;
  accumulate?: string;
  saveEvery?: string;
  checkpointDir?: string;
  keepCheckpoints?: string;
  resume?: string;
  gpus?: string;
  ranksPerGpu?: string;
  eodToken?: string;
  documents?: string;
  lossMask?: string;
}

// Number() also reads '0x10', '1e3', '0b1' and '' (as 0): counts are written in decimal digits only.
const wholeDecimal = (text: string): number => (/^\d+$/.test(text) ? Number(text) : NaN);

function count(name: string, text: string | undefined, expected = 'a whole number, at least 1'): number | undefined {
  if (text === undefined) return undefined;
  const n = wholeDecimal(text);
  if (!Number.isSafeInteger(n) || n < 1) throw errors.badFlag(name, text, expected);
  return n;
}

/** A decimal without a sign (3e-4, .5, 10); NaN for anything else. */
const nonNegative = (text: string): number => (/^(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? Number(text) : NaN);

/** A learning rate as people write one: 3e-4, 0.0003, 1E-5; finite and not negative. */
export function learningRate(text: string | undefined, flag = 'lr'): number | undefined {
  if (text === undefined) return undefined;
  const n = nonNegative(text);
  if (!Number.isFinite(n)) throw errors.badFlag(flag, text, 'a non-negative number, e.g. 3e-4');
  return n;
}

/** A count that may be 0 (warmup steps, a seed). */
function wholeOrZero(name: string, text: string | undefined, expected: string): number | undefined {
  if (text === undefined) return undefined;
  const n = wholeDecimal(text);
  if (!Number.isSafeInteger(n)) throw errors.badFlag(name, text, expected);
  return n;
}

/** --warmup, --schedule, --min-lr, --total-steps: the flags' own rules (min-lr against the peak is checked with the compiled lr). */
export function scheduleFlags(o: Pick<RunFlags, 'warmup' | 'schedule' | 'minLr' | 'totalSteps'>, steps: number): LrSchedule {
  const warmup = wholeOrZero('warmup', o.warmup, 'a whole number of steps (0 for none)') ?? 0;
  const kind = (o.schedule ?? 'constant') as ScheduleKind;
  if (!SCHEDULE_KINDS.includes(kind)) throw errors.badFlag('schedule', o.schedule!, `one of ${SCHEDULE_KINDS.join(', ')}`);
  const minLr = learningRate(o.minLr, 'min-lr') ?? 0;
  const totalSteps = count('total-steps', o.totalSteps, 'a whole number of steps, at least 1') ?? steps;
  if (o.totalSteps !== undefined && warmup > totalSteps) throw errors.badFlag('warmup', o.warmup!, `longer than --total-steps ${totalSteps}; warm up over fewer steps`);
  return { warmup, kind, minLr, totalSteps };
}

/** --betas B1,B2, --eps, --weight-decay: AdamW's settings, each in its own range. */
export function optimizerFlags(o: RunFlags): { beta1?: number; beta2?: number; eps?: number; weight_decay?: number; max_grad_norm?: number } {
  const out: { beta1?: number; beta2?: number; eps?: number; weight_decay?: number; max_grad_norm?: number } = {};
  if (o.betas !== undefined) {
    const parts = o.betas.split(',').map((x) => learningRate(x.trim(), 'betas'));
    if (parts.length !== 2 || parts.some((b) => b === undefined || b >= 1)) throw errors.badFlag('betas', o.betas, 'two numbers in [0, 1) separated by a comma, e.g. 0.9,0.95');
    [out.beta1, out.beta2] = parts as number[];
  }
  if (o.eps !== undefined) {
    out.eps = learningRate(o.eps, 'eps');
    if (!(out.eps! > 0)) throw errors.badFlag('eps', o.eps, 'a positive number, e.g. 1e-8');
  }
  if (o.weightDecay !== undefined) out.weight_decay = learningRate(o.weightDecay, 'weight-decay');
  const clip = clipGradNorm(o.clipGradNorm);
  if (clip !== undefined) out.max_grad_norm = clip;
  return out;
}

/** --clip-grad-norm X: a positive number (run and check read it alike). */
export function clipGradNorm(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const x = nonNegative(text);
  if (!(Number.isFinite(x) && x > 0)) throw errors.badFlag('clip-grad-norm', text, 'a positive number, e.g. 1.0');
  return x;
}

/** --save-every, --checkpoint-dir, --keep-checkpoints: where and how often (undefined: no checkpoints). */
export function checkpointFlags(o: RunFlags): { every: number; dir: string; keep: number } | undefined {
  const every = count('save-every', o.saveEvery, 'a whole number of steps, at least 1');
  const keep = count('keep-checkpoints', o.keepCheckpoints, 'a whole number, at least 1') ?? 3;
  if (every !== undefined && !o.checkpointDir) throw errors.badFlag('save-every', o.saveEvery!, 'needs --checkpoint-dir DIR (where the checkpoints go)');
  if (!o.checkpointDir) {
    if (o.keepCheckpoints !== undefined) throw errors.badFlag('keep-checkpoints', o.keepCheckpoints, 'needs --checkpoint-dir DIR');
    return undefined;
  }
  return { every: every ?? Number.MAX_SAFE_INTEGER, dir: o.checkpointDir, keep };
}

/** The checkpoint folder is there or can be made: its parent exists and is writable. */
function checkCheckpointDir(dir: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw errors.cannotWrite(dir, 'it is a file; pass a folder for --checkpoint-dir');
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      throw errors.cannotWrite(dir, 'the folder is not writable');
    }
    return;
  }
  const parent = dirname(resolve(dir));
  if (!existsSync(parent) || !statSync(parent).isDirectory()) throw errors.cannotWrite(dir, `its folder ${parent} does not exist; create it first`);
  try {
    accessSync(parent, constants.W_OK);
  } catch {
    throw errors.cannotWrite(dir, `its folder ${parent} is not writable`);
  }
}

/** Starts `gpus` copies of this command, one per GPU; each sees RANK/WORLD_SIZE/LOCAL_RANK. */
async function launchRanks(gpus: number, checkpoints: boolean): Promise<void> {
  try {
    // with checkpoints, SIGTERM/SIGINT go on to the ranks, which save after the step in flight
    await launch({ command: process.execPath, args: [...process.execArgv, ...process.argv.slice(1)], nprocs: gpus, env: { ...process.env, NCCL_NVLS_ENABLE: '0' }, forwardSignals: checkpoints });
  } catch (e) {
    throw e instanceof RuntimeError ? new UserError(e.message.split('\n')[0]) : e;
  }
}

/**
 * What `run` reads, checked in seconds before the addon loads: report.json and schedule.json
 * (schema, hash, against each other), the build (finished, and made from this schedule), the
 * tokens (every id a run of `steps` steps reads is below the vocabulary), the weights' headers
 * and shapes, the folders --save, --dump-grads, --metrics and --trace write into, and --min-lr against
 * the peak rate (--lr, or the compiled one).
 */
export async function checkRunInputs(dir: string, o: RunInputs): Promise<void> {
  const { schedule, report } = readCompiledOut(dir);
  if (typeof report.flops_per_step !== 'number') throw errors.outFileInvalid(join(dir, 'report.json'), "missing field 'flops_per_step'");
  const vocab = schedule.sizes.V;
  if (vocab === undefined) throw errors.outFileInvalid(join(dir, 'schedule.json'), 'sizes has no V (the vocabulary size)');
  const dp = (schedule.config as { dp?: number }).dp ?? 1;
  checkRanks(dir, schedule.world, dp, o);
  // A process that starts one per GPU leaves the build to its ranks: each checks it before it
  // loads the addon, and a rank that fails there is named by the launcher.
  if (!o.launching) checkBuild(dir, schedule.hash);
  if (o.tokens) {
    try {
      // each of the dp groups reads its own window at every micro step, K of them a step
      await checkTokenFile(o.tokens, { seq: report.tokens, vocab, steps: o.steps * dp * (o.accumulate ?? 1), seed: o.seed });
    } catch (e) {
      throw e instanceof RuntimeError ? errors.runtime(e.message) : e;
    }
  }
  await checkDocumentFlags(dir, schedule.config.packed === true, o.tokens, o.documents ?? {});
  if (o.resume && o.weights) throw errors.badFlag('weights', o.weights, 'either --weights or --resume (a checkpoint holds its weights)');
  await checkWeightPaths(dir, { weights: o.weights, save: o.save, dumpGrads: o.dumpGrads && perStep(o.dumpGrads) ? o.dumpGrads.replaceAll('{step}', '1') : o.dumpGrads });
  if (o.metrics) checkFilePath(o.metrics, 'metrics');
  if (o.trace) checkFilePath(o.trace, 'trace');
  if (o.checkpointDir) checkCheckpointDir(o.checkpointDir);
  if (o.resume) {
    const saved = readTrainerState(o.resume);
    let length: number | null = null;
    if (o.tokens) {
      const f = await openTokenSource(o.tokens);
      length = f.length;
      await f.close();
    }
    checkResumable(o.resume, saved, { model: report.model as string, schedule_hash: schedule.hash, world: schedule.world, dp, seq: report.tokens as number, tokens: { length, seed: o.seed ?? null } });
    if (saved.step >= o.steps) throw errors.badFlag('steps', String(o.steps), `the checkpoint is after step ${saved.step} already; --steps is the step the run ends at, pass more than ${saved.step}`);
  }
  const peak = o.lr ?? (report.config as { lr?: number }).lr;
  if (o.minLr !== undefined && peak !== undefined && o.minLr > peak) throw errors.badFlag('min-lr', String(o.minLr), `above the peak learning rate ${peak}${o.lr === undefined ? ' (the compiled lr; pass --lr)' : ''}`);
}

/** The --metrics or --trace file can be written: its folder exists and is writable, and it is not a folder. */
function checkFilePath(path: string, flag: string): void {
  const folder = dirname(resolve(path));
  if (!existsSync(folder)) throw errors.cannotWrite(path, `its folder ${folder} does not exist; create it first`);
  if (!statSync(folder).isDirectory()) throw errors.cannotWrite(path, `${folder} is not a folder`);
  try {
    accessSync(folder, constants.W_OK);
  } catch {
    throw errors.cannotWrite(path, `its folder ${folder} is not writable`);
  }
  if (existsSync(path) && !statSync(path).isFile()) throw errors.cannotWrite(path, `it is not a file; pass a file path for --${flag}`);
}

interface RunInputs {
  steps: number;
  /** --accumulate: windows (of each dp group) per optimizer step */
  accumulate?: number;
  tokens?: string;
  weights?: string;
  save?: string;
  dumpGrads?: string;
  /** --metrics: a JSON-lines file appended to at each step */
  metrics?: string;
  /** --trace: the Chrome trace written after the last step */
  trace?: string;
  /** --seed: the token windows in a seeded order */
  seed?: number;
  /** --checkpoint-dir, and --resume's checkpoint folder (resolved) */
  checkpointDir?: string;
  resume?: string;
  /** --lr and --min-lr, when given */
  lr?: number;
  minLr?: number;
  /** --gpus N: this process starts the ranks */
  gpus?: number;
  ranksPerGpu?: number;
  /** this process is one rank of a launched world of this many */
  distWorld?: number;
  launching?: boolean;
  /** --eod-token, --documents, --loss-mask (packed programs) */
  documents?: DocumentFlags;
}

/** The ranks asked for match the compiled world (the same rules, and words, as the ranks apply when they start). */
function checkRanks(dir: string, world: number, dp: number, o: RunInputs): void {
  const name = dp > 1 ? `dp ${dp} x sp ${world / dp} (${world} ranks)` : `sp ${world}`;
  const recompile = (n: number) => (dp > 1 ? `compile for ${n} ranks (--dp and --sp)` : `compile with --sp ${n}`);
  if (o.ranksPerGpu !== undefined && o.ranksPerGpu !== world) throw new UserError(`${dir} is compiled for ${name}: run it with --ranks-per-gpu ${world}, or ${recompile(o.ranksPerGpu)}`);
  if (o.distWorld !== undefined && o.distWorld !== world) throw new UserError(`${dir} is compiled for ${name} and started as ${o.distWorld} processes; start ${world} (--gpus ${world}) or ${recompile(o.distWorld)}`);
  if (o.gpus !== undefined && o.distWorld === undefined && o.gpus !== world) throw new UserError(`${dir} is compiled for ${name}: run it with --gpus ${world}, or ${recompile(o.gpus)}`);
  if (o.ranksPerGpu === undefined && o.gpus === undefined && o.distWorld === undefined && world !== 1) throw new UserError(`${dir} is compiled for ${name}: run it with --gpus ${world} (one process per GPU) or --ranks-per-gpu ${world} (one GPU)`);
}

/** The build under <dir>/build is finished and was made from the schedule with this hash. */
function checkBuild(dir: string, hash: string): void {
  const buildDir = join(dir, 'build');
  if (!existsSync(buildDir)) throw errors.noBuild(dir);
  let record;
  try {
    record = readBuildRecord(buildDir);
  } catch (e) {
    throw e instanceof RuntimeError ? errors.runtime(e.message) : e;
  }
  if (!record) throw errors.unfinishedBuild(dir);
  if (record.hash !== hash) throw errors.staleBuild(dir);
  if (!existsSync(join(buildDir, record.addon))) throw errors.unfinishedBuild(dir);
}

export function register(program: Command): void {
  program
    .command('run')
    .description('train a built model on the GPU: per-step loss, step time, tokens/s, MFU, memory')
    .argument('<dir>', 'the output folder of a build, e.g. out/llama1b')
    .option('--steps <n>', 'training steps', '1')
    .option('--tokens <file>', 'tokens: flat little-endian uint32 (.bin), .npy, or an indexed dataset (PREFIX with PREFIX.bin and PREFIX.idx); default seeded random tokens')
    .option('--weights <path>', 'initial weights: a .safetensors file or a Hugging Face folder (config.json checked against the model); default seeded random init')
    .option('--save <path>', 'write the weights after the last step: a .safetensors file, or any other path as a Hugging Face folder')
    .option('--dump-grads <path>', "write the gradients of the last step: a .safetensors file or a folder, as --save; with '{step}' in the path, every step's")
    .option('--lr <x>', 'peak learning rate (default: the compiled lr)')
    .option('--warmup <steps>', 'linear warmup from 0: step k of the first STEPS gets lr*k/STEPS', '0')
    .option('--schedule <kind>', 'after warmup: constant, cosine or linear decay to --min-lr', 'constant')
    .option('--min-lr <x>', 'where cosine and linear decay end (default 0)')
    .option('--total-steps <n>', 'the step at which decay reaches --min-lr (default --steps)')
    .option('--metrics <file>', 'append one JSON line per step (loss, lr, tokens/s, MFU, memory) to FILE')
    .option('--trace <file>', "write the last step as measured on the GPU to FILE, a Chrome trace with the tracks of the compiled trace.json (Perfetto, chrome://tracing); times every instruction")
    .option('--seed <n>', 'read the token windows in a seeded random order (default: in order)')
    .option('--betas <b1,b2>', "AdamW's betas (default: the compiled 0.9,0.95)")
    .option('--eps <x>', "AdamW's eps (default: the compiled 1e-8)")
    .option('--weight-decay <x>', "AdamW's decoupled weight decay (default: the compiled 0.1)")
    .option('--clip-grad-norm <x>', 'scale the gradients so that their global norm (over all ranks, computed on the GPU) is at most X, as torch.nn.utils.clip_grad_norm_')
    .option('--accumulate <k>', 'K windows (of each dp group) per optimizer step, gradients accumulated: loss and gradients are the mean over all their tokens, as one batch of K sequences', '1')
    .option('--checkpoint-dir <dir>', 'write checkpoints here (weights, AdamW moments, step, data position): every --save-every steps, after the last step, and on SIGTERM/SIGINT after the step in flight')
    .option('--save-every <n>', 'a checkpoint every N steps (needs --checkpoint-dir)')
    .option('--keep-checkpoints <k>', 'keep the newest K checkpoints (default 3)')
    .option('--resume <ckpt>', "continue from a checkpoint: its folder, a checkpoint dir, or 'latest' (of --checkpoint-dir); --steps is where the run ends")
    .option('--eod-token <id>', 'packed programs: a document starts after each token ID (instead of the indexed dataset\'s document index)')
    .option('--documents <file>', 'packed programs: document start offsets in the token file, ascending (text, or a .npy of integers)')
    .option('--loss-mask <file>', 'packed programs: one 0/1 per token of --tokens (flat uint32 or .npy); 0 ignores the label at that token (e.g. prompts)')
    .option('--gpus <n>', 'ranks as one process per GPU over NCCL (the model\'s sp)')
    .option('--ranks-per-gpu <n>', 'ranks in this process on one GPU (the local backend; the model\'s sp)')
    .action(async (dir: string, o: RunFlags) => {
      const steps = count('steps', o.steps, 'a whole number of steps, at least 1')!;
      const accumulate = count('accumulate', o.accumulate, 'a whole number of windows per optimizer step, at least 1') ?? 1;
      const lr = learningRate(o.lr);
      const schedule = scheduleFlags(o, steps);
      const seed = wholeOrZero('seed', o.seed, 'a whole number');
      const optimizer = optimizerFlags(o);
      const ck = checkpointFlags(o);
      // 'latest' names the checkpoint dir's newest; ranks resolve it alike (the launcher passes the flag on)
      const resume = o.resume === undefined ? undefined : resolveCheckpoint(o.resume, o.checkpointDir);
      const gpus = count('gpus', o.gpus);
      const ranksPerGpu = count('ranks-per-gpu', o.ranksPerGpu);
      const documents = documentFlags(o);
      if (gpus !== undefined && ranksPerGpu !== undefined) throw errors.badFlag('ranks-per-gpu', o.ranksPerGpu!, 'either --gpus or --ranks-per-gpu, not both');
      let dist;
      try {
        dist = parseDistEnv();
      } catch (e) {
        throw e instanceof RuntimeError ? new UserError(e.message) : e;
      }
      const isRank = dist.source !== 'single';
      // every input is checked before any GPU is touched (and before ranks start)
      await checkRunInputs(dir.replace(/\/+$/, '') || dir, {
        steps, accumulate, tokens: o.tokens, weights: o.weights, save: o.save, dumpGrads: o.dumpGrads,
        metrics: o.metrics, trace: o.trace, seed, lr, minLr: o.minLr === undefined ? undefined : schedule.minLr, checkpointDir: ck?.dir, resume,
        gpus, ranksPerGpu, distWorld: isRank ? dist.world : undefined, launching: gpus !== undefined && !isRank, documents,
      });
      if (gpus !== undefined && !isRank) return launchRanks(gpus, ck !== undefined);
      await runTraining({
        dir, steps, accumulate, tokens: o.tokens, weights: o.weights, save: o.save, dumpGrads: o.dumpGrads, lr,
        schedule, metrics: o.metrics, trace: o.trace, seed, optimizer, resume, argv: process.argv.slice(2),
        checkpoints: ck && { ...ck, weights: llamaProblem(readModelFacts(dir)) ? 'model.safetensors' : 'model', outDir: dir, from: o.weights ?? (resume ? join(resume, 'model') : undefined) },
        ranksPerGpu: isRank ? undefined : ranksPerGpu,
        dist: isRank ? dist : undefined,
        documents,
        log: (l) => process.stdout.write(l + '\n'),
      });
    });
}
