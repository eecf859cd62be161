// `fpdtc build out/<name>`: renders the kernels and the host program of a compiled model into
// out/<name>/src and builds the Node addon (nvcc + cmake-js) with runtime/build.ts.
import type { Command } from 'commander';
import { relative } from 'node:path';
import { writeProgramSources } from '../codegen/host-files.js';
import { KernelSpecError } from '../codegen/kernels.js';
import { errors, UserError } from '../errors.js';
import { readCompiledOut } from '../schedule/json.js';
import { buildAddon } from '../../runtime/build.js';

export async function buildProgramDir(dir: string, opts: { arch?: string; jobs?: number } = {}): Promise<string> {
  // both files checked (and against each other) before anything is rendered; the build records the schedule's hash.
  // The program is rendered from schedule.json alone (graph.json is not read).
  const { schedule } = readCompiledOut(dir);
  let files: string[];
  try {
    files = writeProgramSources(dir);
  } catch (e) {
    // a model the GPU kernels cannot take (e.g. the CPU test models' head dim 4): say so, plainly
    if (e instanceof KernelSpecError) throw new UserError(`${dir}: ${e.message.replace(/^kernel spec: /, '')} for the GPU kernels; \`fpdtc check\` runs any size on the CPU`);
    throw e;
  }
  process.stderr.write(`build: rendered ${files.length} source files into ${relative(process.cwd(), `${dir}/src`) || '.'}\n`);
  try {
    const r = await buildAddon({ programDir: dir, cudaArchitectures: opts.arch, jobs: opts.jobs, scheduleHash: schedule.hash });
    return r.addonPath;
  } catch (e) {
    if ((e as { code?: unknown }).code !== undefined && e instanceof Error) throw new UserError(e.message.split('\n')[0]);
    throw e;
  }
}

export function register(program: Command): void {
  program
    .command('build')
    .description('generate the CUDA program of a compiled model and build its addon (needs nvcc and cmake)')
    .argument('<dir>', 'the output folder of a compile, e.g. out/llama1b')
    .option('--arch <sm>', 'CUDA architectures (default 90a)')
    .option('--jobs <n>', 'parallel compile jobs')
    .action(async (dir: string, o: { arch?: string; jobs?: string }) => {
      const jobs = o.jobs === undefined ? undefined : jobsFlag(o.jobs);
      const arch = o.arch === undefined ? undefined : archFlag(o.arch);
      const addon = await buildProgramDir(dir, { arch, jobs });
      process.stdout.write(`${addon}\n`);
    });
}

function jobsFlag(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw errors.badFlag('jobs', v, 'expected a whole number of parallel jobs, at least 1');
  return n;
}

/** CMAKE_CUDA_ARCHITECTURES: `90a`, `80;90a` (or `80,90a`), `90-real`, `native`, `all`, `all-major`. */
function archFlag(v: string): string {
  const one = /^\d+[af]?(-real|-virtual)?$/;
  const list = v.split(/[;,]/);
  if (['native', 'all', 'all-major'].includes(v) || (list.length > 0 && list.every((a) => one.test(a)))) return list.join(';');
  throw errors.badFlag('arch', v, "expected CUDA architectures such as 90a, '80;90a', native or all");
}
