// Writes the CUDA sources of a compiled model (out/<name>/src): the kernels specialized to its
// constants and the host program rendered from its schedule. Reads schedule.json and nothing
// else that `fpdtc compile` wrote: the schedule carries the memory plan (buffer offsets, arena
// sizes) and the parameter table, so codegen neither plans memory nor reads the graph.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errors, UserError } from '../errors.js';
import { readScheduleJson, scheduleFromJson } from '../schedule/export-json.js';
import type { Schedule } from '../schedule/types.js';
import { verifyOps } from '../schedule/verify.js';
import { renderHostProgram } from './host-program.js';
import { kernelSpecOf } from './host-spec.js';
import { renderKernels, type RenderedKernel } from './kernels.js';
import { plannedMemoryOf, type PlannedMemory } from './planned.js';

export interface CompiledModel {
  readonly schedule: Schedule;
  readonly plan: PlannedMemory;
}

function need(path: string): string {
  if (!existsSync(path)) throw new UserError(`no ${path}; run 'fpdtc compile <model> --out <dir>' first`);
  return readFileSync(path, 'utf8');
}

export function loadCompiled(dir: string): CompiledModel {
  const where = join(dir, 'schedule.json');
  const doc = readScheduleJson(need(where), where);
  const schedule = scheduleFromJson(doc);
  // the host calls read operands by name: every instruction must match its catalog entry
  try {
    verifyOps(schedule);
  } catch (e) {
    throw errors.outFileInvalid(where, (e as Error).message);
  }
  return { schedule, plan: plannedMemoryOf(doc, where) };
}

/** Every source file of the program: kernels, then the host program and its headers. */
export function renderProgramSources(m: CompiledModel): RenderedKernel[] {
  return [...renderKernels(kernelSpecOf(m.schedule)), ...renderHostProgram(m)];
}

export function writeProgramSources(dir: string, m = loadCompiled(dir)): string[] {
  const src = join(dir, 'src');
  mkdirSync(src, { recursive: true });
  const files = renderProgramSources(m);
  // src holds only what this render writes: a file of an earlier render (another kernel layout) would be
  // built too, and could define the same launcher twice
  const now = new Set(files.map((f) => f.file));
  for (const old of readdirSync(src)) if (!now.has(old) && statSync(join(src, old)).isFile()) rmSync(join(src, old));
  return files.map((f) => {
    writeFileSync(join(src, f.file), f.text);
    return join(src, f.file);
  });
}
