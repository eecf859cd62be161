// `fpdtc check <model> [compile flags]`: runs the compiled step on the float64 executor and
// the plain model on the interpreter, prints the largest relative errors, exits 1 above the limit.
import type { Command } from 'commander';
import { check, CHECK_MAX_SECONDS, type CheckReport } from '../check.js';
import { errors, UserError } from '../errors.js';
import { DEFAULT_EVAL_TIMEOUT_S } from '../frontend/index.js';
import { applyEvalTimeout, parseCompileFlags, type RawCompileFlags } from './compile-flags.js';
import { clipGradNorm, learningRate, scheduleFlags } from './run.js';
import type { CheckedSchedule } from '../check-schedule.js';

interface RawCheckFlags extends RawCompileFlags {
  seed?: string;
  orders?: string;
  arena?: string;
  verify?: boolean;
  force?: boolean;
  accumulate?: string;
  steps?: string;
  lr?: string;
  warmup?: string;
  schedule?: string;
  minLr?: string;
  totalSteps?: string;
  clipGradNorm?: string;
}

export function register(program: Command): void {
  program
    .command('check')
    .description('prove numerically, in float64 on the CPU, that the compiled step equals the unchunked model (small sizes)')
    .argument('<model>', 'a model file or a name in models/ (tiny-llama)')
    .option('--seq <tokens>', 'global sequence length')
    .option('--sp <ranks>', 'sequence-parallel (Ulysses) degree')
    .option('--dp <groups>', 'data-parallel degree: groups of sp ranks, each on its own sequence')
    .option('--chunk <tokens|auto>', 'FPDT chunk size in global tokens, or auto (the chunk compile picks)')
    .option('--offload <on|off>', 'stream attention chunks to host memory')
    .option('--checkpoint <off|gpu|host>', 'where layer checkpoints live')
    .option('--zero <0|3>', 'ZeRO stage')
    .option('--fpdt <on|off>', 'chunked, pipelined attention')
    .option('--device <name>', 'target device, e.g. h200')
    .option('--host-mem <GiB>', 'pinned host memory per GPU, in GiB')
    .option('--keep-attention <auto|layers>', 'layers that keep attention for backward instead of recomputing')
    .option('--gpu-checkpoints <auto|layers>', 'with --checkpoint host: the last layers that keep their checkpoint on the GPU')
    .option('--keep-activations <auto|layers>', 'without offload: layers that keep the GEMM outputs their backward would recompute')
    .option('--stashes <auto|host|gpu>', 'with offload: where a layer\'s working stashes go')
    .option('--keep-form <auto|all|outputs>', 'what those layers keep: all of q, k, v, o, lse, or only o and lse')
    .option('--optimizer <gpu|host>', 'where the fp32 AdamW states live')
    .option('--packed', 'windows of packed documents: RoPE positions restart and attention stays inside each document (check: random documents against each run on its own)')
    .option('--accumulate <k>', 'windows per optimizer step, gradients accumulated as run --accumulate does (checked against the batch of all K windows)', '1')
    .option('--steps <n>', 'optimizer steps, weights and AdamW moments carried over, each at the rate run\'s schedule gives it (checked against the reference\'s own schedule formulas)')
    .option('--lr <x>', 'peak learning rate for --steps (default the compiled one)')
    .option('--warmup <steps>', 'linear warmup steps, as run --warmup')
    .option('--schedule <constant|cosine|linear>', 'decay after warmup, as run --schedule')
    .option('--min-lr <x>', 'where decay ends, as run --min-lr (default 0)')
    .option('--total-steps <n>', 'the step at which decay reaches --min-lr (default --steps)')
    .option('--clip-grad-norm <x>', 'clip by the global gradient norm at X, as run --clip-grad-norm (checked against torch\'s clip_grad_norm_ formula on the whole model; prints each step\'s norm)')
    .option('--seed <n>', 'seeds weights, tokens and interleavings')
    .option('--orders <k>', 'stream interleavings to run (first in issue order)', '4')
    .option('--arena <planned|private>', 'buffers share bytes as the memory plan says, or each has its own', 'planned')
    .option('--no-verify', 'skip the schedule hazard checker (the executor still runs)')
    .option('--force', `run even when the check is estimated to take more than ${CHECK_MAX_SECONDS / 60} minutes`)
    .option('--eval-timeout <seconds>', `how long the model file's code may run, to load it and each time it builds a graph (default ${DEFAULT_EVAL_TIMEOUT_S})`)
    .action(async (model: string, raw: RawCheckFlags) => {
      const overrides = parseCompileFlags(raw);
      applyEvalTimeout(raw);
      const seed = raw.seed === undefined ? undefined : wholeNumber('seed', raw.seed, 0);
      const orders = wholeNumber('orders', raw.orders ?? '4', 1);
      const accumulate = wholeNumber('accumulate', raw.accumulate ?? '1', 1);
      const schedule = checkedSchedule(raw);
      const maxGradNorm = clipGradNorm(raw.clipGradNorm);
      if (raw.arena !== 'planned' && raw.arena !== 'private') throw errors.badFlag('arena', String(raw.arena), 'expected planned or private');
      const report = await check(model, overrides, {
        seed,
        orders,
        accumulate,
        ...(schedule ? { schedule } : {}),
        ...(maxGradNorm !== undefined ? { maxGradNorm } : {}),
        arena: raw.arena,
        verify: raw.verify !== false,
        force: raw.force === true,
        onProgress: (line) => process.stderr.write(line + '\n'),
      });
      process.stdout.write(formatCheck(report));
      if (!report.ok) throw new UserError(`check failed: max relative error ${sci(report.maxError)} is above ${sci(report.limit)}`);
    });
}

