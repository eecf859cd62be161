// Checkpoints without a GPU (compiler/train/checkpoint.ts), through stand-in ranks: what a
// checkpoint holds and restores, which checkpoints stay, every refusal, and a run killed with
// SIGKILL at random moments, again and again, that always resumes from a complete checkpoint.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../compiler/errors.js';
import { checkResumable, readTrainerState, resolveCheckpoint, restoreCheckpoint, saveCheckpoint, stepName, type TrainerState } from '../../compiler/train/checkpoint.js';
import { SafetensorsReader } from '../../runtime/safetensors.js';
import { dataValue, FakeRanks, valueAt, windowsRead, type FakeParam } from './fake-ranks.js';

const here = dirname(fileURLToPath(import.meta.url));
const PARAMS: FakeParam[] = [
  { name: 'model.embed_tokens.weight', shape: [7, 4] },
  { name: 'model.norm.weight', shape: [4] },
  { name: 'lm_head.weight', shape: [3] },
];

const state = (step: number, over: Partial<TrainerState> = {}): TrainerState => ({
  format: 'fpdtc checkpoint', version: 1, step, model: 'tiny', schedule_hash: 'abc', world: 2, dp: 1, seq: 16,
  tokens: { length: 4096, seed: null }, lr: { peak: 1e-3 }, optimizer: {}, rng: 'none', weights: 'model.safetensors',
  loss: 3.5, time: '2026-11-30T00:00:00.000Z', flags: ['out/x'], ...over,
});

function catchLine(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(UserError);
    return (e as UserError).line();
  }
  throw new Error('expected a UserError');
}

