// Saving under ZeRO-3 with one process per rank: every rank's shards reach rank 0 over TCP and
// are put back together into whole tensors.
import { expect } from "chai";

import type { DistEnv } from "../../runtime/dist-env.js";
import { gatherToRank0 } from "../../runtime/gather.js";
import { freePort } from "../../runtime/launcher.js";
import type { RankSet } from "../../compiler/train/ranks.js";
import { packShards, unpackShards } from "../../compiler/train/shards.js";

/** The parts of a RankSet packShards reads: rank r of `world` holds [r*n, (r+1)*n) of a flat layout. */
function fakeRank(rank: number, world: number, sizes: number[]): RankSet {
  const total = sizes.reduce((a, b) => a + b, 0);
  const n = Math.ceil(total / world);
  let start = 0;
  const infos = sizes.map((len, index) => {
    const lo = Math.max(start, rank * n), hi = Math.min(start + len, (rank + 1) * n);
    const info = { index, name: `t${index}`, shape: [len], shardOffset: hi > lo ? lo - start : 0, shardLength: Math.max(0, hi - lo), start };
    start += len;
    return info;
  });
  const values = (i: number, bias: number) => Float32Array.from({ length: infos[i].shardLength }, (_, k) => bias + infos[i].start + infos[i].shardOffset + k);
  const program = { params: () => infos, getParam: (i: number) => values(i, 0), getGrad: (i: number) => values(i, 0.5) };
  return { programs: [program], params: () => infos } as unknown as RankSet;
}

describe("gathering shards to rank 0", () => {
  it("puts the shards of every rank back into whole tensors", () => {
    const sizes = [5, 1, 7, 3];
    const packed = [0, 1, 2].map((r) => packShards(fakeRank(r, 3, sizes), ["params", "grads"]));
    const whole = unpackShards(packed, sizes);
    let start = 0;
    sizes.forEach((len, i) => {
      expect(Array.from(whole.get("params")![i])).to.deep.equal(Array.from({ length: len }, (_, k) => start + k));
      expect(Array.from(whole.get("grads")![i])).to.deep.equal(Array.from({ length: len }, (_, k) => 0.5 + start + k));
      start += len;
    });
  });

  it("brings every rank's buffer to rank 0 over TCP, whichever starts first", async () => {
    const port = await freePort();
    const dist = (rank: number): DistEnv => ({ rank, world: 3, localRank: rank, masterAddr: "127.0.0.1", masterPort: port, source: "torchrun" });
    const big = Buffer.alloc(3 << 20, 9);
    const rank0 = new Promise<Buffer[] | undefined>((r) => setTimeout(() => r(gatherToRank0(dist(0), Buffer.from("zero"), 5000)), 300));
    const [a, b, got] = await Promise.all([gatherToRank0(dist(1), big, 5000), gatherToRank0(dist(2), Buffer.from("two"), 5000), rank0]);
    expect(a).to.equal(undefined);
    expect(b).to.equal(undefined);
    expect(got!.map((x) => x.length)).to.deep.equal([4, big.length, 3]);
    expect(got![1].equals(big)).to.equal(true);
    expect(got![2].toString()).to.equal("two");
  });

  it("a rank that cannot reach rank 0 fails with one line", async () => {
    const port = await freePort();
    const err = await gatherToRank0({ rank: 1, world: 2, localRank: 1, masterAddr: "127.0.0.1", masterPort: port, source: "torchrun" }, Buffer.from("x"), 600).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/^environment: rank 1 could not send its shards to rank 0 at 127\.0\.0\.1:\d+ within 0\.6 s \(ECONNREFUSED\)/);
  });
});
