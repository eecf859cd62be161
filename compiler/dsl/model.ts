// A model: its sizes, its default training run, and a forward function that the DSL
// turns into a graph once the sequence length is known.
import type { TrainDefaults } from '../config.js';
import { errors } from '../errors.js';
import type { DimLike } from '../ir/dim.js';
import type { Graph, TrainConfig } from '../ir/types.js';
import { GraphBuilder, Tensor, type LayerScope, type ParamOptions } from './builder.js';

export interface ModelScope {
  /** int32[S] token ids */
  readonly tokens: Tensor;
  /** int32[S] next-token labels, -1 where ignored */
  readonly labels: Tensor;
  readonly sizes: Readonly<Record<string, number>>;
  param(hint: string, shape: readonly DimLike[], opts?: ParamOptions): Tensor;
  /** A layer written once and repeated `count` times (count is a size name, e.g. 'L'). */
  layers(count: string, x: Tensor, body: (x: Tensor, layer: LayerScope) => Tensor): Tensor;
}

export interface ModelDefinition {
  name: string;
  /** every size the model uses except S (the sequence length, from the training config) */
  sizes: Record<string, number>;
  train?: TrainDefaults;
  /** builds the forward pass and returns the scalar loss */
  forward(m: ModelScope): Tensor;
}

const BRAND = Symbol.for('fpdtc.model');

export class Model {
  readonly [BRAND] = true;
  constructor(readonly def: ModelDefinition) {}
  get name(): string {
    return this.def.name;
  }

  build(config: TrainConfig): Graph {
    const sizes = { ...this.def.sizes, S: config.seq };
    const g = new GraphBuilder(sizes);
    const tokens = g.input('tokens', ['S']);
    const labels = g.input('labels', ['S']);
    const scope: ModelScope = {
      tokens,
      labels,
      sizes,
      param: (hint, shape, opts) => g.param(hint, shape, opts),
      layers: (count, x, body) => g.repeat(count, x, body),
    };
    const loss = this.def.forward(scope);
    if (!(loss instanceof Tensor) || loss.shape.length !== 0) throw errors.shape(undefined, `forward() must return the scalar loss (crossEntropy(...)), got ${String(loss)}`);
    return {
      name: this.def.name,
      sizes,
      values: g.values,
      inputs: g.inputs,
      params: g.params,
      main: g.mainRegion([loss.id]),
      outputs: [loss.id],
      config,
    };
  }
}

export function defineModel(def: ModelDefinition): Model {
  return new Model(def);
}

export function isModel(x: unknown): x is Model {
  return typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[BRAND] === true;
}
