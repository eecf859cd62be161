// The documents of a packed program's steps (compiled with --packed; lower/packed.ts): beside
// each step's tokens, per token its document id, its position in its document, and its label
// (runtime/packed-window.ts says how a window is cut). Where documents start comes from, in this
// order: --eod-token ID, --documents FILE, or the document index of an indexed dataset given as
// --tokens; --loss-mask FILE (one 0/1 per token of the token file) ignores labels beside.
import { runtimeErrors } from '../../runtime/errors.js';
import { eodBoundaries, fileBoundaries, indexedBoundaries, type DocumentBoundaries } from '../../runtime/document-boundaries.js';
import { IndexedDataset } from '../../runtime/indexed-dataset.js';
import { concatWindows, packWindow, type PackedWindow } from '../../runtime/packed-window.js';
import { openTokenSource, windowIndex, type TokenSource } from '../../runtime/tokens.js';
import { errors } from '../errors.js';

export interface DocumentFlags {
  /** --eod-token ID: a document starts after each token ID */
  eodToken?: number;
  /** --documents FILE: document start offsets in the token file */
  documents?: string;
  /** --loss-mask FILE: 0 ignores the label at that token, 1 counts it */
  lossMask?: string;
}

export class PackedData {
  private constructor(
    /** the boundary source, as the run's log names it */
    readonly describe: string,
    private readonly bounds: DocumentBoundaries,
    private readonly mask: TokenSource | undefined,
    /** tokens in the token file; undefined for seeded random tokens */
    private readonly length: number | undefined,
  ) {}

  /** Opens and checks the sources (a bad file or flag is one line) before any GPU work. */
  static async open(dir: string, tokens: string | undefined, f: DocumentFlags): Promise<PackedData> {
    if (f.eodToken !== undefined && f.documents !== undefined) throw errors.badFlag('documents', f.documents, 'either --eod-token or --documents, not both');
    let length: number | undefined;
    let indexed: string | undefined;
    if (tokens) {
      const src = await openTokenSource(tokens);
      length = src.length;
      if (src instanceof IndexedDataset) indexed = src.path.replace(/\.bin$/, '');
      await src.close();
    }
    for (const [flag, value] of [['documents', f.documents], ['loss-mask', f.lossMask]] as const)
      if (value !== undefined && length === undefined) throw errors.badFlag(flag, value, 'needs --tokens FILE (it describes the tokens of a file, not seeded random ones)');
    let bounds: DocumentBoundaries;
    if (f.eodToken !== undefined) bounds = eodBoundaries(f.eodToken);
    else if (f.documents !== undefined) bounds = await fileBoundaries(f.documents, length!);
    else if (indexed) bounds = await indexedBoundaries(indexed);
    else throw errors.packedNeedsDocuments(dir);
    let mask: TokenSource | undefined;
    if (f.lossMask !== undefined) {
      mask = await openTokenSource(f.lossMask);
      if (mask.length !== length) {
        await mask.close();
        throw runtimeErrors.badFile(f.lossMask, `holds ${mask.length} values but the token file ${length} tokens`, 'write one 0/1 per token of --tokens');
      }
    }
    return new PackedData(`${bounds.describe}${f.lossMask ? `, loss mask ${f.lossMask}` : ''}`, bounds, mask, length);
  }

  /**
   * Step k's windows, the dp groups' one after another as `batch` holds their tokens: group g reads
   * window dp*k + g of the token file (in --seed's order when shuffled), as loop.ts' stepBatch does.
   */
  async step(batch: Int32Array, seq: number, k: number, dp: number, shuffle?: number): Promise<PackedWindow> {
    const windows: PackedWindow[] = [];
    for (let g = 0; g < dp; g++) {
      const tokens = batch.subarray(g * seq, (g + 1) * seq);
      const from = this.length === undefined ? 0 : windowIndex(dp * k + g, Math.floor(this.length / seq), shuffle) * seq;
      windows.push(packWindow(tokens, await this.bounds.startsIn(from, tokens), this.mask ? await this.maskAt(from, seq) : undefined));
    }
    return concatWindows(windows);
  }

  private async maskAt(from: number, seq: number): Promise<Int32Array> {
    const m = await this.mask!.read(from, seq);
    const bad = m.findIndex((x) => x !== 0 && x !== 1);
    if (bad >= 0) throw runtimeErrors.badFile(this.mask!.path, `value ${m[bad]} at index ${from + bad} is not 0 or 1`, 'write 1 where a label counts and 0 where it does not');
    return m;
  }

  async close(): Promise<void> {
    await this.bounds.close();
    await this.mask?.close();
  }
}
