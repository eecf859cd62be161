// Hugging Face model folders: config.json beside either one model.safetensors or shards named
// in model.safetensors.index.json. Reading keeps at most one shard open and reads by element
// range, so each rank takes only its ZeRO-3 slice and a 70B folder is never read whole.
// Writing streams one tensor at a time into shards of bounded size, inside a temporary sibling
// folder that is renamed into place only once it is complete.
import { existsSync, statSync } from "node:fs";
import { copyFile, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";

import { RuntimeError, runtimeErrors } from "./errors.js";
import { DTYPE_BYTES, numel, SafetensorsReader, SafetensorsWriter, type Dtype, type TensorData, type TensorSpec } from "./safetensors.js";

export const CONFIG_FILE = "config.json";
export const INDEX_FILE = "model.safetensors.index.json";
export const SINGLE_FILE = "model.safetensors";
/** Files a folder carries besides the weights, copied along when a folder is saved from one. */
export const COMPANION_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "tokenizer.model"];
/** The shard size transformers writes by default ("5GB", decimal). */
export const MAX_SHARD_BYTES = 5_000_000_000;

export interface WeightEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** the shard file that holds it, relative to the folder */
  file: string;
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** Tensor name -> shard file, from the text of model.safetensors.index.json. */
export function parseIndex(text: string, where: string): Map<string, string> {
  const bad = (what: string) => runtimeErrors.badFile(where, what, "the folder's index is damaged; re-download the folder or re-save it");
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`is not JSON (${(e as Error).message})`);
  }
  const map = (doc as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) throw bad("has no weight_map object");
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(map)) {
    // a shard is a file of this folder: no paths, so an index cannot point outside it
    if (typeof file !== "string" || file === "" || file !== basename(file) || file === "." || file === "..") throw bad(`maps '${name}' to ${JSON.stringify(file)}, not a file name in the folder`);
    out.set(name, file);
  }
  if (out.size === 0) throw bad("has an empty weight_map");
  return out;
}

/**
 * Every tensor of a weights path: a .safetensors file, or a Hugging Face folder. Shard headers
 * are read when it opens (one file at a time); data is read later, by range.
 */
export class WeightSource {
  private open?: { file: string; reader: SafetensorsReader };

  private constructor(
    /** the path as given */
    readonly path: string,
    /** the folder that holds the shard files */
    readonly dir: string,
    /** whether the path is a folder (so config.json may sit beside the weights) */
    readonly isFolder: boolean,
    private readonly entries: Map<string, WeightEntry>,
  ) {}

  static async open(path: string): Promise<WeightSource> {
    if (!existsSync(path)) throw runtimeErrors.badFile(path, "does not exist", "pass a .safetensors file or a Hugging Face model folder");
    if (!isDir(path)) {
      const entries = await readHeaders(dirname(path), [basename(path)]);
      return new WeightSource(path, dirname(path), false, entries);
    }
    const indexPath = join(path, INDEX_FILE);
    if (existsSync(indexPath)) {
      const index = parseIndex(await readFile(indexPath, "utf8"), indexPath);
      const files = [...new Set(index.values())].sort();
      for (const f of files) {
        if (!existsSync(join(path, f))) {
          const example = [...index].find(([, file]) => file === f)![0];
          throw runtimeErrors.badFile(indexPath, `names shard ${f} (which holds '${example}'), but ${join(path, f)} is missing`, "download the missing shard");
        }
      }
      const found = await readHeaders(path, files);
      const entries = new Map<string, WeightEntry>();
      for (const [name, file] of index) {
        const e = found.get(name);
        if (!e || e.file !== file) throw runtimeErrors.badFile(indexPath, `maps '${name}' to ${file}, which has no such tensor`, "the index and its shards disagree; re-download the folder");
        entries.set(name, e);
      }
      // readHeaders refuses a tensor held by two shards; tensors the index does not name are
      // unreachable for transformers too, so they are left out here as well
      return new WeightSource(path, path, true, entries);
    }
    if (existsSync(join(path, SINGLE_FILE))) return new WeightSource(path, path, true, await readHeaders(path, [SINGLE_FILE]));
    throw runtimeErrors.badFile(path, `holds neither ${INDEX_FILE} nor ${SINGLE_FILE}`, "pass a Hugging Face folder with safetensors weights (convert .bin checkpoints first) or a .safetensors file");
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): WeightEntry {
    const e = this.entries.get(name);
    if (!e) throw runtimeErrors.badFile(this.path, `has no tensor '${name}'`, `it has ${this.entries.size} tensors`);
    return e;
  }

