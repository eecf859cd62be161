// SIGTERM/SIGINT in a multi-process world (compiler/train/stop-request.ts,
// runtime/stop-agreement.ts), on the CPU with stand-in ranks in separate processes
// (fixtures/stopping-rank.ts): a signal to one rank stops every rank after the same step with a
// complete checkpoint that resumes; a signal to the launcher reaches every rank; a second
// signal stops at once; a rank that dies while the others wait ends the wait with one line.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { readTrainerState, resolveCheckpoint, restoreCheckpoint } from '../../compiler/train/checkpoint.js';
import { freePort, launch } from '../../runtime/launcher.js';
import { FakeRanks, valueAt } from './fake-ranks.js';

const here = dirname(fileURLToPath(import.meta.url));
const RANK = join(here, 'fixtures', 'stopping-rank.ts');
const LAUNCHER = join(here, 'fixtures', 'launch-stopping-ranks.ts');
const PARAMS = [{ name: 'a.weight', shape: [3000] }, { name: 'b.weight', shape: [500, 2] }, { name: 'c.bias', shape: [3] }];

/** Lines of every rank, by rank, from the launcher's `[rank R] line` form or a rank's own. */
class RankLines {
  readonly lines = new Map<number, string[]>();
  add(rank: number, line: string): void {
    this.lines.set(rank, [...(this.lines.get(rank) ?? []), line]);
  }
  /** The step each rank stopped after, and the signal and rank it names. */
  stopped(): string[] {
    return [...this.lines.entries()].sort((a, b) => a[0] - b[0]).map(([, ls]) => ls.find((l) => l.startsWith('stopped ')) ?? 'none');
  }
  all(): string {
    return [...this.lines.entries()].map(([r, ls]) => ls.map((l) => `[${r}] ${l}`).join('\n')).join('\n');
  }
}

/** The checkpoint `latest` names, restored into every rank of `world`: its step, and whether it holds that step's state. */
async function restoredStep(dir: string, world: number): Promise<{ step: number; wrong?: string }> {
  const ck = resolveCheckpoint(dir);
  const saved = readTrainerState(ck);
  const back = new FakeRanks(PARAMS, world);
  await restoreCheckpoint(back.asRankSet(), undefined, ck, saved);
  return { step: saved.step, wrong: back.holds(valueAt(saved.step), saved.step) };
}

function lines(child: ChildProcess, on: (line: string) => void): Promise<number | null> {
  createInterface({ input: child.stdout! }).on('line', on);
  createInterface({ input: child.stderr! }).on('line', on);
  return new Promise((res) => child.on('close', (code) => res(code)));
}

