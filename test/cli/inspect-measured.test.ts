import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareWithMeasured, formatMeasured } from '../../compiler/cli/inspect-measured.js';
import { deviceProfile } from '../../compiler/schedule/devices.js';
import { chromeTrace } from '../../compiler/schedule/export-trace.js';
import { stringifySchedule } from '../../compiler/schedule/export-json.js';
import { readTrace } from '../../compiler/schedule/read-trace.js';
import { simulateWindow } from '../../compiler/schedule/simulate.js';
import { fpdtLike } from '../schedule/fixtures.js';

describe('fpdtc inspect --measured', () => {
  let dir = '';
  const s = fpdtLike({ layers: 4 });
  // a "measured" step: the predicted whole step, every span 1.5x as late and as long
  const predicted = simulateWindow(s, deviceProfile(s.config.device), { spans: 'all' }).spans;
  const slower = predicted.map((x) => ({ ...x, start: 1.5 * x.start, end: 1.5 * x.end }));
  const write = (model: string) => {
    const path = join(dir, 'measured.trace.json');
    writeFileSync(path, JSON.stringify(chromeTrace([{ rank: 0, spans: slower }], { model, step: 3, date: '2026-11-30T16:31:56Z', measuredStepSeconds: 1 })));
    return path;
  };
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'fpdtc-measured-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('puts each op kind, the step and the exposed copy time beside the prediction', () => {
    const path = write(s.model);
    const c = compareWithMeasured(s, readTrace(path), path);
    expect(c.measured.stepSeconds).to.be.closeTo(1.5 * c.predicted.stepSeconds, 1e-9);
    expect(c.predicted.exposedCopySeconds).to.be.above(0);
    expect(c.measured.exposedCopySeconds).to.be.closeTo(1.5 * c.predicted.exposedCopySeconds, 1e-9);
    const text = formatMeasured(c).join('\n');
    expect(text).to.match(/^predicted vs measured \(rank 0; measured: step 3, 2026-11-30T16:31:56Z, .*measured\.trace\.json; predicted with /);
    expect(text).to.match(/\n {2}attn_fwd_block\s+\d+\s+[\d.]+ ms\s+[\d.]+ ms\s+1\.50\n/);
    expect(text).to.match(/\n {2}\[attention\]\s+[\d.]+ ms\s+[\d.]+ ms\s+1\.50\n/);
    expect(text).to.match(/\n {2}copy h2d\s+\d+/);
    expect(text).to.match(/\n {2}step \(first to last span\)\s+[\d.]+ ms\s+[\d.]+ ms\s+1\.50\n/);
    expect(text).to.match(/\n {2}step as the run timed it\s+1\.00 s\n/);
    expect(text).to.match(/\n {2}exposed copy\s+[\d.]+ ms\s+[\d.]+ ms\s+1\.50\n/);
    expect(text).to.match(/\n {2}copies hidden\s+\d+%\s+\d+%\n/);
  });

  it('refuses the trace of another model in one line', function () {
    this.timeout(20000);
    writeFileSync(join(dir, 'schedule.json'), stringifySchedule(s));
    writeFileSync(join(dir, 'report.json'), JSON.stringify({ model: s.model, params: 1e6, tokens: 4096, layers: 4, hidden: 256, config: s.config }));
    const good = spawnSync(process.execPath, ['bin/fpdtc.js', 'inspect', dir, '--measured', write(s.model)], { encoding: 'utf8' });
    expect(good.stderr).to.equal('');
    expect(good.status).to.equal(0);
    expect(good.stdout).to.match(/timeline per rank[^]*predicted vs measured[^]*one layer, forward and backward/);
    const bad = spawnSync(process.execPath, ['bin/fpdtc.js', 'inspect', dir, '--measured', write('llama1b')], { encoding: 'utf8' });
    expect(bad.status).to.equal(1);
    expect(bad.stderr.trim()).to.match(/^error: .*measured\.trace\.json is a trace of llama1b, the folder holds fpdt-like; pass the trace of a run of this folder's build$/);
  });
});
