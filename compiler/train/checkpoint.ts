// Checkpoints of a training run and resuming from one. A checkpoint is a folder
//   <checkpoint-dir>/step-00000012/
//     trainer.json                          the step, the data position, the run's settings
//     model/ (Hugging Face folder) or model.safetensors     fp32 master weights, gathered
//     optimizer/rank-00000-of-00002.safetensors ...        each rank's AdamW moment shards
// and `<checkpoint-dir>/latest` names the newest complete one. Every rank writes its own moment
// file (no gathering: at 70B they are most of the bytes), then sends its weight shards to rank 0
// (saveGathered), which is also the barrier: when rank 0 has every rank's shards, every rank's
// moment file is on disk. Rank 0 then writes trainer.json, renames the folder from
// `.step-00000012.partial` into place and replaces `latest` by a rename, so a process killed at
// any moment leaves the previous checkpoint, and `latest`, as they were. With several processes
// the checkpoint folder must be on a file system every rank sees.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { DistEnv } from '../../runtime/dist-env.js';
import { syncPath, writeSynced } from '../../runtime/hf-folder.js';
import { MOMENTS, type Moment } from '../../runtime/load.js';
import { RuntimeError } from '../../runtime/errors.js';
import { SafetensorsReader, SafetensorsWriter } from '../../runtime/safetensors.js';
import { errors } from '../errors.js';
import type { RankSet } from './ranks.js';
import { loadWeights, saveGathered } from './weights.js';

export const CHECKPOINT_FORMAT = 'fpdtc checkpoint';
export const CHECKPOINT_VERSION = 1;
const LATEST = 'latest';
const TRAINER = 'trainer.json';

/** What a checkpoint says about the run beyond its tensors. */
export interface TrainerState {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  /** optimizer steps done; the run continues with step `step + 1` (token window `step` of each group) */
  step: number;
  /** what the tensors fit: a resume must match every one */
  model: string;
  schedule_hash: string;
  world: number;
  dp: number;
  seq: number;
  /** the data position is the step: windows are read in order, or in --seed's order */
  tokens: { length: number | null; seed: number | null };
  /** --accumulate: windows (of each dp group) per optimizer step, so step k has read k * accumulate of them (absent: 1) */
  accumulate?: number;
  lr: Record<string, number | string>;
  optimizer: Record<string, number>;
  /** no dropout and no sampling at run time: the data order is the only randomness, and it is the step and --seed */
  rng: string;
  weights: 'model' | 'model.safetensors';
  loss: number;
  time: string;
  flags: string[];
}

/** The fields a resume compares, with the flag that changes each. */
const MUST_MATCH: readonly [keyof TrainerState, string][] = [
  ['model', 'compile the same model'],
  ['schedule_hash', 'resume with the out dir the checkpoint was written by'],
  ['world', 'run the same number of ranks'],
  ['dp', 'compile with the same --dp'],
  ['seq', 'compile with the same --seq'],
];

export interface CheckpointTarget {
  /** --checkpoint-dir */
  dir: string;
  /** --keep-checkpoints: how many complete checkpoints stay (the newest) */
  keep: number;
  /** where the weights go: a Hugging Face folder (Llama family) or one safetensors file */
  weights: TrainerState['weights'];
  /** the compiled out dir and --weights: a folder save's config.json comes from them */
  outDir?: string;
  from?: string;
}

export const stepName = (step: number) => `step-${String(step).padStart(8, '0')}`;
const STEP_FOLDER = /^step-(\d{8})$/;
const rankFile = (rank: number, world: number) => `rank-${String(rank).padStart(5, '0')}-of-${String(world).padStart(5, '0')}.safetensors`;

/** The first rank of the programs a process holds: this process's NCCL rank, or 0. */
const firstRank = (dist: DistEnv | undefined) => (dist && dist.world > 1 ? dist.rank : 0);

/**
 * Writes the checkpoint of `state.step`; returns its folder on the process that published it
 * (rank 0), undefined on the others.
 */
