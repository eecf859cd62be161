// One pipeline: named, pure passes, verified before the first and after every pass.
// Any pass can be dumped (`--dump-after NAME`) or skipped (`--skip NAME`) by name.
import { printGraph } from '../ir/printer.js';
import type { Graph } from '../ir/types.js';
import { VerifyError, verifyGraph } from '../ir/verify.js';

export interface GraphPass {
  readonly name: string;
  /** must not mutate its input */
  run(g: Graph): Graph;
}

export class PassError extends Error {
  constructor(
    readonly pass: string,
    readonly cause: Error,
  ) {
    super(`${pass === 'input' ? 'the input graph is ill-formed' : `failed after ${pass}`}: ${cause.message}`);
  }
}

export interface PipelineOptions {
  /** pass names whose output is handed to `dump` ('all' for every pass) */
  dumpAfter?: readonly string[];
  skip?: readonly string[];
  dump?: (index: number, pass: string, text: string) => void;
}

export function runGraphPasses(g: Graph, passes: readonly GraphPass[], opts: PipelineOptions = {}): Graph {
  const known = new Set(passes.map((p) => p.name));
  for (const n of [...(opts.dumpAfter ?? []), ...(opts.skip ?? [])])
    if (n !== 'all' && n !== 'input' && !known.has(n)) throw new PassError('input', new Error(`no pass named '${n}'; passes: ${[...known].join(', ')}`));
  check('input', g);
  const wantDump = (name: string) => opts.dumpAfter?.includes(name) || opts.dumpAfter?.includes('all');
  if (wantDump('input')) opts.dump?.(0, 'input', printGraph(g));
  passes.forEach((p, i) => {
    if (opts.skip?.includes(p.name)) return;
    g = p.run(g);
    check(p.name, g);
    if (wantDump(p.name)) opts.dump?.(i + 1, p.name, printGraph(g));
  });
  return g;
}

function check(pass: string, g: Graph): void {
  try {
    verifyGraph(g);
  } catch (e) {
    if (e instanceof VerifyError) throw new PassError(pass, e);
    throw e;
  }
}
