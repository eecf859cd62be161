// Every error a user can see, in one catalog. Each is one line: where, what, what to change.
// Exit code 1 for bad input, 2 for bad usage (flags).

export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
    /** `file:line:col` when known */
    readonly where?: string,
  ) {
    super(message);
    this.name = 'UserError';
  }
  /** The one line printed for people. */
  line(): string {
    return this.where ? `${this.where}: error: ${this.message}` : `error: ${this.message}`;
  }
}

/** Every type error of a model file, one line each, like `tsc` prints them. */
export class TypeErrors extends UserError {
  constructor(readonly all: readonly { where: string; message: string }[]) {
    super(all[0].message, 1, all[0].where);
  }
  override line(): string {
    return this.all.map((d) => `${d.where}: error: ${d.message}`).join('\n');
  }
}

export const errors = {
  // --- usage (exit 2) ---
  badFlag: (flag: string, value: string, expected: string) => new UserError(`--${flag} ${value}: ${expected}`, 2),
  badSize: (flag: string, value: string) =>
    new UserError(`--${flag} ${value}: not a size; write a whole number, optionally with K or M (e.g. 65536, 64K, 2M)`, 2),
  unknownDevice: (name: string, known: readonly string[]) => new UserError(`--device ${name}: unknown device; known: ${known.join(', ')}`, 2),
  /** a command-line mistake the argument parser found (unknown flag, missing argument) */
  usage: (message: string) => new UserError(message, 2),
  unknownPass: (flag: string, name: string, known: readonly string[]) =>
    new UserError(`--${flag} ${name}: no pass named '${name}'; passes: ${known.join(', ')}`, 2),

  // --- model files (exit 1) ---
  modelNotFound: (path: string, tried: readonly string[]) => new UserError(`model file '${path}' not found (looked at ${tried.join(', ')})`),
  noDefaultExport: (file: string) => new UserError(`the model file has no default export; end it with 'export default defineModel({...})'`, 1, file),
  notAModel: (file: string, got: string) => new UserError(`the default export is ${got}, not a model; export the result of defineModel({...})`, 1, file),
  modelThrew: (where: string, message: string) => new UserError(`the model threw: ${message}`, 1, where),
  typeError: (where: string, message: string) => new UserError(message, 1, where),
  typeErrors: (all: readonly { where: string; message: string }[]) => new TypeErrors(all),
  shape: (where: string | undefined, message: string) => new UserError(`shape mismatch: ${message}`, 1, where),
  ropeScaling: (where: string | undefined, problem: string) => new UserError(`rope scaling: ${problem}`, 1, where),
  missingSize: (model: string, name: string) => new UserError(`model ${model} uses size '${name}' but does not define it in sizes`),
  cannotImport: (file: string, message: string) => new UserError(`cannot load the model file: ${message}`, 1, file),
  modelLoadTimedOut: (file: string, seconds: number) =>
    new UserError(`the model file did not finish loading within ${seconds} s (an endless loop at its top level?); fix it, or allow more time with --eval-timeout SECONDS`, 1, file),
  modelBuildTimedOut: (file: string, seconds: number, seq: number) =>
    new UserError(`forward() did not finish within ${seconds} s building the graph at seq ${seq} (an endless loop?); fix it, or allow more time with --eval-timeout SECONDS`, 1, file),
  modelLoadUnsettled: (file: string) =>
    new UserError(`the model file never finished loading: its top level awaits something that never settles; remove that await`, 1, file),
  modelLoadOutOfMemory: (file: string) => new UserError(`the model file ran out of memory while loading; look for a loop that keeps allocating at its top level`, 1, file),
  modelCalledExit: (where: string, code: unknown) =>
    new UserError(`the model file called process.exit(${code === undefined ? '' : String(code)}); a model file must not end fpdtc: remove the call, or throw an Error to stop with a message`, 1, where),
  /** a field of the model file's sizes or train that breaks its rule */
  modelField: (where: string, field: string, value: unknown, rule: string) => new UserError(`${field} is ${showValue(value)}; ${rule}`, 1, where),

  // --- configuration (exit 1) ---
  chunkNotDivisor: (chunk: number, seq: number, suggestion: number) =>
    new UserError(`chunk ${chunk} does not divide seq ${seq}; try ${suggestion}`),
  spNotDivisor: (what: string, n: number, sp: number) => new UserError(`sequence-parallel degree ${sp} does not divide ${what} (${n}); choose --sp among the divisors of ${n}`),
  chunkNotDivisibleBySp: (chunk: number, sp: number) => new UserError(`chunk ${chunk} is not a multiple of --sp ${sp}: each rank holds chunk/sp tokens of a chunk; pick a multiple of ${sp}`),

  spExceedsSeq: (sp: number, seq: number) => new UserError(`--sp ${sp} is larger than seq ${seq}; every rank needs at least one token`),
  chunkExceedsSeq: (chunk: number, seq: number) => new UserError(`chunk ${chunk} is larger than seq ${seq}; use a chunk of at most ${seq}`),
  seqTooLong: (seq: number, limit: number, limitText: string) =>
    new UserError(`seq ${seq} is longer than the planner supports (at most ${limit} = ${limitText} tokens); pass a smaller --seq`),
  tooManyChunks: (chunk: number, seq: number, limit: number, suggestion: number) =>
    new UserError(`chunk ${chunk} cuts seq ${seq} into ${seq / chunk} chunks; the planner supports at most ${limit} (a layer's schedule grows with their square): use --chunk ${suggestion} or larger`),
  tooManyRanks: (flag: string, n: number, limit: number) => new UserError(`--${flag} ${n} makes more ranks than the planner supports (at most ${limit})`),
  keepAttentionAboveLayers: (n: number, layers: number, flag = 'keep-attention') =>
    new UserError(`--${flag} ${n} is more than the model's ${layers} layers; pass at most ${layers}, or auto`),

  // --- the process ---
  /** a rank stopped by a signal (its launcher stops every rank when one fails) */
  rankInterrupted: (rank: string, signal: string) => new UserError(`rank ${rank} interrupted by ${signal}`),
  /** something (a model file's timer) called process.exit(0) before the command finished */
  endedEarly: () => new UserError('fpdtc was ended before the command finished (by process.exit in a model file?); its outputs are incomplete: remove the call and run it again'),

  // --- the compiler itself (exit 1; a bug, not the user's mistake) ---
  internal: (pass: string, message: string) =>
    new UserError(`internal error: ${pass === 'input' ? 'the model\'s graph is ill-formed' : `failed after ${pass}`}: ${message}`),

  doesNotFit: (model: string, advice: string) => new UserError(`${model} does not fit: ${advice}`),
  /** `fpdtc run` of a packed program without a source of document boundaries */
  packedNeedsDocuments: (dir: string) =>
    new UserError(`${dir} was compiled with --packed: say where its documents start: --tokens PREFIX of an indexed dataset (its .idx holds the document index), --eod-token ID, or --documents FILE`, 2),
  /** --eod-token, --documents or --loss-mask for a program compiled without --packed */
  documentsNeedPacked: (dir: string, flag: string) =>
    new UserError(`--${flag}: ${dir} was compiled without --packed, so its attention spans the whole window; compile with --packed to train on packed documents`, 2),
  /** `fpdtc inspect --documents FILE` of a file of starts that does not read (runtime/document-boundaries.ts' message, first line) */
  badDocumentsFile: (message: string) => new UserError(`--documents: ${message.split('\n')[0]}`, 2),
  /** `fpdtc check` estimated to run too long on the CPU */
  checkTooSlow: (model: string, seq: number, duration: string, runs: number, flopsPerRun: number, limit: string) =>
    new UserError(
      `checking ${model} at seq ${seq} would take about ${duration} on this CPU (${runs} float64 runs of ${flopsPerRun.toExponential(1)} FLOPs; more than ${limit}): use a smaller model or --seq, fewer --orders, or pass --force to run it anyway`,
    ),

  // --- outputs ---
  cannotWrite: (path: string, reason: string) => new UserError(`cannot write ${path}: ${reason}`),
  /** a rank that got a signal and did not finish the step in flight in time (another rank died, NCCL waits for it) */
  stopNotReached: (signal: string, seconds: number) =>
    new UserError(`${signal}: the step in flight did not finish within ${seconds} s (a rank died or is stuck?); stopped without a checkpoint of it, the last one stands: resume from it`),
  checkpointUnreadable: (path: string, what: string, fix: string) => new UserError(`checkpoint ${path}: ${what}; ${fix}`),
  checkpointMismatch: (ckpt: string, field: string, saved: string, now: string, fix: string) =>
    new UserError(`checkpoint ${ckpt} was written with ${field} ${saved}, this run has ${now}; ${fix}`),
  /** a model name that cannot be a folder name under --out */
  badModelName: (file: string, name: string) =>
    new UserError(`the model's name ${JSON.stringify(name)} cannot name its output folder; use letters, digits, '.', '_' and '-', not starting with '.'`, 1, file),
  outsideOut: (path: string, root: string) => new UserError(`refusing to write ${path}: it is outside the output folder ${root}`),
  /** schedule.json or report.json that does not hold what compile writes */
  outFileInvalid: (path: string, what: string) => new UserError(`${what}; compile the model again (fpdtc compile)`, 1, path),
  noBuild: (dir: string) => new UserError(`no built addon under ${dir}/build; run 'fpdtc build ${dir}' first`),
  /** a build folder without the record a finished build writes (the build failed, or was interrupted) */
  unfinishedBuild: (dir: string) => new UserError(`${dir}/build holds no finished build (no built-from.json: the last build failed or was stopped); run 'fpdtc build ${dir}'`),
  staleBuild: (dir: string) => new UserError(`${dir}/build was built from another schedule (recompiled since); run 'fpdtc build ${dir}'`),
  cannotReadOut: (path: string, why: string) => new UserError(`cannot read ${path} (${why}); pass the folder 'fpdtc compile' wrote (out/<model>)`),
  fileExists: (path: string) => new UserError(`${path} exists; pass --force to overwrite it, or another --out`),
  /** the JSON-lines file `fpdtc run --metrics` writes, read by `fpdtc plot` */
  metricsUnreadable: (path: string, why: string) => new UserError(`cannot read ${path} (${why}); pass the file that 'fpdtc run --metrics FILE' wrote`),
  metricsEmpty: (path: string) => new UserError(`the file holds no steps; pass the file that 'fpdtc run --metrics FILE' wrote, after at least one step`, 1, path),
  /** a Chrome trace given to `fpdtc inspect --measured` that is not one fpdtc wrote */
  traceUnreadable: (path: string, why: string) =>
    new UserError(`cannot read ${path} as a trace (${why}); pass the file 'fpdtc run --trace FILE' wrote (or a compile's trace.json), .json or .json.gz`),
  /** a measured trace of another program than the compiled folder's */
  traceOfOtherModel: (path: string, theirs: string, ours: string) =>
    new UserError(`${path} is a trace of ${theirs}, the folder holds ${ours}; pass the trace of a run of this folder's build`),
  /** a device calibration file (schedule/calibration/<device>.json) that breaks its format */
  badCalibration: (file: string, what: string) => new UserError(`calibration ${file}: ${what}; regenerate it with test/bench/calibrate.py`),
  metricsBadLine: (path: string, line: number, what: string) =>
    new UserError(`${what}; each line must be one JSON record with step and loss, as 'fpdtc run --metrics' writes them`, 1, `${path}:${line}`),

  // --- weights and Hugging Face folders (exit 1) ---
  weightsMissingTensor: (path: string, name: string, count: number) => new UserError(`${path}: no tensor '${name}' (the model needs ${count} tensors)`),
  weightsShape: (path: string, name: string, got: readonly number[], want: readonly number[]) =>
    new UserError(`${path}: '${name}' has shape [${got.join(', ')}], the model needs [${want.join(', ')}]`),
  weightsNoLmHead: (path: string, model: string) =>
    new UserError(`${path}: no tensor 'lm_head.weight', and the model (${model}) has its own LM head; use weights that hold one, or a model with tiedEmbeddings: true`),
  /** a config.json value that differs from the compiled model */
  hfMismatch: (where: string, field: string, theirs: string, model: string, ours: string, folder: string) =>
    new UserError(`${where}: ${field} is ${theirs}, the model (${model}) has ${ours}; use a model file made from this folder (fpdtc import-hf ${folder}) or other weights`),
  /** something config.json asks for that the compiler does not implement (an architecture, a rope scaling) */
  hfUnsupported: (where: string, what: string, supported: string) => new UserError(`${where}: ${what}; supported: ${supported}`),
  /** a runtime error about a file (runtime/errors.ts), shown as its first line */
  runtime: (message: string) => new UserError(message.split('\n')[0]),
  weightsDtype: (path: string, name: string, dtype: string) =>
    new UserError(`${path}: '${name}' is ${dtype}; weights must be F32, BF16 or F16 (convert the tensor)`),
  weightsNotFinite: (path: string, name: string, index: number, value: number) =>
    new UserError(`${path}: '${name}' holds ${value} at element ${index}; weights must be finite (the checkpoint is damaged, or diverged before it was saved)`),
  hfNoConfig: (dir: string) => new UserError(`${dir}: no config.json; pass a Hugging Face model folder`),
  hfBadConfig: (where: string, what: string) => new UserError(`${where}: ${what}; fix config.json or re-download the folder`),
  hfModelNotLlama: (path: string, model: string, why: string) =>
    new UserError(`${path}: the model (${model}) is not a Llama model (${why}), so it cannot be read from or written as a Hugging Face Llama folder; pass a path ending in .safetensors`),
} as const;

/** A value from a model file as it would be written there. */
function showValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v);
  if (typeof v === 'function') return 'a function';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export const isUserError = (e: unknown): e is UserError => e instanceof UserError;