export async function saveCheckpoint(ranks: RankSet, dist: DistEnv | undefined, state: TrainerState, t: CheckpointTarget): Promise<string | undefined> {
  const root = resolve(t.dir);
  const partial = join(root, `.${stepName(state.step)}.partial`);
  const final = join(root, stepName(state.step));
  try {
    await mkdir(join(partial, 'optimizer'), { recursive: true });
    const r0 = firstRank(dist);
    for (const [k, p] of ranks.programs.entries()) await writeMoments(join(partial, 'optimizer', rankFile(r0 + k, ranks.world)), p);
  } catch (e) {
    throw e instanceof RuntimeError ? errors.runtime(e.message) : errors.cannotWrite(partial, (e as Error).message.split('\n')[0]);
  }
  // every rank's moments are on disk before rank 0 has every rank's weights
  const wrote = await saveGathered(ranks, dist, { params: join(partial, state.weights) }, { outDir: t.outDir, weights: t.from });
  if (!wrote) return undefined;
  try {
    await writeSynced(join(partial, TRAINER), JSON.stringify(state, null, 2) + '\n');
    await dropStrays(partial, ranks.world, state.weights);
    await syncPath(join(partial, 'optimizer'));
    await syncPath(partial);
    // a checkpoint of the same step from an earlier run is replaced whole; a kill between the
    // renames leaves `latest` naming a missing folder, which resolveCheckpoint steps back from
    const old = `${final}.old-${process.pid}`;
    if (existsSync(final)) await rename(final, old);
    await rename(partial, final);
    await rm(old, { recursive: true, force: true });
    await writeSynced(join(root, `.${LATEST}.tmp`), stepName(state.step) + '\n');
    await rename(join(root, `.${LATEST}.tmp`), join(root, LATEST));
    await syncPath(root);
    await prune(root, t.keep, state.step);
  } catch (e) {
    throw errors.cannotWrite(final, (e as Error).message.split('\n')[0]);
  }
  return final;
}

/** One rank's moment shards: `<name>.exp_avg`, `<name>.exp_avg_sq`; the shard offsets in the metadata. */
async function writeMoments(path: string, p: RankSet['programs'][number]): Promise<void> {
  const held = p.params().filter((x) => x.shardLength > 0);
  const specs = held.flatMap((x) => MOMENTS.map((m) => ({ name: `${x.name}.${m}`, dtype: 'F32' as const, shape: [x.shardLength] })));
  const shards = Object.fromEntries(held.map((x) => [x.name, [x.shardOffset, x.shardLength]]));
  const tmp = `${path}.tmp-${process.pid}`;
  const w = await SafetensorsWriter.create(tmp, specs, { format: 'pt', shards: JSON.stringify(shards) });
  try {
    for (const x of held) for (const m of MOMENTS) await w.write(`${x.name}.${m}`, p.getState(x.index, m));
  } finally {
    await w.close();
  }
  await rename(tmp, path);
}

/** Files of an earlier, interrupted attempt at the same step that this world did not write. */
async function dropStrays(partial: string, world: number, weights: string): Promise<void> {
  const mine = new Set(Array.from({ length: world }, (_, r) => rankFile(r, world)));
  for (const f of await readdir(join(partial, 'optimizer'))) if (!mine.has(f)) await rm(join(partial, 'optimizer', f), { recursive: true, force: true });
  for (const f of await readdir(partial)) if (![TRAINER, 'optimizer', weights].includes(f)) await rm(join(partial, f), { recursive: true, force: true });
}

/** Keeps the newest `keep` checkpoints (never the one just written) and drops older partial ones and replaced ones. */
async function prune(root: string, keep: number, newest: number): Promise<void> {
  const steps = (await readdir(root)).map((f) => STEP_FOLDER.exec(f)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1])).sort((a, b) => b - a);
  for (const s of steps.slice(Math.max(1, keep))) if (s !== newest) await rm(join(root, stepName(s)), { recursive: true, force: true });
  for (const f of await readdir(root)) {
    const m = /^\.step-(\d{8})\.partial$/.exec(f);
    if (m && Number(m[1]) < newest) await rm(join(root, f), { recursive: true, force: true });
    // a checkpoint being replaced when its run was killed: a complete one is published since
    if (/^step-\d{8}\.old-\d+$/.test(f)) await rm(join(root, f), { recursive: true, force: true });
  }
}

/**
 * The checkpoint folder `--resume` names: a step folder, a checkpoint dir (its latest), or
 * `latest` (the latest of --checkpoint-dir).
 */
export function resolveCheckpoint(arg: string, checkpointDir?: string): string {
  let path = arg;
  if (arg === LATEST) {
    if (!checkpointDir) throw errors.badFlag('resume', arg, "'latest' needs --checkpoint-dir (where the checkpoints are)");
    path = checkpointDir;
  }
  if (!existsSync(path) || !statSync(path).isDirectory()) throw errors.checkpointUnreadable(path, 'no such folder', 'pass a step folder or the checkpoint dir');
  if (!existsSync(join(path, TRAINER)) && existsSync(join(path, LATEST))) {
    const name = readFileSync(join(path, LATEST), 'utf8').trim();
    if (!STEP_FOLDER.test(name)) throw errors.checkpointUnreadable(join(path, LATEST), `names '${name}', not a step folder`, 'point --resume at a step folder');
    // a save killed while replacing a checkpoint of the same step: the newest complete one
    path = existsSync(join(path, name, TRAINER)) ? join(path, name) : (newestComplete(path) ?? join(path, name));
  }
  if (!existsSync(join(path, TRAINER))) {
    const hint = existsSync(dirname(path)) && readdirSync(dirname(path)).some((f) => f.startsWith(`.${basename(path)}.partial`)) ? 'it was never completed; resume from an earlier step' : 'pass a step folder or the checkpoint dir';
    throw errors.checkpointUnreadable(path, `has no ${TRAINER}`, hint);
  }
  return path;
}

