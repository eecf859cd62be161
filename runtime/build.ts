// Builds the Node addon of a generated program folder (out/<name>/src/*.cu)
// with cmake-js, offline: the build folder gets a package.json declaring
// N-API versions (so cmake-js uses the bundled node-api-headers) and a
// CMakeLists.txt rendered from codegen-templates/host/CMakeLists.txt.njk.
import { spawn } from "node:child_process";
import { accessSync, constants, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { basename, delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import nunjucks from "nunjucks";

import { firstLine, runtimeErrors } from "./errors.js";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..");
const require = createRequire(import.meta.url);

export const NAPI_VERSION = 8;
export const DEFAULT_CUDA_ARCHITECTURES = "90a";

/**
 * The runtime's contract with every program: fpdt_abi.h (the C interface a program implements and
 * the addon drives) and fpdt_comm.h (the communicator the addon creates and a program's
 * collectives use). The addon and the programs include them from here.
 */
export const RUNTIME_INCLUDE_DIR = join(here, "include");

/** Runtime C++ sources linked into every addon, relative to runtime/src. */
export const RUNTIME_SOURCES = ["addon.cc", "local_world.cc", "cuda_errors.cc", "dl_library.cc", "cublaslt_shim.cc", "nccl_shim.cc", "gemm_bf16.cc", "gemm_plan.cc"];

export interface BuildOptions {
  /** Program folder holding src/ (e.g. out/llama8b). */
  programDir: string;
  /** Where cmake works and the addon lands; default <programDir>/build. */
  buildDir?: string;
  /** CMAKE_CUDA_ARCHITECTURES; default $FPDT_CUDA_ARCHITECTURES or "90a". */
  cudaArchitectures?: string;
  /** Parallel compile jobs; default the number of cores. */
  jobs?: number;
  /** Receives one short line per build stage; default writes to stderr. */
  onProgress?: (line: string) => void;
  /** The content hash of the schedule the sources were rendered from, kept in the build record. */
  scheduleHash?: string;
}

/**
 * The record a finished build leaves in its build folder: what it was built from. It is removed
 * before a build starts and written only after it succeeds, so a folder without it holds no
 * usable build, and `fpdtc run` compares its hash with the schedule's.
 */
export const BUILD_RECORD = "built-from.json";

export interface BuildRecord {
  /** schedule.json's `hash` */
  hash: string;
  /** CMAKE_CUDA_ARCHITECTURES */
  arch: string;
  /** ISO time the build finished */
  built_at: string;
  /** the addon, relative to the build folder */
  addon: string;
}

/** The record of the build in `buildDir`, or undefined when there is none; a damaged one is an error. */
export function readBuildRecord(buildDir: string): BuildRecord | undefined {
  const path = join(buildDir, BUILD_RECORD);
  if (!existsSync(path)) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw runtimeErrors.badFile(path, `is not readable JSON (${firstLine((e as Error).message)})`, `build again with \`fpdtc build ${dirname(buildDir)}\``);
  }
  const r = doc as Partial<BuildRecord> | null;
  const fields: (keyof BuildRecord)[] = ["hash", "arch", "built_at", "addon"];
  const bad = fields.find((f) => typeof r?.[f] !== "string");
  if (bad) throw runtimeErrors.badFile(path, `has no text field '${bad}'`, `build again with \`fpdtc build ${dirname(buildDir)}\``);
  return r as BuildRecord;
}

/** The architectures a CMake cache was configured with, or undefined. */
function cachedArchitectures(cmakeDir: string): string | undefined {
  const cache = join(cmakeDir, "CMakeCache.txt");
  if (!existsSync(cache)) return undefined;
  return /^CMAKE_CUDA_ARCHITECTURES(?::\w+)?=(.*)$/m.exec(readFileSync(cache, "utf8"))?.[1];
}

/**
 * cmake-js configures only when there is no CMake cache, so a new --arch on a rebuild would be
 * ignored: when the cached architectures differ, the cache goes and the next build configures.
 * Returns whether it cleared the cache.
 */
export function clearCacheOnArchChange(cmakeDir: string, arch: string): boolean {
  const cached = cachedArchitectures(cmakeDir);
  if (cached === undefined || cached === arch) return false;
  rmSync(join(cmakeDir, "CMakeCache.txt"), { force: true });
  rmSync(join(cmakeDir, "CMakeFiles"), { recursive: true, force: true });
  return true;
}

export interface BuildResult {
  addonPath: string;
  logPath: string;
  seconds: number;
}

export interface CMakeListsData {
  target: string;
  cudaArchitectures: string;
  napiVersion: number;
  programSources: string[];
  runtimeSources: string[];
  includeDirs: string[];
  defines: string[];
  cudaFlags: string[];
}

/** Renders the addon's CMakeLists.txt; all decisions are in `data`. */
export function renderCMakeLists(data: CMakeListsData): string {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(join(repoRoot, "codegen-templates", "host")), {
    autoescape: false,
    throwOnUndefined: true,
  });
  return env.render("CMakeLists.txt.njk", data);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Looks for an executable: an explicit path first, then PATH, then fallbacks. */
export function findExecutable(name: string, explicit: string | undefined, fallbacks: string[]): string | undefined {
  if (explicit) return isExecutable(explicit) ? explicit : undefined;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return fallbacks.find(isExecutable);
}

function findNvcc(): string {
  const explicit = process.env.CUDACXX;
  const nvcc = findExecutable("nvcc", explicit, ["/usr/local/cuda/bin/nvcc"]);
  if (!nvcc) {
    const looked = explicit ? `CUDACXX=${explicit}` : "PATH and /usr/local/cuda/bin";
    throw runtimeErrors.toolMissing("nvcc", looked, "install the CUDA toolkit (13.0) or set CUDACXX to the path of nvcc");
  }
  return nvcc;
}

function findCmake(): string {
  const explicit = process.env.CMAKE;
  const cmake = findExecutable("cmake", explicit, []);
  if (!cmake) {
    const looked = explicit ? `CMAKE=${explicit}` : "PATH";
    throw runtimeErrors.toolMissing("cmake", looked, "install cmake >= 3.24 or set CMAKE to its path");
  }
  return cmake;
}

function listSources(srcDir: string): string[] {
  if (!existsSync(srcDir)) throw runtimeErrors.noProgramSources(srcDir);
  const sources = readdirSync(srcDir)
    .filter((f) => /\.(cu|cc|cpp)$/.test(f))
    .sort()
    .map((f) => join(srcDir, f));
  if (sources.length === 0) throw runtimeErrors.noProgramSources(srcDir);
  return sources;
}

/** Turns a line of cmake/ninja/make output into a progress line, or undefined. */
export function progressLine(line: string): string | undefined {
  const ninja = /^\[(\d+)\/(\d+)\]\s+(Building \w+ object|Linking \w+ shared \w+)\s+(\S+)/.exec(line);
  if (ninja) return `[${ninja[1]}/${ninja[2]}] ${ninja[3].replace(/ object$/, "")} ${basename(ninja[4]).replace(/\.o$/, "")}`;
  const make = /^\[\s*(\d+)%\]\s+(Building \w+ object|Linking \w+ shared \w+)\s+(\S+)/.exec(line);
  if (make) return `[${make[1]}%] ${make[2].replace(/ object$/, "")} ${basename(make[3]).replace(/\.o$/, "")}`;
  if (/^-- Configuring done/.test(line)) return "configured";
  if (/^-- Check for working CUDA compiler/.test(line) && / - works$|skipped/.test(line)) return "CUDA compiler works";
  return undefined;
}

/** The first compiler or cmake error in a build log, shortened to one line. */
export function firstBuildError(log: string): string {
  const lines = log.split("\n");
  const patterns = [/\(\d+\): error[: ].*/, /:\d+:\d+: (fatal )?error: .*/, /CMake Error.*/, /\berror\b.*/i];
  for (const pattern of patterns) {
    const hit = lines.find((l) => pattern.test(l));
    if (hit) return hit.trim().replace(/\s+/g, " ").slice(0, 300);
  }
  return "the compiler reported an error";
}

function findAddon(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isFile() && entry.name.endsWith(".node")) return path;
    if (entry.isDirectory() && entry.name !== "CMakeFiles") {
      const found = findAddon(path);
      if (found) return found;
    }
  }
  return undefined;
}

