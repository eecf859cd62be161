import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatInspection, loadInspection } from '../../compiler/cli/inspect.js';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { stringifySchedule } from '../../compiler/schedule/export-json.js';
import { summarizeSchedule } from '../../compiler/schedule/summary.js';
import { fpdtLike } from './fixtures.js';

describe('fpdtc inspect', () => {
  let dir = '';
  const s = fpdtLike({ layers: 4 });
  const report = { model: s.model, params: 1e6, tokens: 4096, layers: 4, hidden: 256, config: s.config };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fpdtc-inspect-'));
    writeFileSync(join(dir, 'schedule.json'), stringifySchedule(s));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('computes memory and timeline when the report lacks them, and prints them', () => {
    writeFileSync(join(dir, 'report.json'), JSON.stringify(report));
    const x = loadInspection(dir);
    expect(x.timeline.extrapolated).to.equal(true);
    expect(x.timeline.mfu).to.be.above(0);
    const text = formatInspection(x);
    expect(text).to.match(/^fpdt-like: 1 rank, 4 layers, 4096 tokens in 4 chunks of 1024/);
    expect(text).to.match(/memory per rank \(h200\)\s+GPU\s+pinned host/);
    expect(text).to.match(/ {2}checkpoints\s+8\.00 MiB\s+0 B/);
    expect(text).to.match(/step time\s+[\d.]+ ms/);
    expect(text).to.match(/MFU\s+[\d.]+% \(6\*params\*tokens/);
    expect(text).to.include('for l in 0..4:  # layer');
    expect(text).to.include('attn_fwd_block');
  });

  it('prints the memory and timeline the report holds', () => {
    const sum = summarizeSchedule(s, deviceProfile('h200'));
    const timeline = { ...sum.timeline, stepSeconds: 12.5 };
    writeFileSync(join(dir, 'report.json'), JSON.stringify({ ...report, memory: sum.memory, timeline }));
    expect(formatInspection(loadInspection(dir))).to.match(/step time\s+12\.50 s/);
  });

  it('says what to do when the outputs are missing', () => {
    expect(() => loadInspection(join(dir, 'nope'))).to.throw(/no report.json at .*nope\/report.json; run 'fpdtc compile' first/);
  });

  it('is a subcommand of fpdtc', function () {
    this.timeout(20000);
    writeFileSync(join(dir, 'report.json'), JSON.stringify(report));
    const ok = spawnSync(process.execPath, ['bin/fpdtc.js', 'inspect', dir], { encoding: 'utf8' });
    expect(ok.stderr).to.equal('');
    expect(ok.status).to.equal(0);
    expect(ok.stdout).to.include('timeline per rank');
    const bad = spawnSync(process.execPath, ['bin/fpdtc.js', 'inspect', join(dir, 'nope')], { encoding: 'utf8' });
    expect(bad.status).to.equal(1);
    expect(bad.stderr.trim().split('\n')).to.have.length(1);
  });
});
