// `fpdtc compile <model>`: parse flags, call the library's compile, print a short summary.
import { basename, dirname } from 'node:path';
import type { Command } from 'commander';
import { compile, type CompileResult } from '../compile.js';
import { DEFAULT_EVAL_TIMEOUT_S, displayPath } from '../frontend/index.js';
import type { Timings } from '../timings.js';
import { applyEvalTimeout, parseCompileFlags, passList, type RawCompileFlags } from './compile-flags.js';
import { formatCount, formatFlops, formatSeconds, formatTokens } from './format.js';

export function register(program: Command): void {
  program
    .command('compile')
    .description(
      'plan a training step for a model file and write out/<model>/{graph.txt, graph.json, report.json, schedule.json, schedule.dot, trace.json} (and passes/NNN_<pass>.txt with --dump-after)',
    )
    .argument('<model>', 'a model file (models/llama70b.ts) or a name in models/ (llama70b)')
    .option('--seq <tokens>', 'global sequence length; K and M suffixes, e.g. 256K, 4M')
    .option('--sp <ranks>', 'sequence-parallel (Ulysses) degree')
    .option('--dp <groups>', 'data-parallel degree: groups of sp ranks, each on its own sequence (world = dp x sp)')
    .option('--chunk <tokens|auto>', 'FPDT chunk size in global tokens, or auto')
    .option('--offload <on|off>', 'stream attention chunks to host memory')
    .option('--checkpoint <off|gpu|host>', 'where layer checkpoints live')
    .option('--zero <0|3>', 'ZeRO stage for parameters, gradients, optimizer states')
    .option('--fpdt <on|off>', 'chunked, pipelined attention (off: plain Ulysses)')
    .option('--device <name>', 'target device, e.g. h200')
    .option('--host-mem <GiB>', 'pinned host memory per GPU, in GiB')
    .option('--optimizer <gpu|host>', 'where the fp32 AdamW states live (host: streamed through the GPU at the update)')
    .option('--keep-attention <auto|layers>', 'layers that keep attention tensors in host memory for backward instead of recomputing (auto: as many as host memory allows)')
    .option('--gpu-checkpoints <auto|layers>', 'with --checkpoint host: the last layers that keep their checkpoint on the GPU (auto: none where the host holds every layer\'s, else the fewest that make the plan fit)')
    .option('--keep-activations <auto|layers>', 'without offload: layers that keep on the GPU the GEMM outputs their backward would recompute (auto: as many as GPU memory allows; none with offload)')
    .option('--stashes <auto|host|gpu>', 'with offload: where a layer\'s working stashes go (its chunks of q, k, v, dO, o, lse and the dq partials, reused by every layer; auto: the GPU where they fit, else the host)')
    .option('--keep-form <auto|all|outputs>', 'what those layers keep: all of q, k, v, o, lse, or only o and lse, their backward recomputing q, k, v by the projections (auto: all where every kept layer fits, else what keeps more layers)')
    .option('--packed', 'windows of packed documents: per-token positions and document ids, attention stays inside each document (run takes the boundaries from the dataset, --eod-token or --documents)')
    .option('--out <dir>', 'output folder', 'out')
    .option(
      '--dump-after <pass...>',
      "write the IR after these graph passes or schedule stages to passes/NNN_<name>.txt ('all' for every one): lower and sync write the schedule listing, plan the memory plan, simulate the predicted step",
    )
    .option('--skip <pass...>', 'passes not to run')
    .option('--eval-timeout <seconds>', `how long the model file's code may run, to load it and each time it builds a graph (default ${DEFAULT_EVAL_TIMEOUT_S})`)
    .option('--timings', 'print the time of each stage (the graph passes one by one, lowering, sync, memory plan, hazard check, simulation, writing) and the total')
    .action(async (model: string, raw: RawCompileFlags) => {
      const overrides = parseCompileFlags(raw);
      applyEvalTimeout(raw);
      const result = await compile(model, overrides, { outDir: raw.out, dumpAfter: passList(raw.dumpAfter), skip: passList(raw.skip) });
      process.stdout.write(summary(result));
      if (raw.timings) process.stdout.write(formatTimings(result.timings));
      for (const note of result.notes) process.stderr.write(`${note}\n`);
    });
}