function wholeNumber(flag: string, v: string, min: number): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw errors.badFlag(flag, v, `expected a whole number of at least ${min}`);
  return n;
}

/** --steps and run's schedule flags, parsed by run's rules; undefined when none is given (one step at the compiled lr). */
function checkedSchedule(raw: RawCheckFlags): CheckedSchedule | undefined {
  if ([raw.steps, raw.lr, raw.warmup, raw.schedule, raw.minLr, raw.totalSteps].every((x) => x === undefined)) return undefined;
  const steps = raw.steps === undefined ? 1 : wholeNumber('steps', raw.steps, 1);
  const { warmup, kind, minLr, totalSteps } = scheduleFlags(raw, steps);
  return { steps, lr: learningRate(raw.lr), warmup, kind, minLr, totalSteps };
}

const acted = (clipped: boolean) => (clipped ? 'clipped' : 'not clipped');
const sci = (x: number) => (Number.isFinite(x) ? x.toExponential(1) : 'NaN');

/** The printout: one line per quantity, worst first within gradients and parameters. */
export function formatCheck(r: CheckReport): string {
  const c = r.config;
  const dp = (c.dp ?? 1) > 1 ? `dp ${c.dp} (a sequence each), ` : '';
  const packed = r.documents !== undefined ? `, packed (${r.documents} documents, each also run on its own; ${r.skipped ?? 0} instructions of blocks without a shared document skipped)` : '';
  const accumulated = r.accumulate > 1 ? `, accumulate ${r.accumulate} (micro steps against the batch of all ${r.accumulate} windows)` : '';
  const steps = r.steps ? `, ${r.steps.length} optimizer step${r.steps.length === 1 ? '' : 's'} (losses of each, gradients of the last, weights after it)` : '';
  const clip = r.clip ? `, clipping at global gradient norm ${r.clip.max}` : '';
  const head = `${r.model}: seq ${c.seq}, ${dp}sp ${c.sp}, chunk ${c.chunk}, offload ${c.offload ? 'on' : 'off'}, checkpoints ${c.checkpoint}, ZeRO-${c.zero}${packed}${accumulated}${steps}${clip}; ${r.orders.length} order${r.orders.length === 1 ? '' : 's'} (${r.orders.join(', ')})`;
  const width = Math.max(...[...r.grads, ...r.params].map((x) => x.name.length));
  const rows = (what: string, xs: CheckReport['grads']) => xs.map((x) => `  ${what} ${x.name.padEnd(width)}  ${sci(x.error)}`);
  return [
    head,
    `  loss   ${sci(r.loss.error)} (executor ${r.loss.executor}, reference ${r.loss.reference})`,
    ...(r.steps ?? []).map((x) => `  step ${String(x.step).padEnd(4)} lr ${x.lr.toExponential(6)} (reference ${x.referenceLr.toExponential(6)})  loss ${sci(x.lossError)}`),
    ...(r.clip?.steps ?? []).map((x) => `  clip ${String(x.step).padEnd(4)} grad norm ${x.norm.toExponential(6)} (reference ${x.referenceNorm.toExponential(6)})  ${sci(x.normError)}  ${acted(x.clipped)} (reference ${acted(x.referenceClipped)})`),
    ...rows('grad ', r.grads),
    ...rows('param', r.params),
    ...r.reuseRaces.slice(0, 3).map((x) => `  race: ${x}`),
    `  max relative error ${sci(r.maxError)}: ${r.ok ? 'ok' : 'FAILED'} (limit ${sci(r.limit)})`,
    '',
  ].join('\n');
}
