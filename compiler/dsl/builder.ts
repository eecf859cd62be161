// Assembles the graph IR while a model file runs. Types are inferred as each op is
// added, so a shape mistake stops at the line of the model file that made it.
import { Dim, type DimLike } from '../ir/dim.js';
import { inferTypes, ShapeError } from '../ir/ops.js';
import type { Attrs, Node, ParamInit, Region, TensorType, Value, ValueRole } from '../ir/types.js';
import { errors } from '../errors.js';

/** A tensor in a model definition. Ops are free functions (`linear(x, w)`), see ops.ts. */
export class Tensor {
  constructor(
    readonly id: string,
    readonly type: TensorType,
    /** @internal */ readonly owner: GraphBuilder,
  ) {}
  get shape(): readonly Dim[] {
    return this.type.shape;
  }
  get dtype() {
    return this.type.dtype;
  }
  toString(): string {
    return `%${this.id}: ${this.type.dtype}[${this.type.shape.join(', ')}]`;
  }
}

interface OpenRegion {
  name: string;
  params: string[];
  nodes: Node[];
}

export interface ParamOptions {
  /** external (Hugging Face) tensor name; in a layer, `{i}` stands for the layer index */
  name?: string;
  init?: ParamInit;
  dtype?: 'bf16' | 'fp32';
}