/** A few lines for people; report.json has everything. */
function summary({ report: r, files }: CompileResult): string {
  const c = r.config;
  const passes = (r.passes as readonly string[] | undefined) ?? [];
  const dp = (c as { dp?: number }).dp ?? 1;
  const run = [dp > 1 ? `dp ${dp} x sp ${c.sp}` : `sp ${c.sp}`, `chunk ${c.chunk === 'auto' ? 'auto' : formatTokens(c.chunk)}`, `offload ${c.offload ? 'on' : 'off'}`, `ZeRO-${c.zero}`, `checkpoints ${c.checkpoint}`, c.device];
  const shown = files.filter((f) => !f.includes('/passes/'));
  const dumps = files.length - shown.length;
  const where = shown.length ? `${displayPath(dirname(shown[0]))}/{${shown.map((f) => basename(f)).join(', ')}}` : '(nothing written)';
  return [
    `${r.model}: ${formatCount(r.params)} params, ${r.layers} layers, ${formatTokens(r.tokens)} tokens (${run.join(', ')})`,
    `  flops/step  ${formatFlops(r.flops_per_step)} (6*params*tokens + 6*layers*S^2*hidden)`,
    `  passes      ${passes.join(', ') || '(none)'}`,
    ...planLines(r),
    `  wrote       ${where}${dumps ? ` and ${dumps} IR dump${dumps > 1 ? 's' : ''} in passes/` : ''}`,
    `  done in ${formatSeconds(performance.now())}`,
    '',
  ].join('\n');
}

const GiB = 1024 ** 3;

/** The plan in two lines (three when packed): memory per rank against the device, and the predicted step. */
function planLines(r: CompileResult['report']): string[] {
  if (r.predicted_step_s === undefined) return [];
  const gib = (x: unknown) => `${(Number(x) / GiB).toFixed(1)} GiB`;
  const mfu = typeof r.mfu === 'number' ? `, MFU ${(100 * r.mfu).toFixed(1)}%` : '';
  const kept = Number(r.kept_attention_layers ?? 0);
  return [
    `  memory      GPU ${gib(r.peak_gpu_bytes)} of ${gib(r.gpu_budget_bytes)}, pinned host ${gib(r.peak_host_bytes)} of ${gib(r.host_budget_bytes)} per rank${r.fits ? '' : ' (does not fit)'}`,
    `  predicted   ${Number(r.predicted_step_s).toFixed(2)} s per step${mfu}, ${Number(r.exposed_copy_s).toFixed(2)} s of copies exposed; attention kept for ${kept} of ${r.layers} layers${r.kept_attention_form === 'outputs' ? ' (o and lse; q, k, v recomputed by their projections)' : ''}${r.kept_activation_layers ? `, activations for ${r.kept_activation_layers}` : ''}${r.gpu_checkpoint_layers ? `; the last ${r.gpu_checkpoint_layers} layers' checkpoints on the GPU` : ''}`,
    // packed: the documents are data, so the prediction prices every block in full
    ...(r.config.packed && typeof r.attention_pricing === 'string' ? [`  attention   priced ${r.attention_pricing}`] : []),
  ];
}

/**
 * One line per stage, in the order they ran, the graph passes indented under their group's
 * line; the total is the whole compile (the lines leave out only a few cheap checks).
 */
export function formatTimings(t: Timings): string {
  const ms = (s: number) => `${(s * 1e3).toFixed(1).padStart(8)} ms`;
  const width = Math.max(16, ...t.stages.map((x) => x.stage.length + (x.group ? 2 : 0)), ...t.stages.map((x) => x.group?.length ?? 0)) + 2;
  const out = ['timings'];
  let group: string | undefined;
  for (const x of t.stages) {
    if (x.group && x.group !== group) {
      const members = t.stages.filter((y) => y.group === x.group);
      out.push(`  ${x.group.padEnd(width)}${ms(members.reduce((a, y) => a + y.seconds, 0))}`);
    }
    group = x.group;
    out.push(x.group ? `    ${x.stage.padEnd(width - 2)}${ms(x.seconds)}` : `  ${x.stage.padEnd(width)}${ms(x.seconds)}`);
  }
  out.push(`  ${'total'.padEnd(width)}${ms(t.totalSeconds)}`, '');
  return out.join('\n');
}
