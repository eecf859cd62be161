// The schedule stages (lower/pipeline.ts): their order, what each adds, that each stage's
// verifier catches a broken output, and that the runner names the stage that failed.
import { expect } from 'chai';
import { dumpableStages, runScheduleStages, scheduleStages, scheduleSummary, StageError, type ScheduleState } from '../../compiler/lower/pipeline.js';
import { countParams } from '../../compiler/report.js';
import { summarizeSchedule } from '../../compiler/schedule/summary.js';
import type { Item, Schedule } from '../../compiler/schedule/types.js';
import { StageTimer } from '../../compiler/timings.js';
import { graphOf } from './helpers.js';

const stage = (name: string) => scheduleStages.find((s) => s.name === name)!;

function mapBody(items: readonly Item[], f: (it: Item) => Item[]): Item[] {
  return items.flatMap((it) => (it.kind === 'loop' ? [{ ...it, body: mapBody(it.body, f) }] : f(it)));
}

describe('schedule stages', () => {
  const g = graphOf('tiny-llama', { sp: 2, seq: 96, chunk: 24 });
  let full: ScheduleState;
  before(() => {
    full = runScheduleStages(g);
  });

  it('run in the order lower, sync, plan, hazards, simulate; all but the hazard check dump', () => {
    expect(scheduleStages.map((s) => s.name)).to.deep.equal(['lower', 'sync', 'plan', 'hazards', 'simulate']);
    expect(dumpableStages).to.deep.equal(['lower', 'sync', 'plan', 'simulate']);
  });

  it('each adds its part: the lowered schedule has no events, sync adds them, plan and simulate their results', () => {
    const lowered = runScheduleStages(g, { until: 'lower' });
    expect(lowered.schedule!.events).to.deep.equal({});
    expect(lowered.loweredPlan).to.not.equal(undefined);
    expect(lowered.plan).to.equal(undefined);
    expect(Object.keys(full.schedule!.events).length).to.be.greaterThan(0);
    expect(full.plan!.fits).to.equal(true);
    expect(full.timeline!.stepSeconds).to.be.greaterThan(0);
  });

  it("report.json's summary equals summarizeSchedule's, without planning and simulating twice", () => {
    const model = { params: countParams(g), layers: g.sizes.L, seq: g.sizes.S, hidden: g.sizes.D };
    expect(JSON.stringify(scheduleSummary(full))).to.equal(JSON.stringify(summarizeSchedule(full.schedule!, full.device, model)));
  });

  it('lower: placed events are caught', () => {
    const lowered = runScheduleStages(g, { until: 'lower' });
    const s = lowered.schedule!;
    const withEvent: Schedule = { ...s, events: { e: 1 }, body: [{ kind: 'record', id: 'r0', stream: 'compute', event: 'e' }, ...s.body] };
    expect(() => stage('lower').verify!({ ...lowered, schedule: withEvent }, lowered)).to.throw(/lowering placed events \(r0\)/);
  });

  it('sync: a dropped instruction and an undeclared event are caught', () => {
    const lowered = runScheduleStages(g, { until: 'lower' });
    const synced = runScheduleStages(g, { until: 'sync' });
    let dropped = false;
    const body = mapBody(synced.schedule!.body, (it) => (it.kind === 'instr' && it.op === 'embedding' && !dropped ? ((dropped = true), []) : [it]));
    expect(dropped).to.equal(true);
    expect(() => stage('sync').verify!({ ...synced, schedule: { ...synced.schedule!, body } }, lowered)).to.throw(/sync changed the program/);
    const { [Object.keys(synced.schedule!.events)[0]]: _gone, ...events } = synced.schedule!.events;
    expect(() => stage('sync').verify!({ ...synced, schedule: { ...synced.schedule!, events } }, lowered)).to.throw(/names the undeclared event/);
  });

  it('plan: two live buffers on the same bytes are caught', () => {
    const p = full.plan!;
    const [a, b] = p.placements.filter((x) => x.space === 'gpu' && x.kind === 'param');
    const placements = p.placements.map((x) => (x.buf === b.buf ? { ...x, offset: a.offset } : x));
    expect(() => stage('plan').verify!({ ...full, plan: { ...p, placements } }, full)).to.throw(/memory plan: gpu buffers .* are live together/);
  });

  it('simulate: a step time that is not a number is caught', () => {
    expect(() => stage('simulate').verify!({ ...full, timeline: { ...full.timeline!, stepSeconds: NaN } }, full)).to.throw(/predicted step time is NaN/);
  });

  it('hazards: a wait dropped after sync fails the run, named by its stage', () => {
    const dropWaits = (st: ScheduleState): ScheduleState => ({ ...st, schedule: { ...st.schedule!, body: mapBody(st.schedule!.body, (it) => (it.kind === 'wait' ? [] : [it])) } });
    let err: unknown;
    try {
      runScheduleStages(g, { after: (name, st) => (name === 'sync' ? dropWaits(st) : st) });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(StageError);
    expect((err as StageError).stage).to.equal('hazards');
    expect((err as Error).message).to.match(/^failed after hazards: hazard on /);
    // skipping the check lets the broken schedule through (check --no-verify)
    expect(() => runScheduleStages(g, { skip: ['hazards'], after: (name, st) => (name === 'sync' ? dropWaits(st) : st) })).to.not.throw();
  });

  it('times each stage it runs and dumps each one asked for, numbered by its place', () => {
    const timer = new StageTimer();
    const dumps: [number, string][] = [];
    runScheduleStages(g, { timer, dumpAfter: ['sync', 'simulate'], dump: (i, name) => dumps.push([i, name]), firstIndex: 7 });
    expect(timer.stages.map((t) => t.stage)).to.deep.equal(['lower', 'sync', 'plan', 'hazards', 'simulate']);
    expect(dumps).to.deep.equal([
      [8, 'sync'],
      [11, 'simulate'],
    ]);
  });
});
