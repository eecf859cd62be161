// The `fpdtc` command. Each subcommand lives in its own file with a `register(program)`;
// this file only wires them up and turns errors into one line and an exit code.
import { createRequire } from 'node:module';
import { Command } from 'commander';
import { register as registerCompile } from './compile.js';
import { reportError } from './report-error.js';

const SUBCOMMANDS: ((program: Command) => void)[] = [registerCompile];
SUBCOMMANDS.push((await import('./inspect.js')).register);
SUBCOMMANDS.push((await import('./check.js')).register);
SUBCOMMANDS.push((await import('./build.js')).register);
SUBCOMMANDS.push((await import('./run.js')).register);
SUBCOMMANDS.push((await import('./import-hf.js')).register);

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

process.exitCode = await main(process.argv.slice(2));
