// Weights in safetensors under the program's parameter names, which are the Hugging Face Llama
// names (model.layers.N.self_attn.q_proj.weight, ...), so real checkpoints load as they are:
// a .safetensors file, or a Hugging Face folder (runtime/hf-folder.ts) whose config.json is
// checked against the compiled model before any tensor is read. Under ZeRO-3 each rank reads
// only its shard of each tensor. Saving gathers the shards to one writer (rank 0 when each rank
// is its own process) and writes tensor by tensor: to a .safetensors file, or, for any other
// path, to a folder that transformers loads as LlamaForCausalLM.
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { hostParams } from '../codegen/host-params.js';
import { readScheduleJson } from '../schedule/export-json.js';
import { readFolderConfig, WeightSource, writeHfFolder } from '../../runtime/hf-folder.js';
import { RuntimeError } from '../../runtime/errors.js';
import { SafetensorsWriter } from '../../runtime/safetensors.js';
import { errors } from '../errors.js';
import type { DistEnv } from '../../runtime/dist-env.js';
import { gatherToRank0 } from '../../runtime/gather.js';
import { checkHfConfig, llamaConfigFor, llamaProblem, readModelFacts, type ModelFacts } from './hf-config.js';
import type { RankSet } from './ranks.js';
import { packShards, unpackShards, type ShardKind } from './shards.js';

/** A parameter as the program lists it: its name and whole shape. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
}
/** Reads elements [offset, offset+count) of one tensor. */
export type ReadRange = (offset: number, count: number) => Promise<Float32Array>;

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Whether a save path names one file; anything else is written as a Hugging Face folder. */
export const isFilePath = (path: string) => path.endsWith('.safetensors');

/** The one-line user error for a runtime file error; anything else unchanged. */
const asUserError = (e: unknown): unknown => (e instanceof RuntimeError ? errors.runtime(e.message) : e);

/** Sets every parameter from the file or folder (any float dtype; converted to fp32). */
export async function loadWeights(ranks: RankSet, path: string, outDir?: string): Promise<number> {
  const params = ranks.params();
  await loadParams(path, params, (i, read) => ranks.setParam(i, read), outDir ? readModelFacts(outDir) : undefined);
  return params.length;
}

/**
 * Opens `path`, checks its config.json (when `facts` and a config are there) and that it holds
 * every parameter with its shape, then hands each parameter's reader to `set`, shard file by
 * shard file so that each is opened once.
 */
export async function loadParams(path: string, params: readonly ParamSpec[], set: (i: number, read: ReadRange) => Promise<void>, facts?: ModelFacts): Promise<void> {
  const source = await WeightSource.open(path);
  try {
    const config = await source.config();
    if (config && facts) checkHfConfig(facts, config, join(path, 'config.json'), path.replace(/\/+$/, ''));
    checkTensors(source, path, params, facts);
    const rank = new Map(source.files().map((f, k) => [f, k]));
    const fileOf = (i: number) => rank.get(source.entry(params[i].name).file)!;
    const order = params.map((_, i) => i).sort((a, b) => fileOf(a) - fileOf(b) || a - b);
    for (const i of order) await set(i, finiteReader(path, params[i].name, (offset, count) => source.readF32(params[i].name, offset, count)));
  } finally {
    await source.close();
  }
}

/** The dtypes a weight may have: anything else (I32) is not a weight. */
const FLOAT_DTYPES: readonly string[] = ['F32', 'BF16', 'F16'];

/** Every parameter is there with exactly its shape, in a float dtype. */
function checkTensors(source: WeightSource, path: string, params: readonly ParamSpec[], facts?: ModelFacts): void {
  for (const p of params) {
    if (!source.has(p.name)) throw p.name === 'lm_head.weight' && facts ? errors.weightsNoLmHead(path, facts.model) : errors.weightsMissingTensor(path, p.name, params.length);
    const e = source.entry(p.name);
    if (!sameShape(e.shape, p.shape)) throw errors.weightsShape(path, p.name, e.shape, p.shape);
    if (!FLOAT_DTYPES.includes(e.dtype)) throw errors.weightsDtype(path, p.name, e.dtype);
  }
}

