// Token files: flat little-endian uint32 (.bin and anything not .npy),
// NumPy .npy arrays of uint32 / int32 / int64, 1-D, or an indexed dataset
// (PREFIX.bin + PREFIX.idx, runtime/indexed-dataset.ts). Values come back as
// Int32Array, the ABI's token type; reads can be slices of a large file.
import { existsSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";

import { runtimeErrors } from "./errors.js";
import { IndexedDataset } from "./indexed-dataset.js";
import { readFully } from "./read-fully.js";

export type TokenDtype = "uint16" | "uint32" | "int32" | "int64";

/** What a run reads tokens from: a stream of `length` ids, read by window. */
export interface TokenSource {
  readonly path: string;
  readonly dtype: TokenDtype;
  readonly length: number;
  read(start: number, count: number): Promise<Int32Array>;
  close(): Promise<void>;
}

/**
 * The --tokens source: an indexed dataset for PREFIX (no such file, but PREFIX.bin or PREFIX.idx
 * exists), PREFIX.bin or PREFIX.idx with its sibling, or else a flat or .npy token file.
 */
export async function openTokenSource(path: string): Promise<TokenSource> {
  const stem = path.replace(/\.(bin|idx)$/, "");
  if (stem !== path && existsSync(`${stem}.bin`) && existsSync(`${stem}.idx`)) return IndexedDataset.open(stem);
  if (path.endsWith(".idx") || (!existsSync(path) && (existsSync(`${path}.bin`) || existsSync(`${path}.idx`)))) return IndexedDataset.open(stem);
  return TokenFile.open(path);
}

/**
 * Which window step k reads of `windows`: k mod windows in order, or with a seed a seeded
 * permutation of the windows, a new one each pass over the file (epoch), the same for every run
 * with that seed.
 */
export function windowIndex(k: number, windows: number, seed?: number): number {
  if (seed === undefined) return k % windows;
  const epoch = Math.floor(k / windows);
  if (!shuffled || shuffled.windows !== windows || shuffled.seed !== seed || shuffled.epoch !== epoch) shuffled = { windows, seed, epoch, order: windowPermutation(windows, seed, epoch) };
  return shuffled.order[k % windows];
}

/** The last permutation made: a run asks for the same one step after step. */
let shuffled: { windows: number; seed: number; epoch: number; order: Uint32Array } | undefined;

/** Fisher-Yates over [0, n) driven by a 32-bit xorshift seeded from seed and epoch. */
export function windowPermutation(n: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(epoch + 1, 0xc2b2ae35)) >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
  for (let i = n - 1; i > 0; i--) {
    // two draws make 53 bits, so the pick stays uniform for any file's window count
    const j = Math.floor(((next() * 2 ** 21 + (next() >>> 11)) / 2 ** 53) * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}
const NPY_DTYPES: Record<string, TokenDtype> = { "<u4": "uint32", "<i4": "int32", "<i8": "int64" };
const BYTES: Record<TokenDtype, number> = { uint16: 2, uint32: 4, int32: 4, int64: 8 };
const NPY_MAGIC = "\x93NUMPY";

export class TokenFile implements TokenSource {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly dtype: TokenDtype,
    /** Number of tokens in the file. */
    readonly length: number,
    private readonly dataStart: number,
  ) {}

  static async open(path: string): Promise<TokenFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, "r");
    } catch (e) {
      throw runtimeErrors.badFile(path, `cannot be opened (${(e as NodeJS.ErrnoException).code ?? e})`, "check the --tokens path");
    }
    try {
      const stat = await fh.stat();
      if (!stat.isFile()) throw runtimeErrors.badFile(path, "is not a file (a folder?)", "pass a token file to --tokens");
      const size = stat.size;
      const head = new Uint8Array(Math.min(size, TEXT_SNIFF_BYTES));
      await readFully(fh, head, 0);
      if (looksLikeText(head) && !startsWith(head, NPY_MAGIC)) throw runtimeErrors.tokensAreText(path);
      if (path.endsWith(".npy")) {
        const { dtype, length, dataStart } = await readNpyHeader(path, fh, size);
        return new TokenFile(path, fh, dtype, length, dataStart);
      }
      if (size % 4 !== 0) {
        throw runtimeErrors.badFile(path, `${size} bytes is not a whole number of uint32 tokens`, "write tokens as flat little-endian uint32, or use a .npy file");
      }
      return new TokenFile(path, fh, "uint32", size / 4, 0);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Tokens [start, start + count) as int32; errors name the first bad value's index. */
  async read(start = 0, count: number = this.length - start): Promise<Int32Array> {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.length) {
      throw runtimeErrors.badFile(this.path, `tokens [${start}, ${start + count}) are outside the file's ${this.length} tokens`, "use a smaller sequence or a longer token file");
    }
    const width = BYTES[this.dtype];
    const bytes = new Uint8Array(new ArrayBuffer(count * width));
    if ((await readFully(this.fh, bytes, this.dataStart + start * width)) < bytes.length) throw runtimeErrors.badFile(this.path, "ends early", "the file is truncated; regenerate it");
    return toInt32(this.path, this.dtype, bytes.buffer, start);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Tokens checked per read while scanning a file: 64 MiB of uint32. */
const SCAN_PIECE = 1 << 24;

/**
 * Checks, before any GPU work, that a token file serves a run of `steps` steps of `seq` tokens
 * over a vocabulary of `vocab`: a readable file of whole tokens (a valid .npy header), at least
 * one step of tokens, and every id the run will read below `vocab` (the first offending index is
 * named). Reads only the windows the run uses, a piece at a time.
 */
export async function checkTokenFile(path: string, o: { seq: number; vocab: number; steps: number; seed?: number }): Promise<{ length: number; dtype: TokenDtype }> {
  const file = await openTokenSource(path);
  try {
    if (file.length < o.seq) throw runtimeErrors.tooFewTokens(file.path, file.length, o.seq);
    const windows = Math.floor(file.length / o.seq);
    // the windows the run reads, in file order: the first ones, or with a seed the seed's picks
    const used = o.seed === undefined || o.steps >= windows
      ? [[0, Math.min(o.steps, windows) * o.seq]]
      : Array.from({ length: o.steps }, (_, k) => windowIndex(k, windows, o.seed)).sort((a, b) => a - b).map((w) => [w * o.seq, (w + 1) * o.seq]);
    for (const [from, to] of used)
      for (let start = from; start < to; start += SCAN_PIECE) {
        const ids = await file.read(start, Math.min(SCAN_PIECE, to - start));
        for (let i = 0; i < ids.length; i++) if (ids[i] >= o.vocab) throw runtimeErrors.tokenNotInVocab(file.path, start + i, ids[i], o.vocab);
      }
    return { length: file.length, dtype: file.dtype };
  } finally {
    await file.close();
  }
}

/** Reads a whole token file. */
export async function readTokens(path: string): Promise<Int32Array> {
  const file = await TokenFile.open(path);
  try {
    return await file.read();
  } finally {
    await file.close();
  }
}

/** The first bytes of a file that decide whether it is text. */
const TEXT_SNIFF_BYTES = 4096;

/**
 * Whether bytes read as text: valid UTF-8 with no NUL and no control characters but tab, line
 * feeds and carriage returns. Token ids below 2^24 as uint32 (or int32, int64) have a zero byte
 * in every element, so no token file of a real vocabulary passes.
 */
export function looksLikeText(bytes: Uint8Array): boolean {
  if (bytes.length === 0) return false;
  let text: string;
  try {
    // a piece cut in the middle of a character is still text: drop the last 3 bytes' worth
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.length === TEXT_SNIFF_BYTES ? trimPartialChar(bytes) : bytes);
  } catch {
    return false;
  }
  return !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text);
}

