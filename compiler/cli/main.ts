// The `fpdtc` command. Each subcommand lives in its own file with a `register(program)`;
// this file only wires them up and turns errors into one line and an exit code.
import { createRequire } from 'node:module';
import { Command } from 'commander';
import { errors } from '../errors.js';
import { register as registerCompile } from './compile.js';
import { reportError } from './report-error.js';
import { stopsAfterStep } from '../train/stop-request.js';

const SUBCOMMANDS: ((program: Command) => void)[] = [registerCompile];
SUBCOMMANDS.push((await import('./inspect.js')).register);
SUBCOMMANDS.push((await import('./check.js')).register);
SUBCOMMANDS.push((await import('./build.js')).register);
SUBCOMMANDS.push((await import('./run.js')).register);
SUBCOMMANDS.push((await import('./import-hf.js')).register);
SUBCOMMANDS.push((await import('./view.js')).register);
SUBCOMMANDS.push((await import('./plot.js')).register);

export function buildProgram(): Command {
  const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };
  const program = new Command('fpdtc')
    .description('compile transformers for training on millions of tokens (FPDT / Ulysses-Offload)')
    .version(version)
    // Throw instead of exiting, so that usage errors get exit code 2 below.
    .exitOverride()
    .allowExcessArguments(false);
  for (const register of SUBCOMMANDS) register(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (e) {
    return reportError(e);
  }
}

let finished = false;

// Whatever escapes a command (a rejection nobody awaited, an error thrown from a timer) is
// still one line and an exit code, never Node's stack dump.
process.on('uncaughtException', (e) => exitNow(reportError(e)));
process.on('unhandledRejection', (e) => exitNow(reportError(e)));

// A rank that its launcher stops (SIGTERM, after another rank failed or the launcher was
// interrupted) says so in one line, unless it saves a checkpoint first. Only ranks listen: a
// listener replaces the default exit, which a busy compile or check must keep, so that Ctrl-C
// stops it at once.
if (process.env.RANK !== undefined) {
  process.on('SIGTERM', () => {
    // a run with checkpoints finishes its step and saves first (train/stop-request.ts)
    if (stopsAfterStep()) return;
    process.stderr.write(errors.rankInterrupted(String(process.env.RANK), 'SIGTERM').line() + '\n');
    exitNow(128 + 15);
  });
}

// A model file runs inside this process: if something it started ends the process early
// with exit code 0, the command did not finish, and that must not read as success.
process.on('exit', (code) => {
  if (finished || code !== 0) return;
  process.stderr.write(errors.endedEarly().line() + '\n');
  process.exitCode = 1;
});

function exitNow(code: number): never {
  finished = true;
  process.exit(code);
}

process.exitCode = await main(process.argv.slice(2));
finished = true;
