// Turns anything thrown by a command into what a person should see: one line and an exit
// code (1 bad input, 2 bad usage). Stacks only with FPDTC_DEBUG=1.
import { CommanderError } from 'commander';
import { isUserError, TypeErrors } from '../errors.js';

/** Prints what went wrong as people should see it and returns the exit code. */
export function reportError(e: unknown): number {
  const debug = !!process.env.FPDTC_DEBUG;
  if (e instanceof CommanderError) {
    // commander has printed its own one-line message (or the help) already.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
    if (e.code === 'commander.help') return e.exitCode === 0 ? 0 : 2;
    return 2;
  }
  if (isUserError(e)) {
    // A message made from another error's text may carry that error's stack: keep the line.
    process.stderr.write((e instanceof TypeErrors ? e.line() : firstLine(e.line())) + '\n');
    if (debug) printStacks(e);
    return e.exitCode;
  }
  // Anything else is a bug in fpdtc, not a mistake of the user's.
  const message = e instanceof Error ? e.message.split('\n')[0] : String(e);
  process.stderr.write(`internal error: ${message}${debug ? '' : ' (FPDTC_DEBUG=1 shows the stack)'}\n`);
  if (debug) printStacks(e);
  return 1;
}

const firstLine = (s: string) => s.split('\n')[0];

function printStacks(e: unknown): void {
  for (let x: unknown = e; x instanceof Error; x = x.cause) process.stderr.write(`${x.stack}\n`);
}

