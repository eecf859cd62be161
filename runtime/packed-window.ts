// One window of packed documents as a packed program takes it (fpdt_set_documents beside
// fpdt_set_tokens): per token its document id, its position inside its document, and its label.
//
// - A document starts at the window's first token and at every start the boundary source gives
//   inside the window. A document cut by the window's start therefore trains its tail as a new
//   document, positions from 0 (what Megatron's reset_position_ids and HF's packing collators do);
//   its head, in the window before, ends there the same way.
// - The label at t is the next token when it belongs to the same document and is inside the
//   window, else FPDT_IGNORE_LABEL (-100): no token predicts the next document's first token, and
//   the window's last token predicts nothing (as without packing). A loss mask of 0 at t ignores
//   the label at t as well (e.g. the prompt of an SFT example).
// - Ids count documents from 0 along the window, so they never decrease (the kernels rely on it).
export const IGNORE_LABEL = -100;

export interface PackedWindow {
  readonly labels: Int32Array;
  readonly positions: Int32Array;
  readonly docs: Int32Array;
  /** documents in the window (the last id + 1) */
  readonly documents: number;
  /** labels that count */
  readonly counted: number;
}

/**
 * The window of `tokens` with documents starting at `starts` (offsets inside the window, ascending;
 * 0 and repeats are allowed and change nothing) and, optionally, `mask` (one value per token, 0: do
 * not count the label at that token).
 */
export function packWindow(tokens: Int32Array, starts: readonly number[], mask?: ArrayLike<number>): PackedWindow {
  const n = tokens.length;
  const labels = new Int32Array(n);
  const positions = new Int32Array(n);
  const docs = new Int32Array(n);
  let k = 0;
  let doc = 0;
  let first = 0;
  let counted = 0;
  const isStart = (t: number) => {
    while (k < starts.length && starts[k] < t) k++;
    return k < starts.length && starts[k] === t;
  };
  for (let t = 0; t < n; t++) {
    if (t > 0 && isStart(t)) {
      doc++;
      first = t;
    }
    docs[t] = doc;
    positions[t] = t - first;
  }
  for (let t = 0; t < n; t++) {
    const next = t + 1 < n && docs[t + 1] === docs[t] && (!mask || mask[t] !== 0);
    labels[t] = next ? tokens[t + 1] : IGNORE_LABEL;
    if (next) counted++;
  }
  return { labels, positions, docs, documents: n > 0 ? doc + 1 : 0, counted };
}

/** Offsets inside the window where a document starts after an end-of-document token (the token after each `eod`). */
export function eodStarts(tokens: Int32Array, eod: number): number[] {
  const out: number[] = [];
  for (let t = 0; t + 1 < tokens.length; t++) if (tokens[t] === eod) out.push(t + 1);
  return out;
}

/** Several windows one after another (dp groups), as fpdt_set_tokens and fpdt_set_documents take them. */
export function concatWindows(ws: readonly PackedWindow[]): PackedWindow {
  const join = (pick: (w: PackedWindow) => Int32Array) => {
    const out = new Int32Array(ws.reduce((n, w) => n + pick(w).length, 0));
    let at = 0;
    for (const w of ws) {
      out.set(pick(w), at);
      at += pick(w).length;
    }
    return out;
  };
  return {
    labels: join((w) => w.labels),
    positions: join((w) => w.positions),
    docs: join((w) => w.docs),
    documents: ws.reduce((n, w) => n + w.documents, 0),
    counted: ws.reduce((n, w) => n + w.counted, 0),
  };
}
