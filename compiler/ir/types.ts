// The graph IR: immutable values and nodes in regions. A `repeat` node holds the
// body of one transformer layer once, however many layers the model has.
import { Dim } from './dim.js';

export type DType = 'bf16' | 'fp32' | 'int32';
export const DTYPE_BYTES: Record<DType, number> = { bf16: 2, fp32: 4, int32: 4 };

/** How a tensor is split over ranks: by sequence (Ulysses), by heads (inside attention), or ZeRO-3. */
export interface Shard {
  readonly kind: 'seq' | 'heads' | 'zero3';
  readonly ways: number;
}

export type Placement = 'gpu' | 'host';

/** A tensor type carries every decision the compiler makes about the tensor. */
export interface TensorType {
  readonly dtype: DType;
  readonly shape: readonly Dim[];
  readonly shard?: Shard;
  readonly place?: Placement;
  /** number of rotating buffer slots when streamed (2 = double buffer) */
  readonly slots?: number;
}

export type ValueRole = 'input' | 'param' | 'act' | 'grad' | 'state';

export interface Value {
  readonly id: string;
  readonly type: TensorType;
  readonly role: ValueRole;
  /** external name, e.g. the Hugging Face tensor name of a parameter; `{i}` stands for the layer */
  readonly name?: string;
  /** how a parameter is initialised when no weights are loaded */
  readonly init?: ParamInit;
}

export type ParamInit = { readonly kind: 'normal'; readonly std: number } | { readonly kind: 'ones' } | { readonly kind: 'zeros' };

/**
 * RoPE frequency scaling, the `scaling` attr of `rope` and `rope_bwd` (Llama 3.1's
 * `rope_type: llama3`): long wavelengths are slowed by `factor`, short ones kept, and the band
 * between `originalMaxPositions/highFreqFactor` and `originalMaxPositions/lowFreqFactor` blended.
 */
export interface RopeScaling {
  readonly type: 'llama3';
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  readonly originalMaxPositions: number;
}

export type AttrValue = number | string | boolean | readonly number[] | readonly string[] | RopeScaling;
export type Attrs = Readonly<Record<string, AttrValue>>;

export interface Node {
  readonly id: string;
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Attrs;
  /** the body of a region op (`repeat`, `repeat_bwd`) */
  readonly body?: Region;
  /** where the user wrote it, `file:line:col`, for errors */
  readonly loc?: string;
}

export interface Region {
  readonly name: string;
  /** values bound on entry: for a layer body, the carried activation then the per-layer parameter slices */
  readonly params: readonly string[];
  readonly nodes: readonly Node[];
  readonly results: readonly string[];
}

export type Checkpoint = 'off' | 'gpu' | 'host';

/** The training configuration; a model file gives defaults, CLI flags override them. */
export interface TrainConfig {
  readonly seq: number;
  readonly sp: number;
  /** data-parallel groups of `sp` ranks, each training its own sequence (absent: 1); rank r = group * sp + position */
  readonly dp?: number;
  readonly chunk: number | 'auto';
  readonly offload: boolean;
  readonly checkpoint: Checkpoint;
  readonly zero: 0 | 3;
  readonly fpdt: boolean;
  readonly device: string;
  readonly hostMemGiB?: number;
  /** layers that keep attention for backward instead of recomputing it: a number, or the planner's choice */
  readonly keepAttention?: number | 'auto';
  /** what kept layers keep: all of q, k, v, o, lse, or the outputs o, lse (their backward recomputes q, k, v) */
  readonly keepForm?: 'all' | 'outputs';
  /** with checkpoints on the host: the last layers that keep theirs on the GPU (a number, or the planner's choice: none where the host holds all) */
  readonly gpuCheckpoints?: number | 'auto';
  /** layers that keep on the GPU the GEMM outputs their backward would recompute: a number, or the planner's choice */
  readonly keepActivations?: number | 'auto';
  /** with offload, where a layer's working stashes (its chunks of q, k, v, dO, o, lse, the dq partials) go: the planner's choice when absent */
  readonly stashes?: 'host' | 'gpu';
  /** where the fp32 AdamW states (master weights, moments) live; host streams them through the GPU */
  readonly optimizer?: 'gpu' | 'host';
  /**
   * packed documents (absent: off): the step takes per-token document-relative RoPE positions and
   * document ids beside tokens and labels, and attention masks pairs of different documents
   * (lower/packed.ts)
   */
  readonly packed?: boolean;
  readonly lr: number;
  readonly seed: number;
}

export interface Graph {
  readonly name: string;
  /** bindings of every symbolic size (S, D, L, ...) */
  readonly sizes: Readonly<Record<string, number>>;
  readonly values: Readonly<Record<string, Value>>;
  readonly inputs: readonly string[];
  readonly params: readonly string[];
  readonly main: Region;
  /** loss first; after autodiff, one gradient per parameter in `params` order */
  readonly outputs: readonly string[];
  readonly config: TrainConfig;
}

export const numel = (t: TensorType, sizes: Readonly<Record<string, number>>): number =>
  t.shape.reduce((n, d) => n * d.eval(sizes), 1);

export const bytesOf = (t: TensorType, sizes: Readonly<Record<string, number>>): number =>
  numel(t, sizes) * DTYPE_BYTES[t.dtype];

export function tensor(dtype: DType, shape: readonly (Dim | number | string)[], extra: Partial<TensorType> = {}): TensorType {
  return { dtype, shape: shape.map((d) => Dim.of(d)), ...extra };
}

/** Walks every node, region bodies included, depth first. */
export function* allNodes(r: Region): Generator<Node> {
  for (const n of r.nodes) {
    yield n;
    if (n.body) yield* allNodes(n.body);
  }
}