describe('stopping a multi-process run after the step in flight @slow', function () {
  this.timeout(120_000);
  let work: string;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'fpdt-stop-'));
  });
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  it('a SIGTERM to one rank of three stops all of them after the same step; the checkpoint resumes', async () => {
    const dir = join(work, 'ck');
    const seen = new RankLines();
    let pid = 0;
    // rank 1 alone gets the signal, as from a user's kill
    const onLine = (rank: number, _s: string, line: string) => {
      seen.add(rank, line);
      if (rank === 1 && line.startsWith('pid ')) pid = Number(line.slice(4));
      if (rank === 1 && line === 'step 3') process.kill(pid, 'SIGTERM');
    };
    await launch({ command: process.execPath, args: ['--import', 'tsx', RANK, dir, '100000', '60', '5'], nprocs: 3, forwardSignals: true, startTimeoutMs: 0, onLine });
    const stopped = seen.stopped();
    expect(new Set(stopped).size, seen.all()).to.equal(1);
    const [, step, signal, by] = stopped[0].split(' ');
    expect([signal, by], seen.all()).to.deep.equal(['SIGTERM', '1']);
    expect(Number(step)).to.be.within(3, 4);
    expect(await restoredStep(dir, 3)).to.deep.equal({ step: Number(step), wrong: undefined });

    // resumed: every rank starts after that step and runs to the end
    const again = new RankLines();
    await launch({ command: process.execPath, args: ['--import', 'tsx', RANK, dir, String(Number(step) + 2), '20', '5'], nprocs: 3, startTimeoutMs: 0, onLine: (r, _s, l) => again.add(r, l) });
    for (const r of [0, 1, 2]) expect(again.lines.get(r)![0], again.all()).to.equal(`ready ${step}`);
    expect(await restoredStep(dir, 3)).to.deep.equal({ step: Number(step) + 2, wrong: undefined });
  });

  it('SIGINT to the launcher reaches every rank: all save after one step and the launch exits 0; a second signal stops at once', async () => {
    const dir = join(work, 'ck');
    const seen = new RankLines();
    const child = spawn(process.execPath, ['--import', 'tsx', LAUNCHER, '2', dir, '100000', '50', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let sent = false;
    const code = await lines(child, (l) => {
      const m = /^\[rank (\d)\] (.*)$/.exec(l);
      if (m) seen.add(Number(m[1]), m[2]);
      else seen.add(-1, l);
      if (m && m[2] === 'step 4' && !sent) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(code, seen.all()).to.equal(0);
    expect(seen.lines.get(-1), seen.all()).to.include('launch ok');
    const stopped = seen.stopped().filter((s) => s !== 'none');
    expect(stopped.length, seen.all()).to.equal(2);
    expect(new Set(stopped).size, seen.all()).to.equal(1);
    const step = Number(stopped[0].split(' ')[1]);
    expect(await restoredStep(dir, 2)).to.deep.equal({ step, wrong: undefined });

    // twice: the ranks stop at once, the launch fails, and the last checkpoint stands
    const twice = new RankLines();
    const second = spawn(process.execPath, ['--import', 'tsx', LAUNCHER, '2', dir, '100000', '400', '1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let first = false, told = 0;
    const code2 = await lines(second, (l) => {
      twice.add(0, l);
      // the first signal well inside a step of 400 ms, the second once both ranks have it
      if (/\] step /.test(l) && !first) {
        first = true;
        setTimeout(() => second.kill('SIGTERM'), 150);
      }
      if (/finishing the step in flight/.test(l) && ++told === 2) second.kill('SIGTERM');
    });
    expect(code2, twice.all()).to.equal(1);
    expect(twice.all()).to.match(/launch: interrupted by SIGTERM; all ranks were stopped$/m);
    expect(twice.all()).to.not.match(/stopped \d+ /);
    expect(await restoredStep(dir, 2)).to.deep.equal({ step, wrong: undefined });
  });

  it('a rank that dies while the others wait to agree: they stop with one line, no hang', async () => {
    const dir = join(work, 'ck');
    const port = await freePort();
    const seen = new RankLines();
    const ranks = [0, 1, 2].map((rank) =>
      spawn(process.execPath, ['--import', 'tsx', RANK, dir, '100000', '50', '1000'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, RANK: String(rank), WORLD_SIZE: '3', LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), FPDT_STOP_TIMEOUT_S: '2' },
      }),
    );
    const started = Date.now();
    const codes = await Promise.all(ranks.map((c, r) => lines(c, (l) => {
      seen.add(r, l);
      if (r === 2 && l === 'step 2') c.kill('SIGKILL');
    })));
    expect(codes, seen.all()).to.deep.equal([1, 1, null]);
    expect(Date.now() - started).to.be.below(30_000);
    expect(seen.lines.get(0)!.at(-1), seen.all()).to.match(/^error: environment: rank 0 at 127\.0\.0\.1:\d+ got whether to stop of 2 of 3 ranks within 2 s \(none from rank 2\); a rank died or is stuck in step [23]; no checkpoint of this step was written/);
    expect(seen.lines.get(1)!.at(-1), seen.all()).to.match(/^error: environment: rank 1 could not say whether it stops to rank 0 at 127\.0\.0\.1:\d+ within 2 s/);
  });
});
