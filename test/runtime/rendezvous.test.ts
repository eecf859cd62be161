import { expect } from "chai";
import { createServer } from "node:net";

import type { DistEnv } from "../../runtime/dist-env.js";
import { RuntimeError } from "../../runtime/errors.js";
import { freePort, type StartPhase } from "../../runtime/launcher.js";
import type { LoadedAddon, NcclComm } from "../../runtime/load.js";
import { exchangeUniqueId, initTimeoutMs, joinWorld } from "../../runtime/rendezvous.js";

/** An addon whose ncclInit is `init` (no GPU, no NCCL). */
function fakeAddon(init: (id: Buffer, rank: number) => Promise<NcclComm>): LoadedAddon {
  const native = { ncclUniqueId: () => Buffer.alloc(128, 3), ncclInit: (id: Buffer, rank: number) => init(id, rank) };
  return { path: "fake.node", programName: "fake", native } as unknown as LoadedAddon;
}

describe("rendezvous", () => {
  let port: number;
  beforeEach(async () => (port = await freePort()));
  const dist = (rank: number, world: number): DistEnv => ({ rank, world, localRank: rank, masterAddr: "127.0.0.1", masterPort: port, source: "torchrun" });

  it("every rank gets rank 0's id, whichever starts first", async () => {
    const id = Buffer.alloc(128, 7);
    const later = new Promise<Buffer>((r) => setTimeout(() => r(exchangeUniqueId(dist(0, 3), () => id, 5000)), 300));
    const ids = await Promise.all([exchangeUniqueId(dist(1, 3), () => Buffer.alloc(0), 5000), exchangeUniqueId(dist(2, 3), () => Buffer.alloc(0), 5000), later]);
    for (const got of ids) expect(got.equals(id)).to.equal(true);
  });

  it("a rank that cannot reach rank 0 fails with one line", async () => {
    const err = await exchangeUniqueId(dist(1, 2), () => Buffer.alloc(0), 600).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/^environment: rank 1 could not get the NCCL id from rank 0 at 127\.0\.0\.1:\d+ within 0\.6 s \(ECONNREFUSED\); check MASTER_ADDR/);
  });

  it("a rank 0 that accepts and never answers is bounded by the timeout too", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(port, "127.0.0.1", r));
    try {
      const err = await exchangeUniqueId(dist(1, 2), () => Buffer.alloc(0), 500).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).to.match(/^environment: rank 1 could not get the NCCL id .* within 0\.5 s \(connected, but no id came\)/);
    } finally {
      silent.close();
    }
  });

  it("joinWorld gives every rank the same id and its communicator, phase by phase", async () => {
    const seen: string[] = [];
    const addon = fakeAddon(async (id, rank) => ({ id: id[0], rank }) as unknown as NcclComm);
    const join = (rank: number) => joinWorld(addon, dist(rank, 2), { timeoutMs: 5000, onPhase: (p: StartPhase) => seen.push(`${rank} ${p}`) });
    const comms = (await Promise.all([join(0), join(1)])) as unknown as { id: number; rank: number }[];
    expect(comms).to.deep.equal([{ id: 3, rank: 0 }, { id: 3, rank: 1 }]);
    expect(seen.filter((s) => s.startsWith("1 "))).to.deep.equal(["1 nccl-id", "1 nccl-init"]);
  });

  it("an ncclCommInitRank that never returns fails the join with one line naming the rank, once the timeout is spent", async () => {
    const stuck: RuntimeError[] = [];
    const addon = fakeAddon(() => new Promise<NcclComm>(() => {}));
    const started = Date.now();
    const join = (rank: number) =>
      joinWorld(addon, dist(rank, 2), { timeoutMs: 700, onStuck: (e) => stuck.push(e) }).then(
        () => undefined,
        (e: unknown) => e,
      );
    const [e0, e1] = await Promise.all([join(0), join(1)]);
    expect(Date.now() - started).to.be.within(650, 3000);
    expect(e1).to.be.instanceOf(RuntimeError);
    expect((e1 as Error).message).to.match(/^environment: rank 1 waited 0\.7 s in ncclCommInitRank \(joining the NCCL communicator of 2 ranks\); check that every rank started/);
    expect((e0 as Error).message).to.match(/^environment: rank 0 waited 0\.7 s in ncclCommInitRank/);
    expect((e1 as Error).message).to.not.contain("\n");
    expect(stuck.map((e) => e.message)).to.have.members([(e0 as Error).message, (e1 as Error).message]);
  });

  it("a failing ncclInit fails the join with its own message and code", async () => {
    const addon = fakeAddon(() => Promise.reject(Object.assign(new Error("NCCL error: ncclCommInitRank failed with ncclSystemError (2): x"), { code: "FPDT_ERR_NCCL" })));
    const err = await joinWorld(addon, dist(0, 1), { timeoutMs: 5000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(RuntimeError);
    expect((err as RuntimeError).code).to.equal("FPDT_ERR_NCCL");
  });

  it("FPDT_INIT_TIMEOUT_S sets the join timeout; 120 s by default", () => {
    expect(initTimeoutMs({})).to.equal(120_000);
    expect(initTimeoutMs({ FPDT_INIT_TIMEOUT_S: "2.5" })).to.equal(2500);
    expect(() => initTimeoutMs({ FPDT_INIT_TIMEOUT_S: "soon" })).to.throw(RuntimeError, /^environment: FPDT_INIT_TIMEOUT_S="soon" is not a number of seconds/);
    expect(() => initTimeoutMs({ FPDT_INIT_TIMEOUT_S: "0" })).to.throw(RuntimeError);
  });
});
