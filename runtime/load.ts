// Loads a built addon and wraps its native Program in a typed class.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";

import { RuntimeError, runtimeErrors } from "./errors.js";

/** FPDT_ABI_VERSION of runtime/include/fpdt_abi.h. */
export const ABI_VERSION = 7;

/**
 * fpdt_step_phases' flags: an optimizer step of K windows is K steps, the first with zeroGrads,
 * the last with update (one window: `whole`, fpdt_step).
 */
export const STEP_PHASES = { zeroGrads: 1, update: 2, whole: 3 } as const;

export interface ParamInfo {
  index: number;
  name: string;
  shape: number[];
  /** This rank's slice of the row-major flattened tensor. */
  shardOffset: number;
  shardLength: number;
}

/** AdamW's moments, by torch's names (fpdt_state of fpdt_abi.h). */
export type Moment = "exp_avg" | "exp_avg_sq";
export const MOMENTS: readonly Moment[] = ["exp_avg", "exp_avg_sq"];
const MOMENT_INDEX: Record<Moment, number> = { exp_avg: 0, exp_avg_sq: 1 };

export interface MemoryReport {
  plannedGpu: number;
  peakGpuMeasured: number;
  plannedHost: number;
}

export interface Timing {
  name: string;
  ms: number;
}

/**
 * One instruction of the last step as it ran (fpdt_trace_event, named): `instr` indexes the
 * program's table of instructions (a loop's iterations share one), `id` and `op` are its
 * schedule.json id and op, `stream` 0 compute, 1 h2d, 2 d2h, 3 comm; milliseconds from the
 * step's start. Events come in the order the step issued the instructions.
 */
export interface MeasuredInstr {
  instr: number;
  id: string;
  op: string;
  stream: number;
  startMs: number;
  endMs: number;
}

/** A communicator for fpdt_create (NCCL from ncclInit, or a local world), opaque to JavaScript. */
export type NcclComm = { readonly __ncclComm: unique symbol };
/** The local world of `localWorld(n)`: n ranks of this process on GPU 0. */
export type LocalWorld = { readonly __localWorld: unique symbol };

interface NativeProgram {
  paramCount(): number;
  paramInfo(i: number): Omit<ParamInfo, "index">;
  setParam(i: number, values: Float32Array): void;
  getParam(i: number): Float32Array;
  getGrad(i: number): Float32Array;
  getState(i: number, which: number): Float32Array;
  setState(i: number, which: number, values: Float32Array): void;
  getStep(): number;
  gradNorm(): number;
  setStep(step: number): void;
  setTokens(tokens: Int32Array, labels: Int32Array | null): void;
  setDocuments(positions: Int32Array, docs: Int32Array): void;
  setLabelCount(count: number): void;
  setLearningRate(lr: number): void;
  step(phases?: number): Promise<number>;
  stepSync(phases?: number): number;
  memory(): MemoryReport;
  timings(): Timing[];
  trace(): MeasuredInstr[];
  destroy(): void;
}

export interface NativeAddon {
  headerAbiVersion: number;
  abiVersion(): number;
  programName(): string;
  cudaProbe(device: number): void;
  /** Throws the one-line "library not found" message when it cannot be opened. */
  libraryProbe(name: "nccl" | "cublasLt"): void;
  ncclUniqueId(): Buffer;
  /** Joins on its own thread (ncclCommInitRank waits for every rank); resolves to the communicator. */
  ncclInit(id: Buffer, rank: number, world: number, device: number): Promise<NcclComm>;
  ncclDestroy(comm: NcclComm): void;
  localWorld(ranks: number): LocalWorld;
  stepAll(programs: NativeProgram[], phases?: number): Promise<number[]>;
  Program: new (config: string, rank: number, world: number, comm?: NcclComm | LocalWorld | null) => NativeProgram;
}

export interface LoadedAddon {
  path: string;
  native: NativeAddon;
  programName: string;
}

const require = createRequire(import.meta.url);

/** Native errors carry `code` (the fpdt_status name); keep it on a RuntimeError. */
function wrapNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toRuntimeError(e);
  }
}

/** A native Error as a RuntimeError that keeps its `code`; anything else as it is. */
export function toRuntimeError(e: unknown): unknown {
  if (e instanceof Error && !(e instanceof RuntimeError)) {
    const code = (e as Error & { code?: unknown }).code;
    return new RuntimeError(typeof code === "string" ? code : "NATIVE", e.message);
  }
  return e;
}

/** Loads the addon at `path` and checks that it speaks this runtime's ABI. */
export function loadAddon(path: string): LoadedAddon {
  const full = resolve(path);
  if (!existsSync(full)) throw runtimeErrors.addonMissing(path);
  let native: NativeAddon;
  try {
    native = require(full) as NativeAddon;
  } catch (e) {
    throw runtimeErrors.addonLoadFailed(path, e instanceof Error ? e.message : String(e));
  }
  const programAbi = native.abiVersion();
  if (programAbi !== ABI_VERSION || native.headerAbiVersion !== ABI_VERSION) {
    throw runtimeErrors.abiMismatch(path, programAbi, ABI_VERSION);
  }
  return { path: full, native, programName: native.programName() };
}

export interface CreateOptions {
  /** Run-time settings passed to fpdt_create as JSON. */
  config?: Record<string, unknown>;
  rank?: number;
  world?: number;
  /** Communicator of `world` ranks (ncclInit or localWorld); required when world > 1. */
  comm?: NcclComm | LocalWorld | null;
}