function trimPartialChar(bytes: Uint8Array): Uint8Array {
  let end = bytes.length;
  // step back over continuation bytes and the lead byte of a character that may be cut
  for (let k = 0; k < 3 && end > 0 && (bytes[end - 1] & 0xc0) === 0x80; k++) end--;
  if (end > 0 && bytes[end - 1] >= 0xc0) end--;
  return bytes.subarray(0, end);
}

const startsWith = (bytes: Uint8Array, prefix: string) => bytes.length >= prefix.length && [...prefix].every((ch, i) => bytes[i] === ch.charCodeAt(0));


function toInt32(path: string, dtype: TokenDtype, buffer: ArrayBuffer, base: number): Int32Array {
  const bad = (i: number, value: bigint | number) =>
    runtimeErrors.badFile(path, `token ${value} at index ${base + i} is not a valid id`, "token ids must be in 0..2^31-1; check the tokenizer and the file's dtype");
  if (dtype === "int64") {
    const src = new BigInt64Array(buffer);
    const out = new Int32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const v = src[i];
      if (v < 0n || v > 0x7fffffffn) throw bad(i, v);
      out[i] = Number(v);
    }
    return out;
  }
  const out = new Int32Array(buffer);
  // The same bits read as int32: uint32 ids >= 2^31 and negative int32 both show up as negative.
  for (let i = 0; i < out.length; i++) {
    if (out[i] < 0) throw bad(i, dtype === "uint32" ? out[i] >>> 0 : out[i]);
  }
  return out;
}

async function readNpyHeader(path: string, fh: FileHandle, size: number): Promise<{ dtype: TokenDtype; length: number; dataStart: number }> {
  const notNpy = (what: string) => runtimeErrors.badFile(path, what, "save it with numpy.save(path, tokens.astype(numpy.uint32))");
  const prefix = new Uint8Array(12);
  if ((await readFully(fh, prefix, 0)) < 10) throw notNpy(`is only ${size} bytes, too short for a .npy header`);
  if (String.fromCharCode(...prefix.subarray(0, 6)) !== NPY_MAGIC) throw notNpy("is not a .npy file (bad magic)");
  const major = prefix[6];
  const view = new DataView(prefix.buffer);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  if (major < 1 || major > 3 || headerStart + headerLength > size) throw notNpy(`has an unsupported .npy version ${major} or a bad header length`);
  const headerBytes = new Uint8Array(headerLength);
  await readFully(fh, headerBytes, headerStart);
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(headerBytes);
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw notNpy("has a header without descr, fortran_order and shape");
  const dtype = NPY_DTYPES[descr];
  if (!dtype) throw notNpy(`holds dtype '${descr}', not uint32, int32 or int64 (little-endian)`);
  const dims = shapeText.split(",").map((d) => d.trim()).filter((d) => d !== "").map(Number);
  if (dims.length !== 1 || !Number.isSafeInteger(dims[0]) || dims[0] < 0) {
    throw runtimeErrors.badFile(path, `holds an array of shape (${shapeText.trim()}), not 1-D`, "flatten it with tokens.reshape(-1) before saving");
  }
  const dataStart = headerStart + headerLength;
  const length = dims[0];
  if (dataStart + length * BYTES[dtype] > size) throw runtimeErrors.badFile(path, `declares ${length} tokens but is only ${size} bytes`, "the file is truncated; regenerate it");
  // numpy writes exactly the declared data: anything after it means the header and data disagree
  if (dataStart + length * BYTES[dtype] < size) throw runtimeErrors.badFile(path, `declares ${length} tokens but holds ${size - dataStart} bytes of data (${BYTES[dtype]} per token)`, "the header and the data disagree; regenerate it with numpy.save");
  return { dtype, length, dataStart };
}