/** A reader that refuses NaN and infinities, naming the tensor and the element. */
function finiteReader(path: string, name: string, read: ReadRange): ReadRange {
  return async (offset, count) => {
    const x = await read(offset, count);
    for (let k = 0; k < x.length; k++) if (!Number.isFinite(x[k])) throw errors.weightsNotFinite(path, name, offset + k, x[k]);
    return x;
  };
}

/** The program's parameters (names and whole shapes) from the parameter table of the compiled out dir's schedule.json. */
export function programParams(outDir: string): ParamSpec[] {
  const path = join(outDir, 'schedule.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw errors.cannotReadOut(path, (e as NodeJS.ErrnoException).code ?? (e as Error).message.split('\n')[0]);
  }
  const s = readScheduleJson(text, path);
  if (!s.params) throw errors.outFileInvalid(path, 'it has no parameter table (field params)');
  return hostParams(s).map((p) => ({ name: p.name, shape: p.shape }));
}

/** A save target's folder exists and can be written, and the target is not the other kind of thing. */
function checkDestination(path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw errors.cannotWrite(path, `its folder ${dir} does not exist; create it first`);
  if (!statSync(dir).isDirectory()) throw errors.cannotWrite(path, `${dir} is not a folder`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw errors.cannotWrite(path, `its folder ${dir} is not writable`);
  }
  if (isFilePath(path) && existsSync(path) && statSync(path).isDirectory()) throw errors.cannotWrite(path, 'it is a folder; pass a new path ending in .safetensors, or a folder path');
}

/** How a folder save is written; undefined for a .safetensors path. */
export interface FolderPlan {
  config: Record<string, unknown>;
  companionsFrom?: string;
  maxShardBytes?: number;
}

/**
 * Checks that `path` can be written and says how: a .safetensors path needs nothing, a folder
 * needs a Llama-family model (its config.json comes from the compiled out dir, with the token
 * ids and context length of the folder the weights came from).
 */
export async function planSave(path: string, from: { outDir?: string; weights?: string }): Promise<FolderPlan | undefined> {
  if (isFilePath(path)) return undefined;
  if (!from.outDir) throw new Error('planSave: a folder save needs the compiled out dir');
  if (existsSync(path) && !statSync(path).isDirectory()) throw errors.cannotWrite(path, 'it is a file; pass a path ending in .safetensors, or a folder');
  const facts = readModelFacts(from.outDir);
  const problem = llamaProblem(facts);
  if (problem) throw errors.hfModelNotLlama(path, facts.model, problem);
  const weightsDir = from.weights && existsSync(from.weights) && statSync(from.weights).isDirectory() ? from.weights : undefined;
  const original = weightsDir ? await readFolderConfig(weightsDir) : undefined;
  return { config: llamaConfigFor(facts, original), ...(weightsDir ? { companionsFrom: weightsDir } : {}) };
}

/**
 * Checks, before any GPU work: the --weights file or folder (every header, config.json, every
 * parameter present with its exact shape and a float dtype; the data is read, and its NaNs
 * found, when the weights load) and the --save/--dump-grads targets (their folder exists and is
 * writable; a folder save needs a Llama model).
 */
export async function checkWeightPaths(outDir: string, o: { weights?: string; save?: string; dumpGrads?: string }): Promise<void> {
  try {
    // schedule.json first: what follows reads the model from it
    const params = o.weights || o.save || o.dumpGrads ? programParams(outDir) : [];
    if (o.weights) {
      // the index and every shard header are read (not the data), so a broken folder stops here
      const source = await WeightSource.open(o.weights);
      try {
        const config = await source.config();
        const facts = readModelFacts(outDir);
        if (config) checkHfConfig(facts, config, join(o.weights, 'config.json'), o.weights.replace(/\/+$/, ''));
        checkTensors(source, o.weights, params, facts);
      } finally {
        await source.close();
      }
    }
    for (const path of [o.save, o.dumpGrads]) {
      if (!path) continue;
      checkDestination(path);
      await planSave(path, { outDir, weights: o.weights });
    }
    if (o.save && o.dumpGrads && resolve(o.save) === resolve(o.dumpGrads)) throw errors.cannotWrite(o.dumpGrads, 'it is the --save path too; pass --dump-grads another path');
  } catch (e) {
    throw asUserError(e);
  }
}