describe('checkpoints', function () {
  this.timeout(60_000);
  let work: string;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'fpdt-ckpt-'));
  });
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  const save = (ranks: FakeRanks, step: number, keep = 3) => saveCheckpoint(ranks.asRankSet(), undefined, state(step), { dir: join(work, 'ck'), keep, weights: 'model.safetensors' });

  it('holds the weights, both moments of every shard and the step; a resume restores all of them', async () => {
    const ranks = new FakeRanks(PARAMS, 2);
    ranks.fill(valueAt(5), 5);
    const folder = await save(ranks, 5);
    expect(folder).to.equal(join(work, 'ck', stepName(5)));
    expect(readFileSync(join(work, 'ck', 'latest'), 'utf8')).to.equal('step-00000005\n');
    expect(readdirSync(join(folder!, 'optimizer')).sort()).to.deep.equal(['rank-00000-of-00002.safetensors', 'rank-00001-of-00002.safetensors']);
    const r1 = await SafetensorsReader.open(join(folder!, 'optimizer', 'rank-00001-of-00002.safetensors'));
    try {
      // rank 1 holds elements [14, 28) of the embedding: shard offsets in the metadata, moments by torch's names
      expect(JSON.parse(r1.metadata.shards)['model.embed_tokens.weight']).to.deep.equal([14, 14]);
      expect(Array.from(await r1.readF32('model.embed_tokens.weight.exp_avg_sq', 0, 2))).to.deep.equal([valueAt(5)(0, 14) + 2, valueAt(5)(0, 15) + 2]);
    } finally {
      await r1.close();
    }
    const fresh = new FakeRanks(PARAMS, 2);
    await restoreCheckpoint(fresh.asRankSet(), undefined, resolveCheckpoint('latest', join(work, 'ck')), readTrainerState(folder!));
    expect(fresh.holds(valueAt(5), 5)).to.equal(undefined);
  });

  it('keeps the newest K checkpoints, replaces a checkpoint of the same step whole and drops what a killed replacement left', async () => {
    const ranks = new FakeRanks(PARAMS, 1);
    for (const s of [1, 2, 3, 4]) {
      ranks.fill(valueAt(s), s);
      await save(ranks, s, 2);
    }
    expect(readdirSync(join(work, 'ck')).filter((f) => f.startsWith('step-')).sort()).to.deep.equal([stepName(3), stepName(4)]);
    // a run resumed from step 3 writes step 4 again: the new one replaces the old; the leftover
    // of a replacement killed half way goes at the next save
    mkdirSync(join(work, 'ck', `${stepName(4)}.old-999`));
    ranks.fill(valueAt(40), 4);
    await save(ranks, 4, 2);
    expect(readdirSync(join(work, 'ck')).filter((f) => f.includes('.old-'))).to.deep.equal([]);
    const back = new FakeRanks(PARAMS, 1);
    const ck = resolveCheckpoint(join(work, 'ck'));
    await restoreCheckpoint(back.asRankSet(), undefined, ck, readTrainerState(ck));
    expect(back.holds(valueAt(40), 4)).to.equal(undefined);
  });

  it('refuses a checkpoint of another model or configuration, naming the field and both values', async () => {
    const ranks = new FakeRanks(PARAMS, 2);
    ranks.fill(valueAt(1), 1);
    const ck = (await save(ranks, 1))!;
    const saved = readTrainerState(ck);
    const now = { model: 'tiny', schedule_hash: 'abc', world: 2, dp: 1, seq: 16, tokens: { length: 4096, seed: null } };
    expect(() => checkResumable(ck, saved, now)).to.not.throw();
    expect(catchLine(() => checkResumable(ck, saved, { ...now, model: 'other' }))).to.match(/written with model tiny, this run has other; compile the same model$/);
    expect(catchLine(() => checkResumable(ck, saved, { ...now, schedule_hash: 'def' }))).to.contain('schedule_hash abc, this run has def');
    expect(catchLine(() => checkResumable(ck, saved, { ...now, world: 4 }))).to.contain('world 2, this run has 4; run the same number of ranks');
    expect(catchLine(() => checkResumable(ck, saved, { ...now, seq: 32 }))).to.contain('seq 16, this run has 32');
    expect(catchLine(() => checkResumable(ck, saved, { ...now, tokens: { length: 99, seed: null } }))).to.contain('resume with the same --tokens');
    expect(catchLine(() => checkResumable(ck, saved, { ...now, tokens: { length: 4096, seed: 3 } }))).to.match(/seed none, this run has 3; resume with no --seed$/);
    // restored by another world: the missing rank file is named; by another layout: the shard
    const restoreLine = async (r: FakeRanks) => {
      try {
        await restoreCheckpoint(r.asRankSet(), undefined, ck, saved);
      } catch (e) {
        return (e as UserError).line();
      }
      return '';
    };
    expect(await restoreLine(new FakeRanks(PARAMS, 3))).to.match(/has no optimizer\/rank-00000-of-00003.safetensors \(rank 0 of 3\); it was written by 2 ranks; resume with as many$/);
    const reshaped = [{ ...PARAMS[0], shape: [8, 4] }, ...PARAMS.slice(1)];
    expect(await restoreLine(new FakeRanks(reshaped, 2))).to.contain("model.embed_tokens.weight");
  });

  it('says what is wrong with a path that is not a complete checkpoint', async () => {
    expect(catchLine(() => resolveCheckpoint('latest'))).to.contain("'latest' needs --checkpoint-dir");
    expect(catchLine(() => resolveCheckpoint(join(work, 'nope')))).to.match(/checkpoint .*nope: no such folder/);
    mkdirSync(join(work, 'ck', stepName(7)), { recursive: true });
    mkdirSync(join(work, 'ck', `.${stepName(7)}.partial`), { recursive: true });
    expect(catchLine(() => resolveCheckpoint(join(work, 'ck', stepName(7))))).to.contain('never completed');
    writeFileSync(join(work, 'ck', 'latest'), 'elsewhere\n');
    expect(catchLine(() => resolveCheckpoint(join(work, 'ck')))).to.contain("names 'elsewhere', not a step folder");
    writeFileSync(join(work, 'ck', stepName(7), 'trainer.json'), '{"format":"something"}');
    expect(catchLine(() => readTrainerState(join(work, 'ck', stepName(7))))).to.contain('is not an fpdtc checkpoint');
    writeFileSync(join(work, 'ck', stepName(7), 'trainer.json'), '{');
    expect(catchLine(() => readTrainerState(join(work, 'ck', stepName(7))))).to.contain('the checkpoint is damaged');
  });

  /**
   * Kills a stand-in run (fixtures/checkpoint-writer.ts) with SIGKILL at random moments, again
   * and again; after each kill the latest checkpoint must be complete and hold the state of its
   * step, with the windows of K micro steps a step read up to it and no others.
   */
  async function killAndResume(K: number, seed: number): Promise<void> {
    const dir = join(work, 'ck');
    const max = 400;
    let lcg = seed;
    const rand = () => ((lcg = (Math.imul(lcg, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let last = 0;
    const kills: string[] = [];
    for (let round = 0; round < 6; round++) {
      const delay = Math.floor(rand() * 250);
      const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures', 'checkpoint-writer.ts'), dir, '2', '200000', String(max), String(K)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '', err = '';
      child.stdout.on('data', (d) => {
        out += d;
        if (out.startsWith('ready') && !child.killed) setTimeout(() => child.kill('SIGKILL'), delay);
      });
      child.stderr.on('data', (d) => (err += d));
      const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
      const saves = (out.match(/saved \d+/g) ?? []).length;
      kills.push(`round ${round}: killed ${delay} ms after ready, ${saves} saved`);
      expect(code, `${kills.join('; ')}: ${err}`).to.not.equal(3);
      expect(err, kills.join('; ')).to.not.match(/resumed .*:|error/);
      if (!existsSync(join(dir, 'latest'))) continue;
      const ck = resolveCheckpoint(dir);
      const saved = readTrainerState(ck);
      expect(saved.accumulate).to.equal(K);
      const back = new FakeRanks([{ name: 'a.weight', shape: [200000] }, { name: 'b.weight', shape: [100000, 2] }, { name: 'c.bias', shape: [3] }], 2);
      await restoreCheckpoint(back.asRankSet(), undefined, ck, saved);
      // step s of K windows each has read windows [0, s * K), whichever runs wrote it
      expect(back.holds(dataValue(windowsRead(saved.step * K)), saved.step), kills.join('; ')).to.equal(undefined);
      expect(saved.step, kills.join('; ')).to.be.at.least(last);
      last = saved.step;
    }
    expect(last, kills.join('; ')).to.be.greaterThan(0);
    if (process.env.FPDT_SHOW_KILLS) console.log(kills.join('\n'), '\nlast', last);
    expect(readdirSync(dir).filter((f) => f.startsWith('step-')).length, readdirSync(dir).join(' ')).to.be.at.most(3);
  }

  it('a run killed with SIGKILL at random moments always resumes from a complete checkpoint @slow', () => killAndResume(1, 12345));

  it('with --accumulate 3, killed between micro steps and saves, it resumes at the data position of its step @slow', () => killAndResume(3, 777));
});
