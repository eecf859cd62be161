// Where documents start in a token stream, for packed programs (runtime/packed-window.ts cuts a
// window of them). Three sources, one per flag of `fpdtc run`:
// - an indexed dataset's document index (--tokens PREFIX with PREFIX.idx): each entry of the
//   .idx's doc indices names the first sequence of a document; its first token starts it;
// - an end-of-document token (--eod-token ID): a document starts after each one;
// - a boundaries file (--documents FILE): the start offsets in the token stream, ascending, as text
//   (whitespace-separated decimal numbers) or a 1-D .npy array of integers.
// Each reads only what a window needs (the .idx by positioned reads, a piece at a time), so a
// corpus of any size costs no memory up front. Bad data is one line: the file, what, what to do.
import { readFileSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";

import { runtimeErrors } from "./errors.js";
import { INDEXED_DTYPES, MMIDIDX_MAGIC } from "./indexed-dataset.js";
import { eodStarts } from "./packed-window.js";
import { readFully } from "./read-fully.js";
import { readTokens } from "./tokens.js";

export interface DocumentBoundaries {
  /** how the run names its source: "the document index of data.idx", "--eod-token 2", ... */
  readonly describe: string;
  /** Offsets, from `from`, of the documents that start inside the window of `tokens` read at `from`. */
  startsIn(from: number, tokens: Int32Array): Promise<number[]>;
  close(): Promise<void>;
}

export function eodBoundaries(eod: number): DocumentBoundaries {
  return { describe: `--eod-token ${eod}`, startsIn: async (_from, tokens) => eodStarts(tokens, eod), close: async () => {} };
}

/** The first index in [lo, hi) where `above(i)` holds (hi when none), for a predicate false then true. */
async function firstWhere(lo: number, hi: number, above: (i: number) => Promise<boolean>): Promise<number> {
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (await above(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The start offsets a --documents FILE lists (text or .npy), checked to ascend; `fpdtc inspect --documents` reads them too. */
export async function readDocumentStarts(path: string): Promise<number[]> {
  const fix = "write one start offset per document, ascending, in the token stream's positions (text, or a .npy of integers)";
  let starts: number[];
  if (path.endsWith(".npy")) starts = Array.from(await readTokens(path));
  else {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      throw runtimeErrors.badFile(path, `cannot be read (${(e as NodeJS.ErrnoException).code ?? e})`, "check the --documents path");
    }
    const words = text.split(/\s+/).filter((w) => w !== "");
    starts = words.map((w, i) => {
      if (!/^\d+$/.test(w)) throw runtimeErrors.badFile(path, `entry ${i + 1} '${w.slice(0, 20)}' is not a whole number`, fix);
      return Number(w);
    });
  }
  if (starts.length === 0) throw runtimeErrors.badFile(path, "lists no document start", fix);
  for (let i = 1; i < starts.length; i++)
    if (starts[i] <= starts[i - 1]) throw runtimeErrors.badFile(path, `entry ${i + 1} (${starts[i]}) does not come after entry ${i} (${starts[i - 1]})`, fix);
  return starts;
}

/** --documents FILE: every start offset read once (a file of starts is small beside its corpus). */
export async function fileBoundaries(path: string, streamLength: number): Promise<DocumentBoundaries> {
  const starts = await readDocumentStarts(path);
  const past = starts.findIndex((x) => x >= streamLength);
  if (past >= 0) throw runtimeErrors.badFile(path, `entry ${past + 1} (${starts[past]}) is past the token stream's ${streamLength} tokens`, "use the boundaries of this token file");
  return {
    describe: `--documents ${path} (${starts.length} documents)`,
    startsIn: async (from, tokens) => {
      const out: number[] = [];
      for (let i = await firstWhere(0, starts.length, async (k) => starts[k] > from); i < starts.length && starts[i] < from + tokens.length; i++) out.push(starts[i] - from);
      return out;
    },
    close: async () => {},
  };
}

const HEADER_BYTES = 9 + 8 + 1 + 8 + 8;
/** Document index entries read per piece. */
const DOC_PIECE = 4096;

/**
 * The document index of PREFIX.idx: entries (first sequence of each document, 0 first, n last)
 * are checked once, a piece at a time; a window then finds its starts by positioned reads.
 */
export async function indexedBoundaries(prefix: string): Promise<DocumentBoundaries> {
  const path = `${prefix}.idx`;
  const bad = (what: string) => runtimeErrors.badFile(path, what, "write the dataset again with the indexed dataset builder, or give --eod-token or --documents");
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw runtimeErrors.badFile(path, `cannot be opened (${(e as NodeJS.ErrnoException).code ?? e})`, "pass --tokens PREFIX of a PREFIX.bin and PREFIX.idx pair");
  }
  try {
    const head = new Uint8Array(HEADER_BYTES);
    if ((await readFully(fh, head, 0)) < HEADER_BYTES || String.fromCharCode(...head.subarray(0, 9)) !== MMIDIDX_MAGIC) throw bad("is not an MMIDIDX index");
    const view = new DataView(head.buffer);
    const width = INDEXED_DTYPES[view.getUint8(17)]?.bytes;
    if (!width) throw bad("holds a token type other than uint16 or int32");
    const n = Number(view.getBigUint64(18, true));
    const d = Number(view.getBigUint64(26, true));
    const pointersAt = HEADER_BYTES + n * 4;
    const docsAt = pointersAt + n * 8;
    const int64s = async (at: number, count: number) => {
      const out = new BigInt64Array(count);
      if ((await readFully(fh, new Uint8Array(out.buffer), at)) < count * 8) throw bad("ends early");
      return Array.from(out, Number);
    };
    if (d < 2) throw bad(`has ${d} document index entries: no document (an empty index has the one entry 0)`);
    let prev = -1;
    for (let first = 0; first < d; first += DOC_PIECE) {
      const piece = await int64s(docsAt + first * 8, Math.min(DOC_PIECE, d - first));
      piece.forEach((s, i) => {
        const at = first + i;
        if ((at === 0 && s !== 0) || s < prev || s > n) throw bad(`document index entry ${at} is ${s} (after ${prev}; entries run from 0 up to the ${n} sequences)`);
        prev = s;
      });
    }
    if (prev !== n) throw bad(`document index ends at sequence ${prev}, not at the ${n} sequences`);
    const sizes = await (async () => {
      if (n === 0) return 0;
      const last = new Int32Array(1);
      await readFully(fh, new Uint8Array(last.buffer), HEADER_BYTES + (n - 1) * 4);
      return (await int64s(pointersAt + (n - 1) * 8, 1))[0] / width + last[0];
    })();
    /** the first token of sequence s (the stream's length for s = n) */
    const tokenAt = async (s: number) => (s >= n ? sizes : (await int64s(pointersAt + s * 8, 1))[0] / width);
    const docStart = async (k: number) => tokenAt((await int64s(docsAt + k * 8, 1))[0]);
    return {
      describe: `the document index of ${path} (${d - 1} documents)`,
      startsIn: async (from, tokens) => {
        const out: number[] = [];
        const end = from + tokens.length;
        // entry d-1 is the end of the stream, not a document
        for (let k = await firstWhere(0, d - 1, async (i) => (await docStart(i)) > from); k < d - 1; k += DOC_PIECE) {
          const seqs = await int64s(docsAt + k * 8, Math.min(DOC_PIECE, d - 1 - k));
          for (const s of seqs) {
            const t = await tokenAt(s);
            if (t >= end) return out;
            out.push(t - from);
          }
        }
        return out;
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}
