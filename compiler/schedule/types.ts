// The schedule IR: one rank's program for one training step. Every rank runs the same
// program; what differs by rank is the value of the variable `r` in offsets.
//
// With data parallelism (dp > 1) the world is dp groups of sp ranks, rank = group * sp + `r`:
// `r` is always the rank's position in its sequence-parallel group, so a group's program is
// the same whichever group runs it. A collective with `span: 'sp'` runs inside each group (the
// Ulysses all-to-alls), one with `span: 'world'` over every rank (ZeRO-3, the loss); a schedule
// with dp = 1 has no `span` (its group is the world).
//
// A program is a list of items in host issue order: instructions (each on one stream),
// event records and waits, and loops that stay loops (layers, chunks, kv blocks). Streams
// run their items in order; `wait E` on a stream orders everything after it behind the most
// recent `record E` issued before it in program order (CUDA semantics); a wait with no
// record before it is a no-op. Nothing else orders two streams.
//
// A step has three phases (`phases`): `zero` clears the gradient shards, `micro` runs forward,
// backward and the gradient reduction added into the shards, `update` clips and applies AdamW.
// With gradient accumulation an optimizer step runs zero once, micro once per sequence window
// (K times), then update; without, one of each. Whoever runs the program joins every stream
// between phases it runs apart, so a phase never waits for an event of a phase it skipped.
import type { DType, TrainConfig } from '../ir/types.js';
import type { OpName } from './ops.js';

export const STREAMS = ['compute', 'h2d', 'd2h', 'comm'] as const;
export type StreamName = (typeof STREAMS)[number];

/** `c + Σ t[v]·v` over loop variables (and `r`, the rank). */
export interface Affine {
  readonly c: number;
  readonly t: Readonly<Record<string, number>>;
}

export type BufferKind =
  | 'param' // this rank's parameter shard (bf16)
  | 'gathered' // full parameters of a layer, gathered for use
  | 'grad' // gradient accumulator or shard (fp32)
  | 'optim' // fp32 master weights and AdamW moments
  | 'ckpt' // layer-input checkpoints
  | 'stash' // attention tensors kept for backward (q, k, v, o, lse, do, dq)
  | 'act' // activations of the whole local sequence for one layer
  | 'chunk' // working buffers for one chunk
  | 'attn' // attention's working buffers on the GPU: heads-layout chunks, rotating slots, accumulators
  | 'io'; // tokens, labels, loss

export interface Buffer {
  readonly id: string;
  readonly space: 'gpu' | 'host';
  readonly dtype: DType;
  /** elements per slot */
  readonly elems: number;
  /** rotating slots (2 = double buffer) */
  readonly slots: number;
  readonly kind: BufferKind;
  /** the graph value it holds, when it holds one */
  readonly value?: string;
  /** logical shape of one slot, for people and for codegen */
  readonly shape: readonly number[];
}

/** A window of a buffer: `len` elements from element `off`, in slot `slot mod slots`. */
export interface Ref {
  readonly buf: string;
  readonly off: Affine;
  readonly len: number;
  readonly slot?: Affine;
}

export interface Instr {
  readonly kind: 'instr';
  readonly id: string;
  readonly stream: StreamName;
  /** kernel, transfer or collective: an op of the catalog (ops.ts), which names the operands */
  readonly op: OpName;
  /** operands in the catalog's order; read them by name (ops.ts: readsOf, writesOf) */
  readonly reads: readonly Ref[];
  readonly writes: readonly Ref[];
  /** sizes and flags the kernel needs; plain data */
  readonly attrs: Readonly<Record<string, number | string | boolean | readonly number[]>>;
  /** integer arguments that vary by iteration or rank (a chunk's first position, a head offset) */
  readonly args?: Readonly<Record<string, Affine>>;
  /** floating-point operations and bytes moved, for the cost model */
  readonly flops: number;
  readonly bytes: number;
}

export interface EventOp {
  readonly kind: 'record' | 'wait';
  readonly id: string;
  readonly stream: StreamName;
  readonly event: string;
  /** index into an event array (e.g. one event per buffer slot) */
  readonly index?: Affine;
}

export interface Loop {
  readonly kind: 'loop';
  readonly id: string;
  readonly var: string;
  readonly from: Affine;
  /** exclusive */
  readonly to: Affine;
  readonly role: 'layer' | 'chunk' | 'kv' | 'q';
  readonly body: readonly Item[];
  /** iterate from `to - 1` down to `from` */
  readonly reverse?: boolean;
}

export type Item = Instr | EventOp | Loop;

/**
 * One parameter tensor and its window of the flat parameter vectors. Parameters, gradients and
 * AdamW states (`params.*`, `grads.*`, `optim.*.*`) hold the same vectors: `layers` is one
 * vector of `layerElems` per layer, layer l at l * layerElems, each layer's tensors
 * concatenated; `global` is one vector of `globalElems`. Under ZeRO-3 each rank holds
 * 1/`ranks` of every such vector (its shard), else the whole.
 */
export interface ParamTensor {
  /** the graph value (the reference executor keys tensors by it) */
  readonly value: string;
  /** the Hugging Face name; a layer tensor's has `{i}` where the layer index goes */
  readonly name: string;
  /** the whole, unsharded shape: of one layer's tensor for part `layers` */
  readonly shape: readonly number[];
  readonly part: 'layers' | 'global';
  /** elements from the start of one layer's vector (or of the global vector), and how many */
  readonly offset: number;
  readonly len: number;
  /** how the program initialises it when no weights are loaded (std 0 unless normal) */
  readonly init: { readonly kind: 'normal' | 'ones' | 'zeros'; readonly std: number };
}

