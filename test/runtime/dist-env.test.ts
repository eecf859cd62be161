import { expect } from "chai";

import { parseDistEnv } from "../../runtime/dist-env.js";

describe("parseDistEnv", () => {
  it("defaults to one process", () => {
    expect(parseDistEnv({})).to.deep.equal({ rank: 0, world: 1, localRank: 0, masterAddr: "127.0.0.1", masterPort: 29500, source: "single" });
  });

  it("reads torchrun-style variables", () => {
    const env = { RANK: "5", WORLD_SIZE: "8", LOCAL_RANK: "1", LOCAL_WORLD_SIZE: "4", MASTER_ADDR: "10.0.0.1", MASTER_PORT: "1234" };
    expect(parseDistEnv(env)).to.deep.equal({ rank: 5, world: 8, localRank: 1, masterAddr: "10.0.0.1", masterPort: 1234, source: "torchrun" });
  });

  it("reads Slurm variables, preferring MASTER_ADDR over the launch node", () => {
    const env = { SLURM_PROCID: "3", SLURM_NTASKS: "4", SLURM_LOCALID: "3", SLURM_LAUNCH_NODE_IPADDR: "10.0.0.9" };
    expect(parseDistEnv(env)).to.include({ rank: 3, world: 4, localRank: 3, masterAddr: "10.0.0.9", source: "slurm" });
    expect(parseDistEnv({ ...env, MASTER_ADDR: "node0" }).masterAddr).to.equal("node0");
  });

  const cases: [Record<string, string>, RegExp][] = [
    [{ RANK: "4", WORLD_SIZE: "4", LOCAL_RANK: "0", MASTER_ADDR: "a" }, /^environment: RANK=4 is not below WORLD_SIZE=4; set RANK to 0\.\.3$/],
    [{ RANK: "1" }, /RANK is set but WORLD_SIZE is not/],
    [{ WORLD_SIZE: "2" }, /WORLD_SIZE is set but RANK is not/],
    [{ RANK: "x", WORLD_SIZE: "2" }, /RANK="x" is not an integer; set RANK to a whole number/],
    [{ RANK: "1", WORLD_SIZE: "2", LOCAL_RANK: "1" }, /WORLD_SIZE=2 without MASTER_ADDR; set MASTER_ADDR/],
    [{ RANK: "1", WORLD_SIZE: "2", MASTER_ADDR: "a" }, /without LOCAL_RANK/],
    [{ RANK: "1", WORLD_SIZE: "2", LOCAL_RANK: "1", LOCAL_WORLD_SIZE: "1", MASTER_ADDR: "a" }, /LOCAL_RANK=1 is not below LOCAL_WORLD_SIZE=1/],
    [{ RANK: "0", WORLD_SIZE: "1", MASTER_PORT: "70000" }, /MASTER_PORT=70000 is not a TCP port/],
    [{ RANK: "-1", WORLD_SIZE: "2" }, /RANK=-1 is below 0/],
    [{ SLURM_PROCID: "0" }, /SLURM_PROCID is set but SLURM_NTASKS is not/],
    [{ SLURM_PROCID: "0", SLURM_NTASKS: "2", SLURM_LOCALID: "0" }, /SLURM_NTASKS=2 without MASTER_ADDR or SLURM_LAUNCH_NODE_IPADDR/],
  ];
  for (const [env, message] of cases) {
    it(`rejects ${JSON.stringify(env)} with one line`, () => {
      expect(() => parseDistEnv(env)).to.throw(message);
      try {
        parseDistEnv(env);
      } catch (e) {
        expect((e as Error).message).to.not.contain("\n");
      }
    });
  }
});
