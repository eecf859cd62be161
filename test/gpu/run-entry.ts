// `fpdtc run` alone (bundled to one .mjs for the GPU host, where the compiler's dependencies are
// not carried): node run-entry.mjs <dir> [--gpus N | --ranks-per-gpu N] [--steps N] ...
import { Command } from 'commander';
import { register } from '../../compiler/cli/run.js';
import { reportError } from '../../compiler/cli/report-error.js';

const program = new Command('fpdtc').exitOverride();
register(program);
try {
  await program.parseAsync(['run', ...process.argv.slice(2)], { from: 'user' });
} catch (e) {
  process.exitCode = reportError(e);
}