function newestComplete(root: string): string | undefined {
  const steps = readdirSync(root).filter((f) => STEP_FOLDER.test(f) && existsSync(join(root, f, TRAINER))).sort();
  return steps.length ? join(root, steps[steps.length - 1]) : undefined;
}

/** The checkpoint's trainer.json, checked for form. */
export function readTrainerState(ckpt: string): TrainerState {
  const path = join(ckpt, TRAINER);
  let s: TrainerState;
  try {
    s = JSON.parse(readFileSync(path, 'utf8')) as TrainerState;
  } catch (e) {
    throw errors.checkpointUnreadable(path, (e as Error).message.split('\n')[0], 'the checkpoint is damaged; resume from another');
  }
  if (s?.format !== CHECKPOINT_FORMAT) throw errors.checkpointUnreadable(path, `is not an ${CHECKPOINT_FORMAT}`, 'pass a folder fpdtc wrote with --checkpoint-dir');
  if (s.version !== CHECKPOINT_VERSION) throw errors.checkpointUnreadable(path, `is version ${s.version}; this fpdtc reads version ${CHECKPOINT_VERSION}`, 'resume with the fpdtc that wrote it');
  if (!Number.isSafeInteger(s.step) || s.step < 1) throw errors.checkpointUnreadable(path, `has step ${JSON.stringify(s.step)}`, 'the checkpoint is damaged; resume from another');
  return s;
}

/** A checkpoint from another model or configuration is refused with the field that differs. */
export function checkResumable(ckpt: string, saved: TrainerState, now: Pick<TrainerState, 'model' | 'schedule_hash' | 'world' | 'dp' | 'seq' | 'tokens' | 'accumulate'>): void {
  for (const [k, fix] of MUST_MATCH) {
    if (saved[k] !== now[k as keyof typeof now]) throw errors.checkpointMismatch(ckpt, k, String(saved[k]), String(now[k as keyof typeof now]), fix);
  }
  // another K would change both the batch of each step and where the data position stands
  const [was, is] = [saved.accumulate ?? 1, now.accumulate ?? 1];
  if (was !== is) throw errors.checkpointMismatch(ckpt, 'accumulate', String(was), String(is), `resume with --accumulate ${was}`);
  if (saved.tokens.length !== now.tokens.length) throw errors.checkpointMismatch(ckpt, 'tokens', `${saved.tokens.length ?? 'seeded random'} tokens`, `${now.tokens.length ?? 'seeded random'}`, 'resume with the same --tokens');
  if (saved.tokens.seed !== now.tokens.seed) throw errors.checkpointMismatch(ckpt, 'seed', String(saved.tokens.seed ?? 'none'), String(now.tokens.seed ?? 'none'), `resume with ${saved.tokens.seed === null ? 'no --seed' : `--seed ${saved.tokens.seed}`}`);
}

/** Sets every rank held here back to the checkpoint: weights, both moments, the step count. */
export async function restoreCheckpoint(ranks: RankSet, dist: DistEnv | undefined, ckpt: string, saved: TrainerState, outDir?: string): Promise<void> {
  await loadWeights(ranks, join(ckpt, saved.weights), outDir);
  const r0 = firstRank(dist);
  for (const [k, p] of ranks.programs.entries()) {
    const path = join(ckpt, 'optimizer', rankFile(r0 + k, ranks.world));
    if (!existsSync(path)) throw errors.checkpointUnreadable(ckpt, `has no optimizer/${basename(path)} (rank ${r0 + k} of ${ranks.world})`, `it was written by ${saved.world} ranks; resume with as many`);
    let f: SafetensorsReader;
    try {
      f = await SafetensorsReader.open(path);
    } catch (e) {
      throw errors.checkpointUnreadable(path, (e as Error).message.split('\n')[0], 'the checkpoint is incomplete; resume from another');
    }
    try {
      const shards = JSON.parse(f.metadata.shards ?? '{}') as Record<string, [number, number]>;
      for (const x of p.params()) {
        if (x.shardLength === 0) continue;
        const [offset, length] = shards[x.name] ?? [-1, -1];
        if (offset !== x.shardOffset || length !== x.shardLength) throw errors.checkpointMismatch(ckpt, `shard of ${x.name} on rank ${r0 + k}`, `[${offset}, +${length})`, `[${x.shardOffset}, +${x.shardLength})`, 'resume with the layout the checkpoint was written by');
        for (const m of MOMENTS) p.setState(x.index, m, await readMoment(f, path, x.name, m));
      }
    } finally {
      await f.close();
    }
    p.setStep(saved.step);
  }
}

async function readMoment(f: SafetensorsReader, path: string, name: string, m: Moment): Promise<Float32Array> {
  try {
    return await f.readF32(`${name}.${m}`);
  } catch (e) {
    throw errors.checkpointUnreadable(path, (e as Error).message.split('\n')[0], 'the checkpoint is incomplete; resume from another');
  }
}
