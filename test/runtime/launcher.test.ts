import { expect } from "chai";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { RuntimeError } from "../../runtime/errors.js";
import { launch } from "../../runtime/launcher.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(predicate: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (predicate()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return predicate();
}

describe("launcher", function () {
  this.timeout(20_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "fpdt-launch-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("sets the rank environment and prefixes output lines", async () => {
    const lines: string[] = [];
    const script = `const e = process.env; console.log([e.RANK, e.WORLD_SIZE, e.LOCAL_RANK, e.LOCAL_WORLD_SIZE, e.MASTER_ADDR, e.NCCL_NVLS_ENABLE, e.FPDT_START_PHASES].join(" ")); console.error("err line")`;
    const exits = await launch({
      command: process.execPath,
      args: ["-e", script],
      nprocs: 2,
      masterPort: 29999,
      onLine: (rank, stream, line) => lines.push(`[rank ${rank}] ${stream} ${line}`),
    });
    expect(exits.map((e) => e.code)).to.deep.equal([0, 0]);
    expect(lines.sort()).to.deep.equal([
      "[rank 0] stderr err line",
      "[rank 0] stdout 0 2 0 2 127.0.0.1 0 1",
      "[rank 1] stderr err line",
      "[rank 1] stdout 1 2 1 2 127.0.0.1 0 1",
    ]);
  });

  it("a failing rank stops the others (and their children) and is named in the error", async () => {
    // Rank 1 exits 3 after a moment; rank 0 starts a grandchild and sleeps.
    const pidFile = join(dir, "pids");
    const script = `
      const fs = require("fs"), cp = require("child_process");
      if (process.env.RANK === "1") setTimeout(() => process.exit(3), 300);
      else {
        const g = cp.spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
        fs.writeFileSync(${JSON.stringify(pidFile)}, process.pid + " " + g.pid);
        setTimeout(() => {}, 60000);
      }`;
    const started = Date.now();
    const err = await launch({ command: process.execPath, args: ["-e", script], nprocs: 2, onLine: () => {}, killGraceMs: 1000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(RuntimeError);
    expect((err as Error).message).to.match(/^launch: rank 1 exited with code 3; stopped the other 1 rank/);
    expect(Date.now() - started).to.be.below(10_000);
    const [sleeper, grandchild] = readFileSync(pidFile, "utf8").split(" ").map(Number);
    expect(await waitFor(() => !alive(sleeper) && !alive(grandchild), 3000), "sleeper and its child are gone").to.equal(true);
  });

  it("a rank that dies mid-start is named with the phase it was in; phase lines stay out of the output", async () => {
    const script = `
      const say = (p) => process.stderr.write("@fpdt-start-phase " + p + "\\n");
      say("addon"); say("nccl-id");
      if (process.env.RANK === "1") { console.error("no id"); setTimeout(() => process.exit(3), 200); }
      else setTimeout(() => {}, 60000);`;
    const lines: string[] = [];
    const err = await launch({ command: process.execPath, args: ["-e", script], nprocs: 2, onLine: (r, s, l) => lines.push(`${r} ${s} ${l}`), killGraceMs: 500 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).message).to.match(/^launch: rank 1 exited with code 3 while exchanging the NCCL id; stopped the other 1 rank/);
    expect(lines).to.deep.equal(["1 stderr no id"]);
  });

  it("a start that stalls is stopped, naming the stalled ranks and where each stopped", async () => {
    // rank 0 is ready; rank 1 hangs in the NCCL join, rank 2 in the id exchange; rank 3 never
    // reports a phase. Which of them is named first depends on timing.
    const script = `
      const say = (p) => process.stderr.write("@fpdt-start-phase " + p + "\\n");
      const phases = { 0: ["nccl-id", "nccl-init", "program", "ready"], 1: ["nccl-id", "nccl-init"], 2: ["addon", "nccl-id"], 3: [] };
      phases[process.env.RANK].forEach(say);
      setTimeout(() => {}, 60000);`;
    const started = Date.now();
    const err = await launch({ command: process.execPath, args: ["-e", script], nprocs: 4, onLine: () => {}, killGraceMs: 500, startTimeoutMs: 1500 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(Date.now() - started).to.be.below(10_000);
    const message = (err as Error).message;
    expect(message).to.match(/^launch: rank [123] stalled for 1\.5 s .*; stopped the other 3 ranks \(see its \[rank [123]\] output above\)$/);
    expect(message).to.match(/rank 1 (stalled for 1\.5 s )?in ncclCommInitRank \(joining the NCCL communicator\)/);
    expect(message).to.match(/rank 2 (stalled for 1\.5 s )?while exchanging the NCCL id/);
    expect(message).to.match(/rank 3 (stalled for 1\.5 s )?before its first start phase/);
    expect(message).to.not.match(/rank 0/);
  });

  it("the start timeout bounds each phase, not the whole start; 'ready' ends it @slow", async () => {
    // every phase lasts 1 s of a 2.5 s limit; the whole start takes longer than the limit
    const script = `
      const say = (p) => process.stderr.write("@fpdt-start-phase " + p + "\\n");
      ["addon", "nccl-id", "nccl-init", "ready"].forEach((p, i) => setTimeout(() => say(p), 1000 * i));
      setTimeout(() => {}, 3200);`;
    const started = Date.now();
    const exits = await launch({ command: process.execPath, args: ["-e", script], nprocs: 2, onLine: () => {}, startTimeoutMs: 2500 });
    expect(exits.map((e) => e.code)).to.deep.equal([0, 0]);
    expect(Date.now() - started).to.be.above(3000);
  });

  it("a command that cannot start is one clear error", async () => {
    const err = await launch({ command: join(dir, "no-such-program"), nprocs: 1, onLine: () => {} }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).message).to.match(/^launch: cannot start .*no-such-program \(ENOENT\)/);
  });
});