  /** Shard files in the order they are best read (sorted, as transformers names them). */
  files(): string[] {
    return [...new Set([...this.entries.values()].map((e) => e.file))].sort();
  }

  /** Elements [offset, offset+count) of a tensor as fp32; opens its shard, closing the one open before. */
  async readF32(name: string, offset = 0, count?: number): Promise<Float32Array> {
    const e = this.entry(name);
    if (this.open?.file !== e.file) {
      await this.open?.reader.close();
      this.open = undefined;
      this.open = { file: e.file, reader: await SafetensorsReader.open(join(this.dir, e.file)) };
    }
    return this.open.reader.readF32(name, offset, count);
  }

  /** config.json beside the weights, or undefined when there is none (or the path is a file). */
  async config(): Promise<Record<string, unknown> | undefined> {
    return this.isFolder ? readFolderConfig(this.dir) : undefined;
  }

  async close(): Promise<void> {
    const o = this.open;
    this.open = undefined;
    await o?.reader.close();
  }
}

/** Each shard's header in turn (one file open at a time); a tensor in two shards is an error. */
async function readHeaders(dir: string, files: string[]): Promise<Map<string, WeightEntry>> {
  const out = new Map<string, WeightEntry>();
  for (const file of files) {
    const reader = await SafetensorsReader.open(join(dir, file));
    try {
      for (const t of reader.tensors.values()) {
        const seen = out.get(t.name);
        if (seen) throw runtimeErrors.badFile(dir, `tensor '${t.name}' is in both ${seen.file} and ${file}`, "a tensor belongs to one shard; re-download the folder or re-save it");
        out.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, file });
      }
    } finally {
      await reader.close();
    }
  }
  return out;
}

/** A folder's config.json, parsed; undefined when absent. */
export async function readFolderConfig(dir: string): Promise<Record<string, unknown> | undefined> {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    throw runtimeErrors.badFile(path, `is not JSON (${(e as Error).message.split("\n")[0]})`, "fix or re-download it");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw runtimeErrors.badFile(path, "is not a JSON object", "fix or re-download it");
  return doc as Record<string, unknown>;
}

// ---- writing ----

export interface FolderTensor {
  name: string;
  shape: readonly number[];
}

/** Where shard bytes go; SafetensorsWriter in use, a failing stand-in in tests. */
export interface ShardSink {
  write(name: string, data: TensorData): Promise<void>;
  close(): Promise<void>;
}

export interface WriteFolderOptions {
  /** written as config.json */
  config: Record<string, unknown>;
  /** a folder whose tokenizer and generation files are copied along when present */
  companionsFrom?: string;
  maxShardBytes?: number;
  dtype?: Dtype;
  openShard?: (path: string, specs: TensorSpec[], metadata: Record<string, string>) => Promise<ShardSink>;
}

/**
 * Tensors (indices into the list) grouped into shards in order, each at most `maxBytes` unless a
 * single tensor is larger, which then has a shard of its own.
 */
export function planShards(tensors: readonly FolderTensor[], bytesPerElement: number, maxBytes: number): number[][] {
  const shards: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  tensors.forEach((t, i) => {
    const b = numel([...t.shape]) * bytesPerElement;
    if (current.length > 0 && bytes + b > maxBytes) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(i);
    bytes += b;
  });
  if (current.length > 0) shards.push(current);
  return shards;
}

/** `model-00001-of-00003.safetensors`, or `model.safetensors` for a folder of one shard. */
export function shardName(k: number, n: number): string {
  const five = (x: number) => String(x).padStart(5, "0");
  return n === 1 ? SINGLE_FILE : `model-${five(k + 1)}-of-${five(n)}.safetensors`;
}

/**
 * Writes a Hugging Face folder: config.json, the shards (fp32 unless told otherwise) and, for
 * several shards, the index. `data(i)` is asked for each tensor once, in order, and its result
 * is dropped after it is written. An existing folder is replaced only once the new one is whole.
 */
