import { expect } from "chai";

import type { DistEnv } from "../../runtime/dist-env.js";
import { freePort } from "../../runtime/launcher.js";
import { exchangeUniqueId } from "../../runtime/rendezvous.js";

describe("rendezvous", () => {
  it("every rank gets rank 0's id, whichever starts first", async () => {
    const port = await freePort();
    const dist = (rank: number): DistEnv => ({ rank, world: 3, localRank: rank, masterAddr: "127.0.0.1", masterPort: port, source: "torchrun" });
    const id = Buffer.alloc(128, 7);
    const later = new Promise<Buffer>((r) => setTimeout(() => r(exchangeUniqueId(dist(0), () => id, 5000)), 300));
    const ids = await Promise.all([exchangeUniqueId(dist(1), () => Buffer.alloc(0), 5000), exchangeUniqueId(dist(2), () => Buffer.alloc(0), 5000), later]);
    for (const got of ids) expect(got.equals(id)).to.equal(true);
  });

  it("a rank that cannot reach rank 0 fails with one line", async () => {
    const port = await freePort();
    const dist: DistEnv = { rank: 1, world: 2, localRank: 1, masterAddr: "127.0.0.1", masterPort: port, source: "torchrun" };
    const err = await exchangeUniqueId(dist, () => Buffer.alloc(0), 600).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/^environment: rank 1 could not get the NCCL id from rank 0 at 127\.0\.0\.1:\d+ within 0\.6 s \(ECONNREFUSED\); check MASTER_ADDR/);
  });
});