/**
 * Writes tensors to a .safetensors file (declared up front, filled one at a time, renamed into
 * place when whole) or, with a plan, to a folder. `tensor(i)` is asked once per tensor, in order;
 * nothing keeps its result after it is written.
 */
export async function writeTensors(path: string, params: readonly ParamSpec[], tensor: (i: number) => Float32Array | Promise<Float32Array>, folder?: FolderPlan): Promise<void> {
  try {
    if (folder) {
      await writeHfFolder(path, params, tensor, folder);
      return;
    }
    const tmp = `${path}.tmp-${process.pid}`;
    try {
      const writer = await SafetensorsWriter.create(tmp, params.map((p) => ({ name: p.name, dtype: 'F32' as const, shape: [...p.shape] })));
      try {
        for (const [i, p] of params.entries()) {
          const data = await tensor(i);
          if (data.length !== numel(p.shape)) throw new Error(`writeTensors: '${p.name}' came with ${data.length} values for shape [${p.shape.join(', ')}]`);
          await writer.write(p.name, data);
        }
      } finally {
        await writer.close();
      }
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e instanceof RuntimeError ? e : errors.cannotWrite(path, (e as Error).message.split('\n')[0]);
    }
  } catch (e) {
    throw asUserError(e);
  }
}

/** Writes every parameter (or its gradient from the last step) as fp32, gathered over the ranks held here. */
export async function saveTensors(ranks: RankSet, path: string, what: ShardKind, folder?: FolderPlan): Promise<void> {
  if (!ranks.holdsEveryShard()) throw new Error(`saveTensors: this process holds ${ranks.programs.length} of ${ranks.world} ranks; use saveGathered`);
  await writeTensors(path, ranks.params(), (i) => ranks.gather(i, what), folder);
}

/**
 * Writes the weights and/or gradients of every rank, each to a file or folder. With one process
 * per rank (NCCL), every rank sends its shards to rank 0, which writes; returns whether this
 * process wrote. `from` gives the compiled out dir and the --weights path, which a folder save
 * needs for its config.json.
 */
export async function saveGathered(ranks: RankSet, dist: DistEnv | undefined, files: Partial<Record<ShardKind, string>>, from: { outDir?: string; weights?: string } = {}): Promise<boolean> {
  const kinds = (['params', 'grads'] as const).filter((k) => files[k]);
  if (kinds.length === 0) return false;
  // every rank plans (and refuses) alike, before any rank sends its shards
  const plans = new Map<ShardKind, FolderPlan | undefined>();
  try {
    for (const k of kinds) plans.set(k, await planSave(files[k]!, from));
  } catch (e) {
    throw asUserError(e);
  }
  if (ranks.holdsEveryShard()) {
    for (const k of kinds) await saveTensors(ranks, files[k]!, k, plans.get(k));
    return true;
  }
  if (!dist) throw new Error('saveGathered: a process holding some of the ranks needs its launcher environment');
  const all = await gatherToRank0(dist, packShards(ranks, kinds));
  if (!all) return false;
  const params = ranks.params();
  const whole = unpackShards(all, params.map((p) => numel(p.shape)));
  all.length = 0;
  for (const k of kinds) {
    const data = whole.get(k)!;
    await writeTensors(files[k]!, params, (i) => {
      const t = data[i];
      data[i] = new Float32Array(0); // written next; let it go
      return t;
    }, plans.get(k));
  }
  return true;
}
