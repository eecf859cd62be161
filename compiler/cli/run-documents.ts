// `fpdtc run`'s flags for packed programs (compiled with --packed): where documents start
// (--eod-token ID, --documents FILE, or an indexed dataset's document index) and the loss mask
// (--loss-mask FILE). Parsed with the other flags, and the sources they name are opened and
// checked before any GPU work (compiler/train/packed-data.ts reads them at each step).
import { RuntimeError } from '../../runtime/errors.js';
import { errors } from '../errors.js';
import { PackedData, type DocumentFlags } from '../train/packed-data.js';

export interface RawDocumentFlags {
  eodToken?: string;
  documents?: string;
  lossMask?: string;
}

export function documentFlags(o: RawDocumentFlags): DocumentFlags {
  const out: DocumentFlags = {};
  if (o.eodToken !== undefined) {
    const n = /^\d+$/.test(o.eodToken) ? Number(o.eodToken) : NaN;
    if (!Number.isSafeInteger(n) || n > 0x7fffffff) throw errors.badFlag('eod-token', o.eodToken, 'a token id, a whole number (the tokenizer\'s end-of-document id)');
    out.eodToken = n;
  }
  if (o.documents !== undefined) out.documents = o.documents;
  if (o.lossMask !== undefined) out.lossMask = o.lossMask;
  return out;
}

/** The flags fit the program (packed or not), and the sources they name open and check. */
export async function checkDocumentFlags(dir: string, packed: boolean, tokens: string | undefined, f: DocumentFlags): Promise<void> {
  if (!packed) {
    const given = f.eodToken !== undefined ? 'eod-token' : f.documents !== undefined ? 'documents' : f.lossMask !== undefined ? 'loss-mask' : undefined;
    if (given) throw errors.documentsNeedPacked(dir, given);
    return;
  }
  try {
    await (await PackedData.open(dir, tokens, f)).close();
  } catch (e) {
    throw e instanceof RuntimeError ? errors.runtime(e.message) : e;
  }
}
