// Writes the CUDA sources of a compiled model (out/<name>/src): the kernels specialized to its
// constants and the host program rendered from its schedule and memory plan. Reads what
// `fpdtc compile` wrote (schedule.json, graph.json); the plan is recomputed, it is a pure
// function of the schedule and the device.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errors, UserError } from '../errors.js';
import { graphFromJson } from '../ir/json.js';
import type { Graph } from '../ir/types.js';
import { deviceProfile } from '../schedule/devices.js';
import { parseScheduleJson } from '../schedule/export-json.js';
import { planMemory, type MemoryPlan } from '../schedule/memory.js';
import type { Schedule } from '../schedule/types.js';
import { renderHostProgram } from './host-program.js';
import { kernelSpecOf } from './host-spec.js';
import { renderKernels, type RenderedKernel } from './kernels.js';

export interface CompiledModel {
  readonly schedule: Schedule;
  readonly graph: Graph;
  readonly plan: MemoryPlan;
}

function need(path: string): string {
  if (!existsSync(path)) throw new UserError(`no ${path}; run 'fpdtc compile <model> --out <dir>' first`);
  return readFileSync(path, 'utf8');
}

export function loadCompiled(dir: string): CompiledModel {
  const schedule = parseScheduleJson(need(join(dir, 'schedule.json')), join(dir, 'schedule.json'));
  const graph = graphFromJson(JSON.parse(need(join(dir, 'graph.json'))));
  const plan = planMemory(schedule, deviceProfile(schedule.config.device, { hostMemGiB: schedule.config.hostMemGiB }));
  return { schedule, graph, plan };
}

/** Every source file of the program: kernels, then the host program and its headers. */
export function renderProgramSources(m: CompiledModel): RenderedKernel[] {
  // packed documents (lower/packed.ts): the kernels would ignore the document ids and positions
  if (m.schedule.config.packed) throw errors.packedNotOnGpu(m.schedule.model);
  return [...renderKernels(kernelSpecOf(m.schedule)), ...renderHostProgram(m)];
}

export function writeProgramSources(dir: string, m = loadCompiled(dir)): string[] {
  const src = join(dir, 'src');
  mkdirSync(src, { recursive: true });
  return renderProgramSources(m).map((f) => {
    writeFileSync(join(src, f.file), f.text);
    return join(src, f.file);
  });
}
