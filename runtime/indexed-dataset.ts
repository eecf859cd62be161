// Megatron-style indexed datasets as a token stream: PREFIX.bin holds the token ids, PREFIX.idx
// says how they split into sequences. The .idx layout (all little-endian):
//   magic         9 bytes  "MMIDIDX\0\0"
//   version       uint64   1
//   dtype code    uint8    4 = int32, 8 = uint16 (the others, floats and bytes, are refused)
//   sequences     uint64   n
//   doc entries   uint64   d (document boundaries, n + 1 for one sequence per document)
//   sizes         int32[n]  tokens in each sequence
//   pointers      int64[n]  byte offset of each sequence in .bin
//   doc indices   int64[d]  first sequence of each document
// We use the dtype, n, d (to check the file's length), the sizes (the stream's length) and the
// pointers (checked to lie back to back from 0, so the stream is .bin read flat, as the builder
// writes it). Document indices do not change the stream: documents are concatenated. The index is
// read a piece at a time and .bin is read per window, so neither file is held in memory.
import { open, type FileHandle } from "node:fs/promises";

import { runtimeErrors } from "./errors.js";
import { readFully } from "./read-fully.js";

export const MMIDIDX_MAGIC = "MMIDIDX\x00\x00";
const HEADER_BYTES = 9 + 8 + 1 + 8 + 8;
/** Megatron's dtype codes for the token types a vocabulary uses. */
export const INDEXED_DTYPES: Record<number, { name: "uint16" | "int32"; bytes: number }> = { 4: { name: "int32", bytes: 4 }, 8: { name: "uint16", bytes: 2 } };
const OTHER_DTYPES: Record<number, string> = { 1: "uint8", 2: "int8", 3: "int16", 5: "int64", 6: "float64", 7: "float32" };
/** Index entries read per piece while checking the pointers. */
const INDEX_PIECE = 1 << 20;

export class IndexedDataset {
  private constructor(
    /** the .bin path, named in errors about tokens */
    readonly path: string,
    private readonly bin: FileHandle,
    readonly dtype: "uint16" | "int32",
    /** tokens in the stream: the sum of the sequence sizes */
    readonly length: number,
  ) {}

  static async open(prefix: string): Promise<IndexedDataset> {
    const idxPath = `${prefix}.idx`;
    const binPath = `${prefix}.bin`;
    const idx = await openFile(idxPath);
    let bin: FileHandle | undefined;
    try {
      const { dtype, length } = await readIndex(idxPath, idx);
      bin = await openFile(binPath);
      const binBytes = (await bin.stat()).size;
      if (binBytes !== length * INDEXED_DTYPES[dtype].bytes) {
        throw runtimeErrors.badFile(binPath, `holds ${binBytes} bytes but ${idxPath} lists ${length} ${INDEXED_DTYPES[dtype].name} tokens (${length * INDEXED_DTYPES[dtype].bytes} bytes)`, "the pair is from two builds; write them again together");
      }
      return new IndexedDataset(binPath, bin, INDEXED_DTYPES[dtype].name, length);
    } catch (e) {
      await bin?.close();
      throw e;
    } finally {
      await idx.close();
    }
  }

  /** Tokens [start, start + count) of the stream as int32. */
  async read(start: number, count: number): Promise<Int32Array> {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.length) {
      throw runtimeErrors.badFile(this.path, `tokens [${start}, ${start + count}) are outside the dataset's ${this.length} tokens`, "use a smaller sequence or a longer dataset");
    }
    const width = this.dtype === "uint16" ? 2 : 4;
    const bytes = new Uint8Array(count * width);
    if ((await readFully(this.bin, bytes, start * width)) < bytes.length) throw runtimeErrors.badFile(this.path, "ends early", "the file is truncated; write it again");
    if (this.dtype === "uint16") return Int32Array.from(new Uint16Array(bytes.buffer));
    const ids = new Int32Array(bytes.buffer);
    const bad = ids.findIndex((id) => id < 0);
    if (bad >= 0) throw runtimeErrors.badFile(this.path, `token ${ids[bad]} at index ${start + bad} is not a valid id`, "token ids must be in 0..2^31-1; check the tokenizer");
    return ids;
  }

  async close(): Promise<void> {
    await this.bin.close();
  }
}

async function openFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (e) {
    throw runtimeErrors.badFile(path, `cannot be opened (${(e as NodeJS.ErrnoException).code ?? e})`, "pass --tokens PREFIX of a PREFIX.bin and PREFIX.idx pair");
  }
}

/** The header and the sequence table: dtype code and the stream's length in tokens. */
async function readIndex(path: string, fh: FileHandle): Promise<{ dtype: number; length: number }> {
  const bad = (what: string) => runtimeErrors.badFile(path, what, "write the dataset again with the indexed dataset builder");
  const size = (await fh.stat()).size;
  const head = new Uint8Array(HEADER_BYTES);
  if ((await readFully(fh, head, 0)) < HEADER_BYTES) throw bad(`is only ${size} bytes, too short for an index header`);
  if (String.fromCharCode(...head.subarray(0, 9)) !== MMIDIDX_MAGIC) throw bad("is not an MMIDIDX index (bad magic)");
  const view = new DataView(head.buffer);
  const version = view.getBigUint64(9, true);
  if (version !== 1n) throw bad(`has index version ${version}, not 1`);
  const dtype = view.getUint8(17);
  if (!INDEXED_DTYPES[dtype]) throw bad(`holds ${OTHER_DTYPES[dtype] ?? `unknown dtype code ${dtype}`} tokens, not uint16 (code 8) or int32 (code 4)`);
  const sequences = Number(view.getBigUint64(18, true));
  const docs = Number(view.getBigUint64(26, true));
  const expected = HEADER_BYTES + sequences * 12 + docs * 8;
  if (expected !== size) throw bad(`lists ${sequences} sequences and ${docs} document entries (${expected} bytes) but is ${size} bytes`);
  const width = INDEXED_DTYPES[dtype].bytes;
  // sizes and pointers a piece at a time: each sequence must start where the previous one ended
  let tokens = 0;
  for (let first = 0; first < sequences; first += INDEX_PIECE) {
    const n = Math.min(INDEX_PIECE, sequences - first);
    const sizes = new Int32Array(n);
    const pointers = new BigInt64Array(n);
    await readFully(fh, new Uint8Array(sizes.buffer), HEADER_BYTES + first * 4);
    await readFully(fh, new Uint8Array(pointers.buffer), HEADER_BYTES + sequences * 4 + first * 8);
    for (let i = 0; i < n; i++) {
      if (sizes[i] < 0) throw bad(`sequence ${first + i} has size ${sizes[i]}`);
      if (pointers[i] !== BigInt(tokens * width)) throw bad(`sequence ${first + i} starts at byte ${pointers[i]}, not ${tokens * width} where the one before ends (sequences must lie back to back)`);
      tokens += sizes[i];
    }
  }
  return { dtype, length: tokens };
}