/** The parameter table: filled by lowering, read by codegen, the reference executor and `run`. */
export interface ParamTable {
  /** layer tensors in layer-body order, then the global ones */
  readonly tensors: readonly ParamTensor[];
  /** elements of one layer's vector and of the global vector, each padded to a multiple of `ranks` */
  readonly layerElems: number;
  readonly globalElems: number;
  readonly zero3: boolean;
  /** ranks the ZeRO-3 shards and the gradient sums span: the world */
  readonly ranks: number;
}

/**
 * Where the phases begin: the ids of the first top-level items of the micro step and of the
 * update (`zero` is everything before `micro`). Events the sync pass puts before such an item
 * belong to the phase before it. A buffer that two phases touch is of a kind the memory plan
 * keeps for the whole step (schedule/phases.ts checks it).
 */
export interface StepPhases {
  readonly micro: string;
  readonly update: string;
}

export const PHASES = ['zero', 'micro', 'update'] as const;
export type PhaseName = (typeof PHASES)[number];

/**
 * Packed documents: an instruction with this attribute (true) runs only when the query chunk
 * `args.docsQ` and the key chunk `args.docsKv` of its sequence hold a document in common, which
 * whoever runs the step knows from the step's document ids before it issues it; otherwise it is
 * skipped and its events are still recorded (lower/packed.ts).
 */
export const DOCUMENTS_MEET = 'ifDocumentsMeet';

/** Buffer ids of the packed-document inputs (lower/packed.ts) that whoever runs a step fills. */
export const PACKED_BUFFERS = { positions: 'io.positions', docs: 'io.docs', docsSeq: 'io.docs_seq' } as const;

export interface Schedule {
  readonly model: string;
  readonly config: TrainConfig;
  /** every rank: dp groups of sp (ZeRO-3 shards over all of them) */
  readonly world: number;
  /** global tokens per chunk and chunks per sequence */
  readonly chunk: number;
  readonly chunks: number;
  readonly layers: number;
  readonly buffers: readonly Buffer[];
  /** event arrays: name -> length */
  readonly events: Readonly<Record<string, number>>;
  readonly body: readonly Item[];
  /** sizes of the model (D, Hq, ...) */
  readonly sizes: Readonly<Record<string, number>>;
  /** the last layers that keep their attention tensors for backward instead of recomputing them */
  readonly keptLayers?: number;
  /** what they keep: all of q, k, v, o, lse, or the outputs o and lse (q, k, v recomputed by their projections) */
  readonly keptForm?: 'all' | 'outputs';
  /** with checkpoints on the host, the last layers that keep theirs on the GPU (ckpt.gpu) */
  readonly gpuCheckpointLayers?: number;
  /** the last layers that keep on the GPU the GEMM outputs their backward would recompute */
  readonly keptActivationLayers?: number;
  /** with offload, the layers' working stashes are on the GPU (what grows with the layers stays on the host) */
  readonly gpuStashes?: boolean;
  /** every parameter tensor and its place; lowering always fills it (hand-made test schedules may not) */
  readonly params?: ParamTable;
  /** where the zero, micro and update phases begin; lowering always fills it (hand-made test schedules may not) */
  readonly phases?: StepPhases;
}

/** Which ranks a collective spans, when the schedule has dp > 1 groups (attr `span`). */
export type CollectiveSpan = 'sp' | 'world';

/** Sequence-parallel ranks of a group, and groups (dp). */
export const groupsOf = (s: Pick<Schedule, 'config'>): { sp: number; dp: number } => ({ sp: s.config.sp, dp: s.config.dp ?? 1 });

/** The value of `r` on a rank: its position in its sequence-parallel group. */
export const groupPosition = (s: Pick<Schedule, 'config'>, rank: number): number => rank % s.config.sp;

// ---- affine helpers ----
export const aff = (c: number, t: Record<string, number> = {}): Affine => ({ c, t });
export const v = (name: string, coef = 1, c = 0): Affine => ({ c, t: { [name]: coef } });
export function addAff(a: Affine, b: Affine | number): Affine {
  const bb = typeof b === 'number' ? aff(b) : b;
  const t: Record<string, number> = { ...a.t };
  for (const [k, x] of Object.entries(bb.t)) t[k] = (t[k] ?? 0) + x;
  return { c: a.c + bb.c, t };
}
export function scaleAff(a: Affine, k: number): Affine {
  const t: Record<string, number> = {};
  for (const [n, x] of Object.entries(a.t)) t[n] = x * k;
  return { c: a.c * k, t };
}
const termLists = new WeakMap<Affine, [readonly string[], readonly number[]]>();
/** Value of an affine expression; evaluated millions of times per compile, so its terms are cached as arrays. */
export function evalAff(a: Affine, env: Readonly<Record<string, number>>): number {
  let terms = termLists.get(a);
  if (!terms) {
    terms = [Object.keys(a.t), Object.values(a.t)];
    termLists.set(a, terms);
  }
  const [names, coefs] = terms;
  let s = a.c;
  for (let i = 0; i < names.length; i++) {
    const val = env[names[i]];
    if (val === undefined) throw new Error(`unbound loop variable '${names[i]}'`);
    s += coefs[i] * val;
  }
  return s;
}
export function printAff(a: Affine): string {
  const parts: string[] = [];
  for (const [k, x] of Object.entries(a.t)) if (x !== 0) parts.push(x === 1 ? k : `${x}*${k}`);
  if (a.c !== 0 || parts.length === 0) parts.push(String(a.c));
  return parts.join('+').replace(/\+-/g, '-');
}
