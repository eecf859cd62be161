// What a compiled model computes beyond its sizes and parameter table, as schedule.json carries
// it (field `architecture`): the graph's ops, the settings of its RoPE and norm ops, and whether
// the LM head is the embedding. `fpdtc run` checks a weights folder's config.json against it and
// writes one from it (train/hf-config.ts), so the schedule is all a run reads about the model.
// Computed at compile time from the graph that graph.json also prints.

/** Llama 3.1 frequency scaling, spelled as the model DSL and the graph's rope attr spell it. */
export interface LlamaRopeScaling {
  readonly type: 'llama3';
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  readonly originalMaxPositions: number;
}

export interface Architecture {
  /** distinct ops of the graph, in first-use order */
  readonly ops: readonly string[];
  /** distinct values over every rope op (null: no frequency scaling) */
  readonly ropeThetas: readonly number[];
  readonly rotaryDims: readonly number[];
  readonly ropeScalings: readonly (LlamaRopeScaling | null)[];
  /** distinct eps over every rmsnorm op */
  readonly normEps: readonly number[];
  /** no lm_head.weight: the LM head is the embedding */
  readonly tied: boolean;
}

/** The parts of a graph (ir/types.ts, or its graph.json form) the architecture comes from. */
export interface GraphShape {
  readonly values: Readonly<Record<string, { readonly name?: string }>>;
  readonly params: readonly string[];
  readonly main: RegionShape;
}
interface RegionShape {
  readonly nodes: readonly { readonly op: string; readonly attrs?: Readonly<Record<string, unknown>>; readonly body?: RegionShape }[];
}

const distinct = <T>(xs: T[]): T[] => {
  const seen = new Map<string, T>();
  for (const x of xs) seen.set(JSON.stringify(x) ?? 'undefined', x);
  return [...seen.values()];
};

/** The architecture of a graph: every node of every region walked once. */
export function architectureOf(graph: GraphShape): Architecture {
  const nodes: { op: string; attrs: Readonly<Record<string, unknown>> }[] = [];
  const walk = (r: RegionShape) => {
    for (const n of r.nodes) {
      nodes.push({ op: n.op, attrs: n.attrs ?? {} });
      if (n.body) walk(n.body);
    }
  };
  walk(graph.main);
  const ropes = nodes.filter((n) => n.op === 'rope');
  const names = graph.params.map((id) => graph.values[id]?.name ?? id);
  return {
    ops: distinct(nodes.map((n) => n.op)),
    ropeThetas: distinct(ropes.map((n) => n.attrs.theta as number)),
    rotaryDims: distinct(ropes.map((n) => n.attrs.rotaryDim as number)),
    ropeScalings: distinct(ropes.map((n) => (n.attrs.scaling as LlamaRopeScaling | undefined) ?? null)),
    normEps: distinct(nodes.filter((n) => n.op === 'rmsnorm').map((n) => n.attrs.eps as number)),
    tied: !names.includes('lm_head.weight'),
  };
}