/** Where in the user's model file the current op was written, from the call stack. */
export function callerLocation(): string | undefined {
  const stack = new Error().stack?.split('\n').slice(1) ?? [];
  for (const line of stack) {
    const m = /\(?((?:file:\/\/)?[^()\s]+):(\d+):(\d+)\)?\s*$/.exec(line);
    if (!m) continue;
    const file = m[1].replace(/^file:\/\//, '');
    if (/\/compiler\/dsl\//.test(file) || /node_modules|node:/.test(file)) continue;
    return `${file}:${m[2]}:${m[3]}`;
  }
  return undefined;
}

export class GraphBuilder {
  readonly values: Record<string, Value> = {};
  readonly inputs: string[] = [];
  readonly params: string[] = [];
  private readonly regions: OpenRegion[] = [{ name: 'main', params: [], nodes: [] }];
  private readonly taken = new Map<string, number>();

  constructor(readonly sizes: Readonly<Record<string, number>>) {}

  /** A fresh value id from a readable hint: `q`, `q.1`, `q.2`, ... */
  fresh(hint: string): string {
    const n = this.taken.get(hint);
    if (n === undefined && !this.values[hint]) {
      this.taken.set(hint, 0);
      return hint;
    }
    let k = (n ?? 0) + 1;
    while (this.values[`${hint}.${k}`]) k++;
    this.taken.set(hint, k);
    return `${hint}.${k}`;
  }

  declare(id: string, type: TensorType, role: ValueRole, extra: Partial<Value> = {}): Tensor {
    for (const d of type.shape) this.checkSize(d);
    this.values[id] = { id, type, role, ...extra };
    return new Tensor(id, type, this);
  }

  private checkSize(d: Dim): void {
    for (const s of Object.keys(d.syms)) if (this.sizes[s] === undefined) throw errors.shape(callerLocation(), `size '${s}' is not defined in the model's sizes`);
  }

  input(hint: string, shape: readonly DimLike[], dtype: 'int32' | 'bf16' = 'int32'): Tensor {
    const t = this.declare(this.fresh(hint), { dtype, shape: shape.map(Dim.of) }, 'input');
    this.inputs.push(t.id);
    return t;
  }

  param(hint: string, shape: readonly DimLike[], opts: ParamOptions = {}): Tensor {
    const t = this.declare(this.fresh(hint), { dtype: opts.dtype ?? 'bf16', shape: shape.map(Dim.of) }, 'param', {
      name: opts.name,
      init: opts.init ?? { kind: 'normal', std: 0.02 },
    });
    this.params.push(t.id);
    return t;
  }

  get current(): OpenRegion {
    return this.regions[this.regions.length - 1];
  }

  /** Adds one op; inputs must belong to the region being built. */
  emit(op: string, inputs: readonly Tensor[], attrs: Attrs = {}, hint: string = op): Tensor[] {
    const loc = callerLocation();
    for (const x of inputs) {
      if (!(x instanceof Tensor) || x.owner !== this) throw errors.shape(loc, `${op}: an input is not a tensor of this model`);
      if (!this.visible(x.id))
        throw errors.shape(loc, `${op}: %${x.id} is defined outside this layer; pass it in as a layer parameter (l.param) instead`);
    }
    let types: TensorType[];
    try {
      types = inferTypes(op, inputs.map((x) => x.type), attrs, this.sizes);
    } catch (e) {
      if (e instanceof ShapeError) throw errors.shape(loc, e.message);
      throw e;
    }
    const outs = types.map((t, i) => this.declare(this.fresh(i === 0 ? hint : `${hint}_${i}`), t, 'act'));
    this.current.nodes.push({
      id: `n${this.nodeCount++}`,
      op,
      inputs: inputs.map((x) => x.id),
      outputs: outs.map((o) => o.id),
      attrs,
      ...(loc ? { loc } : {}),
    });
    return outs;
  }
  private nodeCount = 0;

  private visible(id: string): boolean {
    const r = this.current;
    if (this.regions.length === 1) return !this.isInsideRegion(id);
    return r.params.includes(id) || r.nodes.some((n) => n.outputs.includes(id));
  }
  private readonly regionValues = new Set<string>();
  private isInsideRegion(id: string): boolean {
    return this.regionValues.has(id);
  }

  /**
   * One transformer layer written once and repeated `count` times. `body` receives the
   * carried activation and a layer scope whose `param` declares per-layer weights.
   */
  repeat(count: string, x: Tensor, body: (x: Tensor, layer: LayerScope) => Tensor, hint = 'layers'): Tensor {
    const countDim = Dim.parse(count);
    const loc = callerLocation();
    const open: OpenRegion = { name: hint, params: [], nodes: [] };
    const xin = this.declare(this.fresh('x'), x.type, 'act');
    open.params.push(xin.id);
    const stacked: string[] = [];
    this.regions.push(open);
    const scope: LayerScope = {
      index: count,
      param: (phint, shape, opts = {}) => {
        const full = this.declare(this.fresh(`${hint}.${phint}`), { dtype: opts.dtype ?? 'bf16', shape: [countDim, ...shape.map(Dim.of)] }, 'param', {
          name: opts.name,
          init: opts.init ?? { kind: 'normal', std: 0.02 },
        });
        this.params.push(full.id);
        stacked.push(full.id);
        const slice = this.declare(this.fresh(phint), { dtype: full.type.dtype, shape: full.type.shape.slice(1) }, 'param');
        open.params.push(slice.id);
        return slice;
      },
    };
    let y: Tensor;
    try {
      y = body(xin, scope);
    } finally {
      this.regions.pop();
    }
    if (!(y instanceof Tensor)) throw errors.shape(loc, `the layer body must return a tensor`);
    if (y.type.dtype !== x.type.dtype || y.shape.length !== x.shape.length || y.shape.some((d, i) => !d.equals(x.shape[i])))
      throw errors.shape(loc, `the layer body returns ${y} but takes ${x}; a repeated layer must keep its input's type`);
    for (const n of open.nodes) for (const o of n.outputs) this.regionValues.add(o);
    for (const p of open.params) this.regionValues.add(p);
    const region: Region = { name: hint, params: open.params, nodes: open.nodes, results: [y.id] };
    const out = this.declare(this.fresh(hint === 'layers' ? 'h' : hint), x.type, 'act');
    this.current.nodes.push({
      id: `n${this.nodeCount++}`,
      op: 'repeat',
      inputs: [x.id, ...stacked],
      outputs: [out.id],
      attrs: { count },
      body: region,
      ...(loc ? { loc } : {}),
    });
    return out;
  }

  mainRegion(results: readonly string[]): Region {
    const r = this.regions[0];
    return { name: 'main', params: [], nodes: r.nodes, results };
  }
}

export interface LayerScope {
  /** the symbolic layer count */
  readonly index: string;
  param(hint: string, shape: readonly DimLike[], opts?: ParamOptions): Tensor;
}