/** Builds <programDir>/src into a .node addon and returns its path. */
export async function buildAddon(options: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const progress = options.onProgress ?? ((line: string) => process.stderr.write(`build: ${line}\n`));
  const programDir = resolve(options.programDir);
  const buildDir = resolve(options.buildDir ?? join(programDir, "build"));
  const nvcc = findNvcc();
  const cmake = findCmake();
  const programSources = listSources(join(programDir, "src"));
  const cudaArchitectures = options.cudaArchitectures ?? process.env.FPDT_CUDA_ARCHITECTURES ?? DEFAULT_CUDA_ARCHITECTURES;
  const jobs = options.jobs ?? availableParallelism();

  mkdirSync(buildDir, { recursive: true });
  // Until this build succeeds, the folder holds no usable build: no record, no old addon.
  rmSync(join(buildDir, BUILD_RECORD), { force: true });
  for (let old = findAddon(join(buildDir, "cmake")); old; old = findAddon(join(buildDir, "cmake"))) rmSync(old, { force: true });
  if (clearCacheOnArchChange(join(buildDir, "cmake"), cudaArchitectures)) progress(`architectures changed to ${cudaArchitectures}: configuring afresh`);
  const target = `fpdt_${basename(programDir).replace(/[^A-Za-z0-9_]/g, "_")}`;
  const napiInclude = dirname(require.resolve("node-addon-api/package.json"));
  writeFileSync(
    join(buildDir, "CMakeLists.txt"),
    renderCMakeLists({
      target,
      cudaArchitectures,
      napiVersion: NAPI_VERSION,
      programSources,
      runtimeSources: RUNTIME_SOURCES.map((f) => join(here, "src", f)),
      // the runtime's contract headers first, so that no copy in a program folder can stand in for them
      includeDirs: [RUNTIME_INCLUDE_DIR, join(programDir, "src"), join(here, "src"), napiInclude],
      defines: [],
      cudaFlags: [],
    }),
  );
  writeFileSync(
    join(buildDir, "package.json"),
    JSON.stringify({ name: target, private: true, binary: { napi_versions: [NAPI_VERSION] } }, null, 2) + "\n",
  );

  const logPath = join(buildDir, "build.log");
  const cmakeJs = join(dirname(require.resolve("cmake-js/package.json")), "bin", "cmake-js");
  const args = [
    cmakeJs, "build",
    "--directory", buildDir,
    "--out", join(buildDir, "cmake"),
    "--cmake-path", cmake,
    "--parallel", String(jobs),
    `--CDCMAKE_CUDA_COMPILER=${nvcc}`,
    `--CDCMAKE_CUDA_ARCHITECTURES=${cudaArchitectures}`,
  ];
  progress(`${programSources.length} program source(s) + runtime, sm ${cudaArchitectures}, ${jobs} job(s), log ${logPath}`);
  const log = await runLogged(process.execPath, args, buildDir, logPath, (line) => {
    const p = progressLine(line);
    if (p) progress(p);
  });
  if (log.code !== 0) throw runtimeErrors.buildFailed(options.programDir, firstBuildError(log.text), logPath);
  const addonPath = findAddon(join(buildDir, "cmake"));
  if (!addonPath) throw runtimeErrors.addonNotProduced(buildDir, logPath);
  const record: BuildRecord = { hash: options.scheduleHash ?? "", arch: cudaArchitectures, built_at: new Date().toISOString(), addon: relative(buildDir, addonPath) };
  writeFileSync(join(buildDir, `${BUILD_RECORD}.tmp`), JSON.stringify(record, null, 2) + "\n");
  renameSync(join(buildDir, `${BUILD_RECORD}.tmp`), join(buildDir, BUILD_RECORD));
  const seconds = (Date.now() - started) / 1000;
  progress(`built ${addonPath} in ${seconds.toFixed(1)} s`);
  return { addonPath, logPath, seconds };
}