/** One rank's instance of a generated program. */
export class Program {
  private paramList: ParamInfo[] | undefined;

  private constructor(
    private readonly native: NativeProgram,
    readonly addon: LoadedAddon,
  ) {}

  /** Creates the program (allocates its memory on the GPU); throws RuntimeError. */
  static create(addon: LoadedAddon | string, options: CreateOptions = {}): Program {
    const loaded = typeof addon === "string" ? loadAddon(addon) : addon;
    const config = JSON.stringify(options.config ?? {});
    const native = wrapNative(() => new loaded.native.Program(config, options.rank ?? 0, options.world ?? 1, options.comm ?? null));
    return new Program(native, loaded);
  }

  /**
   * The `world` ranks of a program in this process, on GPU 0, with the local backend: each rank
   * its own memory and streams; collectives are device copies between them (see stepAll).
   */
  static createLocal(addon: LoadedAddon | string, world: number, options: Omit<CreateOptions, "rank" | "world" | "comm"> = {}): Program[] {
    const loaded = typeof addon === "string" ? loadAddon(addon) : addon;
    const comm = wrapNative(() => loaded.native.localWorld(world));
    const ranks: Program[] = [];
    try {
      for (let rank = 0; rank < world; rank++) ranks.push(Program.create(loaded, { ...options, rank, world, comm }));
    } catch (e) {
      for (const p of ranks) p.destroy();
      throw e;
    }
    return ranks;
  }

  /** One step of every rank of a local world, each driven by its own host thread; the losses in rank order. */
  static async stepAll(ranks: readonly Program[], phases: number = STEP_PHASES.whole): Promise<number[]> {
    if (ranks.length === 0) return [];
    try {
      return await wrapNative(() => ranks[0].addon.native.stepAll(ranks.map((p) => p.native), phases));
    } catch (e) {
      throw toRuntimeError(e);
    }
  }

  params(): ParamInfo[] {
    if (!this.paramList) {
      const count = wrapNative(() => this.native.paramCount());
      this.paramList = Array.from({ length: count }, (_, index) => ({ index, ...wrapNative(() => this.native.paramInfo(index)) }));
    }
    return this.paramList;
  }

  private indexOf(param: number | string): number {
    if (typeof param === "number") return param;
    const found = this.params().find((p) => p.name === param);
    if (!found) throw runtimeErrors.unknownParam(param, this.params().map((p) => p.name));
    return found.index;
  }

  /** Sets this rank's shard of a parameter (fp32, shardLength values). */
  setParam(param: number | string, values: Float32Array): void {
    const i = this.indexOf(param);
    wrapNative(() => this.native.setParam(i, values));
  }

  getParam(param: number | string): Float32Array {
    const i = this.indexOf(param);
    return wrapNative(() => this.native.getParam(i));
  }

  /** Gradient shard from the last step. */
  getGrad(param: number | string): Float32Array {
    const i = this.indexOf(param);
    return wrapNative(() => this.native.getGrad(i));
  }

  /** This rank's shard of one of AdamW's moments of a parameter. */
  getState(param: number | string, moment: Moment): Float32Array {
    const i = this.indexOf(param);
    return wrapNative(() => this.native.getState(i, MOMENT_INDEX[moment]));
  }

  setState(param: number | string, moment: Moment, values: Float32Array): void {
    const i = this.indexOf(param);
    wrapNative(() => this.native.setState(i, MOMENT_INDEX[moment], values));
  }

  /** The global gradient norm of the last step, before clipping (over every rank's shards). */
  gradNorm(): number {
    return wrapNative(() => this.native.gradNorm());
  }

  /** AdamW steps taken (its bias correction counts from them). */
  getStep(): number {
    return wrapNative(() => this.native.getStep());
  }

  setStep(step: number): void {
    wrapNative(() => this.native.setStep(step));
  }

  /** The whole global sequence; labels default to the next token. */
  setTokens(tokens: Int32Array, labels: Int32Array | null = null): void {
    wrapNative(() => this.native.setTokens(tokens, labels));
  }

  /** Packed documents: each token's position in its document and its document's id, laid out as setTokens' tokens. */
  setDocuments(positions: Int32Array, docs: Int32Array): void {
    wrapNative(() => this.native.setDocuments(positions, docs));
  }

  setLearningRate(lr: number): void {
    wrapNative(() => this.native.setLearningRate(lr));
  }

  /** What the next steps divide the loss and gradients by: the labels of all windows an optimizer step accumulates. */
  setLabelCount(count: number): void {
    wrapNative(() => this.native.setLabelCount(count));
  }

  /** Forward, backward and optimizer (or the `phases` of an accumulated step); resolves to the global mean loss (this window's share of it). */
  async step(phases: number = STEP_PHASES.whole): Promise<number> {
    try {
      return await wrapNative(() => this.native.step(phases));
    } catch (e) {
      throw toRuntimeError(e);
    }
  }

  memory(): MemoryReport {
    return wrapNative(() => this.native.memory());
  }

  timings(): Timing[] {
    return wrapNative(() => this.native.timings());
  }

  /** The last step's instructions one by one; empty unless created with config `{ trace: 1 }` (or FPDT_PROFILE=1). */
  trace(): MeasuredInstr[] {
    return wrapNative(() => this.native.trace());
  }

  destroy(): void {
    wrapNative(() => this.native.destroy());
  }
}
