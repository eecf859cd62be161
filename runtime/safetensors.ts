// safetensors files: an 8-byte little-endian header length, a JSON header
// naming each tensor's dtype, shape and byte range, then the raw data. Reads
// go by offset, one tensor (or one slice of it) at a time, so a 140 GB file
// never has to fit in memory.
import { endianness } from "node:os";
import { open, type FileHandle } from "node:fs/promises";

import { firstLine, runtimeErrors } from "./errors.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./numeric.js";
import { IO_PIECE_BYTES, readFully } from "./read-fully.js";

export type Dtype = "F32" | "BF16" | "F16" | "I32";
export const DTYPE_BYTES: Record<Dtype, number> = { F32: 4, BF16: 2, F16: 2, I32: 4 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface TensorSpec {
  name: string;
  dtype: Dtype;
  shape: number[];
}

export type TensorData = Float32Array | Int32Array | Uint16Array;

export interface TensorWithData extends TensorSpec {
  /** Float32Array (converted to the dtype), or the dtype's own array: Int32Array for I32, Uint16Array bits for BF16/F16. */
  data: TensorData;
}

function assertLittleEndianHost(): void {
  if (endianness() !== "LE") throw new Error("safetensors: this runtime needs a little-endian host");
}

export function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isDtype(value: unknown): value is Dtype {
  return typeof value === "string" && value in DTYPE_BYTES;
}


async function writeFully(fh: FileHandle, source: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < source.length) {
    const length = Math.min(IO_PIECE_BYTES, source.length - done);
    const { bytesWritten } = await fh.write(source, done, length, position + done);
    done += bytesWritten;
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** A header value as a short piece of a message. */
function shortJson(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class SafetensorsReader {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly metadata: Record<string, string>,
    readonly tensors: Map<string, TensorEntry>,
  ) {}

  static async open(path: string): Promise<SafetensorsReader> {
    assertLittleEndianHost();
    const bad = (what: string) => runtimeErrors.badFile(path, what, "the file is not a valid safetensors file; re-export it");
    let fh: FileHandle;
    try {
      fh = await open(path, "r");
    } catch (e) {
      throw runtimeErrors.badFile(path, `cannot be opened (${(e as NodeJS.ErrnoException).code ?? e})`, "check the path");
    }
    try {
      const size = (await fh.stat()).size;
      const lengthBytes = new Uint8Array(8);
      if ((await readFully(fh, lengthBytes, 0)) < 8) throw bad(`only ${size} bytes, shorter than the 8-byte header length`);
      const headerLength = Number(new DataView(lengthBytes.buffer).getBigUint64(0, true));
      if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) {
        throw bad(`header length ${headerLength} does not fit the file of ${size} bytes`);
      }
      const headerBytes = new Uint8Array(headerLength);
      await readFully(fh, headerBytes, 8);
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder().decode(headerBytes));
      } catch (e) {
        throw bad(`header is not JSON (${firstLine((e as Error).message)})`);
      }
      if (!isPlainObject(parsed)) throw bad(`header is ${shortJson(parsed)}, not a JSON object of tensors`);
      const header = parsed;
      const dataStart = 8 + headerLength;
      const tensors = new Map<string, TensorEntry>();
      let metadata: Record<string, string> = {};
      for (const [name, value] of Object.entries(header)) {
        if (name === "__metadata__") {
          if (value !== null && !isPlainObject(value)) throw bad(`__metadata__ is ${shortJson(value)}, not an object of strings`);
          metadata = (value ?? {}) as Record<string, string>;
          continue;
        }
        if (!isPlainObject(value)) throw bad(`tensor '${name}' is described by ${shortJson(value)}, not an object with dtype, shape and data_offsets`);
        const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
        if (!isDtype(v.dtype)) {
          throw runtimeErrors.badFile(path, `tensor '${name}' has dtype ${shortJson(v.dtype)}`, "only F32, BF16, F16 and I32 are supported; convert it");
        }
        const shape = v.shape;
        const offsets = v.data_offsets;
        if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`tensor '${name}' has shape ${shortJson(shape)}`);
        if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
          throw bad(`tensor '${name}' has data_offsets ${shortJson(offsets)}`);
        }
        const [b, e] = offsets as [number, number];
        const need = numel(shape as number[]) * DTYPE_BYTES[v.dtype];
        if (e - b !== need) throw bad(`tensor '${name}' has data_offsets [${b}, ${e}] (${e - b} bytes) but ${v.dtype} ${shortJson(shape)} needs ${need} bytes`);
        if (dataStart + e > size) throw bad(`tensor '${name}' ends at byte ${dataStart + e}, past the end of the file (${size} bytes; truncated?)`);
        tensors.set(name, { name, dtype: v.dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
      }
      // two tensors over the same bytes would alias: writing one would change the other
      const byStart = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
      for (let i = 1; i < byStart.length; i++) {
        const [a, b] = [byStart[i - 1], byStart[i]];
        if (b.begin < a.end) throw bad(`tensors '${a.name}' and '${b.name}' share bytes [${b.begin - dataStart}, ${Math.min(a.end, b.end) - dataStart}) of the data`);
      }
      return new SafetensorsReader(path, fh, metadata, tensors);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  entry(name: string): TensorEntry {
    const t = this.tensors.get(name);
    if (!t) {
      const known = this.names();
      throw runtimeErrors.badFile(this.path, `has no tensor '${name}'`, `it has ${known.length}: ${known.slice(0, 6).join(", ")}${known.length > 6 ? ", ..." : ""}`);
    }
    return t;
  }

  private range(t: TensorEntry, offset: number, count: number | undefined): [number, number] {
    const total = numel(t.shape);
    const n = count ?? total - offset;
    if (!Number.isInteger(offset) || !Number.isInteger(n) || offset < 0 || n < 0 || offset + n > total) {
      throw runtimeErrors.badFile(this.path, `slice [${offset}, ${offset + n}) of tensor '${t.name}' is outside its ${total} elements`, "pass an offset and count within the tensor");
    }
    return [offset, n];
  }

  /** Raw bytes of elements [offset, offset+count) of the flattened tensor, in its own dtype. */
  async readRaw(name: string, offset = 0, count?: number): Promise<Uint8Array> {
    const t = this.entry(name);
    const [start, n] = this.range(t, offset, count);
    const size = DTYPE_BYTES[t.dtype];
    const out = new Uint8Array(new ArrayBuffer(n * size));
    const got = await readFully(this.fh, out, t.begin + start * size);
    if (got !== out.length) throw runtimeErrors.badFile(this.path, `tensor '${name}' is cut short`, "the file is truncated; re-download it");
    return out;
  }

  /** Elements [offset, offset+count) as fp32 (BF16/F16/I32 converted). */
  async readF32(name: string, offset = 0, count?: number): Promise<Float32Array> {
    const t = this.entry(name);
    const raw = await this.readRaw(name, offset, count);
    switch (t.dtype) {
      case "F32":
        return new Float32Array(raw.buffer, 0, raw.length / 4);
      case "BF16":
        return bf16ToF32(new Uint16Array(raw.buffer, 0, raw.length / 2));
      case "F16":
        return f16ToF32(new Uint16Array(raw.buffer, 0, raw.length / 2));
      case "I32":
        return Float32Array.from(new Int32Array(raw.buffer, 0, raw.length / 4));
    }
  }

  async readI32(name: string, offset = 0, count?: number): Promise<Int32Array> {
    const t = this.entry(name);
    if (t.dtype !== "I32") throw runtimeErrors.badFile(this.path, `tensor '${name}' is ${t.dtype}, not I32`, "use readF32 for floating-point tensors");
    const raw = await this.readRaw(name, offset, count);
    return new Int32Array(raw.buffer, 0, raw.length / 4);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Header bytes for `specs`, laid out in order, padded with spaces to 8 bytes. */
export function encodeHeader(specs: TensorSpec[], metadata?: Record<string, string>): { bytes: Uint8Array; offsets: Map<string, number> } {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  const offsets = new Map<string, number>();
  let at = 0;
  for (const s of specs) {
    if (offsets.has(s.name)) throw runtimeErrors.badFile("safetensors writer", `tensor '${s.name}' is listed twice`, "give every tensor a unique name");
    if (!isDtype(s.dtype)) throw runtimeErrors.badFile("safetensors writer", `tensor '${s.name}' has dtype ${s.dtype}`, "use F32, BF16, F16 or I32");
    const bytes = numel(s.shape) * DTYPE_BYTES[s.dtype];
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [at, at + bytes] };
    offsets.set(s.name, at);
    at += bytes;
  }
  let json = JSON.stringify(header);
  const encoded = new TextEncoder().encode(json);
  const padded = Math.ceil(encoded.length / 8) * 8;
  json += " ".repeat(padded - encoded.length);
  const body = new TextEncoder().encode(json);
  const bytes = new Uint8Array(8 + body.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(body.length), true);
  bytes.set(body, 8);
  return { bytes, offsets };
}

/** Writes a file whose tensors are declared up front and filled one at a time, in any order. */
export class SafetensorsWriter {
  private readonly written = new Set<string>();

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly specs: Map<string, TensorSpec>,
    private readonly offsets: Map<string, number>,
    private readonly dataStart: number,
    private readonly dataBytes: number,
  ) {}

  static async create(path: string, specs: TensorSpec[], metadata?: Record<string, string>): Promise<SafetensorsWriter> {
    assertLittleEndianHost();
    const { bytes, offsets } = encodeHeader(specs, metadata);
    const fh = await open(path, "w");
    await writeFully(fh, bytes, 0);
    const dataBytes = specs.reduce((sum, s) => sum + numel(s.shape) * DTYPE_BYTES[s.dtype], 0);
    return new SafetensorsWriter(path, fh, new Map(specs.map((s) => [s.name, s])), offsets, bytes.length, dataBytes);
  }

  /**
   * Writes elements [offset, offset + data.length) of tensor `name`. Float32Array
   * data is converted to the tensor's dtype; Uint16Array is taken as BF16/F16 bits.
   */
  async write(name: string, data: TensorData, offset = 0): Promise<void> {
    const spec = this.specs.get(name);
    if (!spec) throw runtimeErrors.badFile(this.path, `tensor '${name}' was not declared`, "list it in SafetensorsWriter.create");
    const total = numel(spec.shape);
    if (offset < 0 || offset + data.length > total) {
      throw runtimeErrors.badFile(this.path, `writing [${offset}, ${offset + data.length}) of tensor '${name}' exceeds its ${total} elements`, "pass data of the declared shape");
    }
    const encoded = encodeData(this.path, spec, data);
    await writeFully(this.fh, bytesOf(encoded), this.dataStart + this.offsets.get(name)! + offset * DTYPE_BYTES[spec.dtype]);
    this.written.add(name);
  }

  /** Declared tensors that nothing was written to yet. */
  unwritten(): string[] {
    return [...this.specs.keys()].filter((n) => !this.written.has(n));
  }

  /**
   * Sizes the file to its declared length (unwritten ranges read as zeros), flushes it to disk
   * (a caller that renames it into place next must not publish bytes still in the page cache)
   * and closes it.
   */
  async close(): Promise<void> {
    try {
      await this.fh.truncate(this.dataStart + this.dataBytes);
      await this.fh.sync();
    } finally {
      await this.fh.close();
    }
  }
}

function encodeData(path: string, spec: TensorSpec, data: TensorData): TensorData {
  const mismatch = () =>
    runtimeErrors.badFile(path, `tensor '${spec.name}' is ${spec.dtype} but was given a ${data.constructor.name}`, "pass a Float32Array (converted) or the dtype's own array");
  switch (spec.dtype) {
    case "F32":
      if (!(data instanceof Float32Array)) throw mismatch();
      return data;
    case "BF16":
      if (data instanceof Float32Array) return f32ToBf16(data);
      if (!(data instanceof Uint16Array)) throw mismatch();
      return data;
    case "F16":
      if (data instanceof Float32Array) return f32ToF16(data);
      if (!(data instanceof Uint16Array)) throw mismatch();
      return data;
    case "I32":
      if (!(data instanceof Int32Array)) throw mismatch();
      return data;
  }
}

/** Writes all tensors at once (small files, tests, checkpoints of one rank). */
export async function writeSafetensors(path: string, tensors: TensorWithData[], metadata?: Record<string, string>): Promise<void> {
  for (const t of tensors) {
    if (t.data.length !== numel(t.shape)) {
      throw runtimeErrors.badFile(path, `tensor '${t.name}' has ${t.data.length} values for shape ${JSON.stringify(t.shape)} (${numel(t.shape)})`, "pass data matching the shape");
    }
  }
  const writer = await SafetensorsWriter.create(path, tensors, metadata);
  try {
    for (const t of tensors) await writer.write(t.name, t.data);
  } finally {
    await writer.close();
  }
}
