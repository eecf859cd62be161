// ZeRO-3 shards of every parameter (and gradient) of the ranks one process holds, packed into one
// buffer so that another process can put the whole tensors together: a JSON header (which
// tensors, each shard's offset and length) then the fp32 values in header order.
import type { RankSet } from './ranks.js';

export type ShardKind = 'params' | 'grads';

interface Header {
  kinds: ShardKind[];
  /** per kind, per parameter: [offset, length] of each shard that follows */
  shards: [number, number][][][];
}

export function packShards(ranks: RankSet, kinds: ShardKind[]): Buffer {
  const header: Header = { kinds, shards: [] };
  const data: Float32Array[] = [];
  for (const kind of kinds) {
    const perParam: [number, number][][] = [];
    for (const p of ranks.params()) {
      const list: [number, number][] = [];
      for (const prog of ranks.programs) {
        const info = prog.params()[p.index];
        if (info.shardLength === 0) continue;
        list.push([info.shardOffset, info.shardLength]);
        data.push(kind === 'params' ? prog.getParam(p.index) : prog.getGrad(p.index));
      }
      perParam.push(list);
    }
    header.shards.push(perParam);
  }
  const head = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(4 + head.length + data.reduce((n, d) => n + d.byteLength, 0));
  out.writeUInt32LE(head.length, 0);
  head.copy(out, 4);
  let at = 4 + head.length;
  for (const d of data) {
    Buffer.from(d.buffer, d.byteOffset, d.byteLength).copy(out, at);
    at += d.byteLength;
  }
  return out;
}

/** Whole tensors of each kind from every process's packed shards; `sizes` are the tensors' element counts. */
export function unpackShards(packed: readonly Buffer[], sizes: readonly number[]): Map<ShardKind, Float32Array[]> {
  const out = new Map<ShardKind, Float32Array[]>();
  for (const buf of packed) {
    const n = buf.readUInt32LE(0);
    const header = JSON.parse(buf.subarray(4, 4 + n).toString()) as Header;
    let at = 4 + n;
    header.kinds.forEach((kind, k) => {
      if (!out.has(kind)) out.set(kind, sizes.map((s) => new Float32Array(s)));
      const full = out.get(kind)!;
      header.shards[k].forEach((list, i) => {
        for (const [offset, len] of list) {
          const bytes = buf.subarray(at, at + 4 * len);
          full[i].set(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), offset);
          at += 4 * len;
        }
      });
    });
  }
  return out;
}