export async function writeHfFolder(dir: string, tensors: readonly FolderTensor[], data: (i: number) => Float32Array | Promise<Float32Array>, o: WriteFolderOptions): Promise<string[]> {
  const dtype = o.dtype ?? "F32";
  const openShard = o.openShard ?? ((path, specs, metadata) => SafetensorsWriter.create(path, specs, metadata));
  const shards = planShards(tensors, DTYPE_BYTES[dtype], o.maxShardBytes ?? MAX_SHARD_BYTES);
  const files = shards.map((_, k) => shardName(k, shards.length));
  await replaceFolder(dir, async (tmp) => {
    await writeSynced(join(tmp, CONFIG_FILE), JSON.stringify(o.config, null, 2) + "\n");
    const weightMap: Record<string, string> = {};
    let totalBytes = 0;
    for (const [k, members] of shards.entries()) {
      const specs = members.map((i) => ({ name: tensors[i].name, dtype, shape: [...tensors[i].shape] }));
      // transformers refuses safetensors files whose metadata does not name the framework
      const sink = await openShard(join(tmp, files[k]), specs, { format: "pt" });
      try {
        for (const [j, i] of members.entries()) {
          const values = await data(i);
          if (values.length !== numel(specs[j].shape)) throw new Error(`writeHfFolder: tensor '${specs[j].name}' came with ${values.length} values for shape [${specs[j].shape.join(", ")}]`);
          await sink.write(specs[j].name, values);
          weightMap[tensors[i].name] = files[k];
          totalBytes += values.length * DTYPE_BYTES[dtype];
        }
      } finally {
        await sink.close();
      }
    }
    if (shards.length > 1) {
      const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((n) => [n, weightMap[n]]));
      await writeSynced(join(tmp, INDEX_FILE), JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: sorted }, null, 2) + "\n");
    }
    if (o.companionsFrom) {
      for (const f of COMPANION_FILES) {
        if (!existsSync(join(o.companionsFrom, f))) continue;
        await copyFile(join(o.companionsFrom, f), join(tmp, f));
        await syncPath(join(tmp, f));
      }
    }
    // the folder's entries too, so that the rename below publishes a folder whose files are on disk
    await syncPath(tmp);
  });
  return [CONFIG_FILE, ...files, ...(shards.length > 1 ? [INDEX_FILE] : [])];
}

/** Writes a file and flushes it to disk before it can be renamed into place. */
/** Writes a small file and flushes it to disk (before a rename publishes it). */
export async function writeSynced(path: string, text: string): Promise<void> {
  const fh = await open(path, "w");
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Flushes a file or folder that is already written. */
export async function syncPath(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Whether a folder is one a save may replace: empty, or holding a model's files. */
async function isReplaceable(dir: string): Promise<boolean> {
  const names = await readdir(dir);
  return names.length === 0 || [CONFIG_FILE, INDEX_FILE, SINGLE_FILE].some((n) => names.includes(n));
}

/**
 * Builds a folder in `<dir>.tmp-<pid>` and swaps it in: the old folder is renamed away, the new
 * one renamed in, the old one deleted. Any failure leaves an existing folder as it was and
 * removes the temporary one.
 */
export async function replaceFolder(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const target = resolve(dir);
  if (existsSync(target)) {
    if (!isDir(target)) throw runtimeErrors.badFile(dir, "is a file, not a folder", "pass a folder path, or a path ending in .safetensors for one file");
    // a save replaces the whole folder; never a folder that holds something other than a model
    if (!(await isReplaceable(target))) throw runtimeErrors.badFile(dir, `exists and holds no ${CONFIG_FILE}, ${INDEX_FILE} or ${SINGLE_FILE}`, "pass a new folder or an existing model folder");
  }
  const tmp = `${target}.tmp-${process.pid}`;
  const old = `${target}.old-${process.pid}`;
  const failed = (e: unknown) => runtimeErrors.badFile(dir, `could not be written (${(e as Error).message.split("\n")[0]})`, "nothing was changed there; check the free space and permissions");
  await rm(tmp, { recursive: true, force: true });
  try {
    await mkdir(tmp, { recursive: true });
    await fill(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e instanceof RuntimeError ? e : failed(e);
  }
  let movedAway = false;
  try {
    if (existsSync(target)) {
      await rename(target, old);
      movedAway = true;
    }
    await rename(tmp, target);
  } catch (e) {
    if (movedAway && !existsSync(target)) await rename(old, target);
    await rm(tmp, { recursive: true, force: true });
    throw failed(e);
  }
  if (movedAway) await rm(old, { recursive: true, force: true });
}
