// Two real rank processes started by the real launcher exchange a fake NCCL id with the real
// rendezvous, then enter a stand-in for ncclCommInitRank that, like the real one when it is
// called synchronously, holds the JS thread until every rank has entered it. A rendezvous that
// needs the event loop after it resolves (rank 0 waiting for the peer's close, a peer socket
// left open) deadlocks here; each stand-in gives up after a few seconds, so the test fails
// instead of hanging. Then a rank whose ncclCommInitRank never returns must say so and exit.
import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

import { launch } from "../../runtime/launcher.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const STAND_IN_WAIT_MS = 4000;

/** One rank: the id exchange, then the blocking stand-in; exits 7 if the others never came. */
function rankScript(): string {
  const rendezvous = pathToFileURL(join(ROOT, "runtime", "rendezvous.ts")).href;
  const distEnv = pathToFileURL(join(ROOT, "runtime", "dist-env.ts")).href;
  return `
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
const { exchangeUniqueId } = await import(${JSON.stringify(rendezvous)});
const { parseDistEnv } = await import(${JSON.stringify(distEnv)});
const dist = parseDistEnv();
const markers = process.env.MARKERS;
const id = await exchangeUniqueId(dist, () => Buffer.alloc(128, 42), 10_000);
if (id.length !== 128 || id[0] !== 42) { console.error("bad id"); process.exit(5); }
// the stand-in: enter, then hold the thread (no event loop) until every rank has entered
writeFileSync(join(markers, "entered-" + dist.rank), "");
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const until = Date.now() + ${STAND_IN_WAIT_MS};
const all = () => Array.from({ length: dist.world }, (_, r) => existsSync(join(markers, "entered-" + r))).every(Boolean);
while (!all()) {
  if (Date.now() > until) {
    console.error("rank " + dist.rank + " waited ${STAND_IN_WAIT_MS / 1000} s in the stand-in ncclCommInitRank; the other ranks never entered it");
    process.exit(7);
  }
  Atomics.wait(sleeper, 0, 0, 20);
}
console.log("joined");
`;
}

/**
 * One rank as `fpdtc run` starts it, but with an ncclCommInitRank that never returns and, like
 * the thread running the real one, keeps the process alive: it must report and exit 1.
 */
function stuckRankScript(): string {
  const url = (file: string) => JSON.stringify(pathToFileURL(join(ROOT, "runtime", file)).href);
  return `
const { joinWorld } = await import(${url("rendezvous.ts")});
const { reportStartPhase } = await import(${url("launcher.ts")});
const { parseDistEnv } = await import(${url("dist-env.ts")});
const addon = { native: { ncclUniqueId: () => Buffer.alloc(128, 1), ncclInit: () => { setInterval(() => {}, 1000); return new Promise(() => {}); } } };
const leave = (e) => { process.stderr.write("error: " + e.message + "\\n"); process.exit(1); };
reportStartPhase("addon");
await joinWorld(addon, parseDistEnv(), { onPhase: reportStartPhase, onStuck: leave });
reportStartPhase("ready");
`;
}

describe("rendezvous between two processes", function () {
  this.timeout(30_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "fpdt-rendezvous-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("both ranks reach a blocking NCCL init after the id exchange (no deadlock)", async () => {
    const script = join(dir, "rank.mjs");
    writeFileSync(script, rankScript());
    const markers = mkdtempSync(join(dir, "markers-"));
    const lines: string[] = [];
    const started = Date.now();
    const result = await launch({
      command: process.execPath,
      args: ["--import", "tsx", script],
      nprocs: 2,
      cwd: ROOT,
      env: { ...process.env, MARKERS: markers },
      onLine: (rank, stream, line) => lines.push(`[rank ${rank}] ${stream}: ${line}`),
      killGraceMs: 500,
    }).then(
      (exits) => ({ exits, error: undefined }),
      (e: Error) => ({ exits: undefined, error: e }),
    );
    const said = `${result.error?.message ?? ""}\n${lines.join("\n")}`;
    expect(result.error, said).to.equal(undefined);
    expect(result.exits!.map((e) => e.code)).to.deep.equal([0, 0]);
    expect(lines.filter((l) => l.endsWith("stdout: joined")).length, said).to.equal(2);
    expect(Date.now() - started).to.be.below(15_000);
  });

  it("a rank stuck in ncclCommInitRank past FPDT_INIT_TIMEOUT_S says so in one line and the world stops @slow", async () => {
    const script = join(dir, "stuck.mjs");
    writeFileSync(script, stuckRankScript());
    const lines: string[] = [];
    const started = Date.now();
    const err = await launch({
      command: process.execPath,
      args: ["--import", "tsx", script],
      nprocs: 2,
      cwd: ROOT,
      env: { ...process.env, FPDT_INIT_TIMEOUT_S: "3" },
      onLine: (rank, stream, line) => lines.push(`[rank ${rank}] ${stream}: ${line}`),
      killGraceMs: 500,
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(Date.now() - started).to.be.below(15_000);
    expect(err?.message, lines.join("\n")).to.match(/^launch: rank (\d) exited with code 1 in ncclCommInitRank \(joining the NCCL communicator\); stopped the other 1 rank/);
    const rank = /rank (\d)/.exec(err!.message)![1];
    expect(lines).to.include(`[rank ${rank}] stderr: error: environment: rank ${rank} waited 3 s in ncclCommInitRank (joining the NCCL communicator of 2 ranks); check that every rank started and none failed before this point, and that they can reach each other (NCCL_DEBUG=INFO shows where NCCL waits)`);
  });
});
