// Token files: flat little-endian uint32 (.bin and anything not .npy) or
// NumPy .npy arrays of uint32 / int32 / int64, 1-D. Values come back as
// Int32Array, the ABI's token type; reads can be slices of a large file.
import { open, type FileHandle } from "node:fs/promises";

import { runtimeErrors } from "./errors.js";

export type TokenDtype = "uint32" | "int32" | "int64";
const NPY_DTYPES: Record<string, TokenDtype> = { "<u4": "uint32", "<i4": "int32", "<i8": "int64" };
const BYTES: Record<TokenDtype, number> = { uint32: 4, int32: 4, int64: 8 };
const NPY_MAGIC = "\x93NUMPY";

export class TokenFile {
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
      const size = (await fh.stat()).size;
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
  async read(start = 0, count = this.length - start): Promise<Int32Array> {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.length) {
      throw runtimeErrors.badFile(this.path, `tokens [${start}, ${start + count}) are outside the file's ${this.length} tokens`, "use a smaller sequence or a longer token file");
    }
    const width = BYTES[this.dtype];
    const bytes = new Uint8Array(new ArrayBuffer(count * width));
    let done = 0;
    while (done < bytes.length) {
      const { bytesRead } = await this.fh.read(bytes, done, Math.min(1 << 30, bytes.length - done), this.dataStart + start * width + done);
      if (bytesRead === 0) throw runtimeErrors.badFile(this.path, "ends early", "the file is truncated; regenerate it");
      done += bytesRead;
    }
    return toInt32(this.path, this.dtype, bytes.buffer, start);
  }

  async close(): Promise<void> {
    await this.fh.close();
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
  await fh.read(prefix, 0, 12, 0);
  if (String.fromCharCode(...prefix.subarray(0, 6)) !== NPY_MAGIC) throw notNpy("is not a .npy file (bad magic)");
  const major = prefix[6];
  const view = new DataView(prefix.buffer);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  if (major < 1 || major > 3 || headerStart + headerLength > size) throw notNpy(`has an unsupported .npy version ${major} or a bad header length`);
  const headerBytes = new Uint8Array(headerLength);
  await fh.read(headerBytes, 0, headerLength, headerStart);
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(headerBytes);
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw notNpy("has a header without descr, fortran_order and shape");
  const dtype = NPY_DTYPES[descr];
  if (!dtype) throw notNpy(`holds dtype '${descr}', not uint32, int32 or int64 (little-endian)`);
  const dims = shapeText.split(",").map((d) => d.trim()).filter((d) => d !== "").map(Number);
  if (dims.length !== 1 || !Number.isInteger(dims[0])) {
    throw runtimeErrors.badFile(path, `holds an array of shape (${shapeText.trim()}), not 1-D`, "flatten it with tokens.reshape(-1) before saving");
  }
  const dataStart = headerStart + headerLength;
  const length = dims[0];
  if (dataStart + length * BYTES[dtype] > size) throw runtimeErrors.badFile(path, `declares ${length} tokens but is only ${size} bytes`, "the file is truncated; regenerate it");
  return { dtype, length, dataStart };
}
