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

  it("a start that stalls is stopped, naming the stalled rank and where every rank not ready is", async () => {
    // rank 0 is ready; rank 1 hangs in the NCCL join; rank 2 never reports a phase, so it is the
    // first to spend the limit in one place; rank 3 keeps moving
    const script = `
      const say = (p) => process.stderr.write("@fpdt-start-phase " + p + "\\n");
      if (process.env.RANK === "0") { say("nccl-id"); say("nccl-init"); say("program"); say("ready"); }
      if (process.env.RANK === "1") { say("nccl-id"); say("nccl-init"); }
      if (process.env.RANK === "3") { say("addon"); setTimeout(() => say("nccl-id"), 1000); setTimeout(() => say("nccl-init"), 2000); }
      setTimeout(() => {}, 60000);`;
    const started = Date.now();
    const err = await launch({ command: process.execPath, args: ["-e", script], nprocs: 4, onLine: () => {}, killGraceMs: 500, startTimeoutMs: 1500 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(Date.now() - started).to.be.below(8000);
    expect((err as Error).message).to.equal(
      "launch: rank 2 stalled for 1.5 s before its first start phase; not ready either: rank 1 in ncclCommInitRank (joining the NCCL communicator), rank 3 while exchanging the NCCL id; stopped the other 3 ranks (see its [rank 2] output above)",
    );
  });

  it("a world that reached 'ready' is not stopped by the start timeout", async () => {
    const script = `process.stderr.write("@fpdt-start-phase ready\\n"); setTimeout(() => {}, 1200);`;
    const exits = await launch({ command: process.execPath, args: ["-e", script], nprocs: 2, onLine: () => {}, startTimeoutMs: 300 });
    expect(exits.map((e) => e.code)).to.deep.equal([0, 0]);
  });

  it("a command that cannot start is one clear error", async () => {
    const err = await launch({ command: join(dir, "no-such-program"), nprocs: 1, onLine: () => {} }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).message).to.match(/^launch: cannot start .*no-such-program \(ENOENT\)/);
  });
});
