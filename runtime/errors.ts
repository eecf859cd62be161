// Every user-facing runtime error, as a named constructor. Each message is one
// line: where, what, and what to change.

export class RuntimeError extends Error {
  /** Stable identifier for tests and callers, e.g. "NVCC_MISSING" or "FPDT_ERR_NO_DEVICE". */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "RuntimeError";
    this.code = code;
  }
}

const make = (code: string, message: string) => new RuntimeError(code, message);

export const runtimeErrors = {
  // build
  toolMissing: (tool: string, looked: string, fix: string) =>
    make(`${tool.toUpperCase().replace(/[^A-Z]/g, "_")}_MISSING`, `build: ${tool} not found (looked in ${looked}); ${fix}`),
  noProgramSources: (srcDir: string) =>
    make("NO_SOURCES", `build: no .cu/.cc/.cpp files in ${srcDir}; run \`fpdtc compile\` first or point at the program folder`),
  buildFailed: (programDir: string, firstError: string, logPath: string) =>
    make("BUILD_FAILED", `build of ${programDir} failed: ${firstError}; full log in ${logPath}`),
  addonNotProduced: (buildDir: string, logPath: string) =>
    make("BUILD_FAILED", `build: no .node file under ${buildDir} after a successful build; see ${logPath}`),

  // load
  addonMissing: (path: string) =>
    make("ADDON_MISSING", `load: ${path} does not exist; build it first with \`fpdtc build\``),
  addonLoadFailed: (path: string, why: string) =>
    make("ADDON_LOAD_FAILED", `load: ${path} cannot be loaded (${firstLine(why)}); rebuild it on this machine with \`fpdtc build\``),
  abiMismatch: (path: string, program: number, expected: number) =>
    make("ABI_MISMATCH", `load: ${path} implements fpdt ABI ${program} but this runtime speaks ABI ${expected}; recompile and rebuild the program`),
  unknownParam: (name: string, known: string[]) =>
    make("UNKNOWN_PARAM", `program: no parameter named '${name}'; known: ${known.slice(0, 8).join(", ")}${known.length > 8 ? ", ..." : ""}`),

  // data files
  badFile: (path: string, what: string, fix: string) => make("BAD_FILE", `${path}: ${what}; ${fix}`),
  tokensAreText: (path: string) =>
    make("BAD_FILE", `${path}: holds text, not token ids; tokenize it first and write the ids as flat little-endian uint32 (.bin) or a .npy array`),
  tooFewTokens: (path: string, have: number, need: number) =>
    make("BAD_FILE", `${path}: holds ${have} tokens and one step needs ${need} (the compiled seq); use a longer token file or compile with a smaller --seq`),
  tokenNotInVocab: (path: string, index: number, value: number | bigint, vocab: number) =>
    make("BAD_FILE", `${path}: token ${value} at index ${index} is not below the vocabulary size ${vocab}; check the tokenizer (it must match the model's) and the file's dtype`),

  // distributed environment and launcher
  distEnv: (what: string, fix: string) => make("DIST_ENV", `environment: ${what}; ${fix}`),
  rankFailed: (rank: number, how: string, others: number) =>
    make("RANK_FAILED", `launch: rank ${rank} ${how}; stopped the other ${others} rank${others === 1 ? "" : "s"} (see its [rank ${rank}] output above)`),
  launchUsage: (what: string, fix: string) => make("LAUNCH_USAGE", `launch: ${what}; ${fix}`),
};

export function firstLine(text: string): string {
  const line = text.split("\n").find((l) => l.trim() !== "") ?? text;
  return line.trim();
}