function runLogged(
  command: string,
  args: string[],
  cwd: string,
  logPath: string,
  onLine: (line: string) => void,
): Promise<{ code: number; text: string }> {
  return new Promise((resolvePromise, reject) => {
    const logFile = createWriteStream(logPath);
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    let pending = "";
    const take = (chunk: Buffer) => {
      const s = chunk.toString("utf8");
      logFile.write(s);
      text += s;
      pending += s;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", (err) => {
      logFile.end();
      reject(err);
    });
    child.on("close", (code) => {
      if (pending) onLine(pending);
      logFile.end(() => resolvePromise({ code: code ?? 1, text }));
    });
  });
}

// `tsx runtime/build.ts <programDir> [--build-dir DIR] [--arch 90a] [--jobs N]`
// run as a script; not when bundled into another entry point (which shares its import.meta.url)
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && /build\.[cm]?[jt]s$/.test(process.argv[1])) {
  const argv = process.argv.slice(2);
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv.splice(i, 2)[1] : undefined;
  };
  const buildDir = flag("--build-dir");
  const arch = flag("--arch");
  const jobs = flag("--jobs");
  if (argv.length !== 1) {
    process.stderr.write("usage: build.ts <program folder> [--build-dir DIR] [--arch 90a] [--jobs N]\n");
    process.exit(2);
  }
  if (jobs !== undefined && !/^[1-9]\d*$/.test(jobs)) {
    process.stderr.write(`--jobs ${jobs}: expected a whole number of at least 1\n`);
    process.exit(2);
  }
  buildAddon({ programDir: argv[0], buildDir, cudaArchitectures: arch, jobs: jobs ? Number(jobs) : undefined }).then(
    (r) => process.stdout.write(`${r.addonPath}\n`),
    (e: Error) => {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    },
  );
}
