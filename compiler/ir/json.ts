// Graph <-> JSON, for out/<model>/graph.json and for tools that read it.
//
// Shape of the document (every dimension is a string in the printer's syntax, e.g.
// "S", "Dh*Hq", "S/4"; everything else is as in types.ts):
//   {
//     "format": "fpdtc.graph", "version": 1,
//     "name": "llama70b",
//     "sizes": { "D": 8192, "S": 4194304, ... },
//     "config": { "seq": 4194304, "sp": 32, "chunk": 65536, ... },
//     "inputs": ["tokens", "labels"], "params": [...], "outputs": ["loss", ...],
//     "values": { "<id>": { "role": "param", "type": { "dtype": "bf16", "shape": ["V", "D"],
//                 "shard"?: {"kind": "seq", "ways": 4}, "place"?: "host", "slots"?: 2 },
//                 "name"?: "...", "init"?: {...} } },
//     "main": { "name": "main", "params": [], "results": ["loss"],
//               "nodes": [{ "id": "n0", "op": "embedding", "inputs": [...], "outputs": [...],
//                           "attrs": {...}, "body"?: <region>, "loc"?: "file:line:col" }] }
//   }
import { Dim } from './dim.js';
import type { Graph, Node, Region, TensorType, Value } from './types.js';

export const GRAPH_JSON_FORMAT = 'fpdtc.graph';
export const GRAPH_JSON_VERSION = 1;

export interface TensorTypeJson extends Omit<TensorType, 'shape'> {
  readonly shape: readonly string[];
}
export interface ValueJson extends Omit<Value, 'type' | 'id'> {
  readonly type: TensorTypeJson;
}
export interface GraphJson extends Omit<Graph, 'values'> {
  readonly format: typeof GRAPH_JSON_FORMAT;
  readonly version: number;
  readonly values: Readonly<Record<string, ValueJson>>;
}

const typeToJson = (t: TensorType): TensorTypeJson => ({ ...t, shape: t.shape.map(String) });
const typeFromJson = (t: TensorTypeJson): TensorType => ({ ...t, shape: t.shape.map((d) => Dim.parse(d)) });

export function graphToJson(g: Graph): GraphJson {
  const values: Record<string, ValueJson> = {};
  for (const [id, { id: _id, type, ...rest }] of Object.entries(g.values)) values[id] = { ...rest, type: typeToJson(type) };
  // Key order is fixed so that the file diffs well between compiles.
  return {
    format: GRAPH_JSON_FORMAT,
    version: GRAPH_JSON_VERSION,
    name: g.name,
    sizes: g.sizes,
    config: g.config,
    inputs: g.inputs,
    params: g.params,
    outputs: g.outputs,
    values,
    main: copyRegion(g.main),
  };
}

export function graphFromJson(doc: unknown): Graph {
  const j = doc as GraphJson;
  if (j?.format !== GRAPH_JSON_FORMAT) throw new Error(`not an fpdtc graph (format is ${JSON.stringify(j?.format)})`);
  if (j.version !== GRAPH_JSON_VERSION) throw new Error(`graph JSON version ${j.version} is not ${GRAPH_JSON_VERSION}`);
  const values: Record<string, Value> = {};
  for (const [id, v] of Object.entries(j.values)) values[id] = { id, ...v, type: typeFromJson(v.type) };
  return {
    name: j.name,
    sizes: j.sizes,
    values,
    inputs: j.inputs,
    params: j.params,
    main: copyRegion(j.main),
    outputs: j.outputs,
    config: j.config,
  };
}

// Regions hold only strings, numbers and nested regions, the same in both forms. Copying
// them with a fixed key order makes the text independent of how a pass built its objects,
// and the result shares nothing with its source.
function copyRegion(r: Region): Region {
  return { name: r.name, params: [...r.params], nodes: r.nodes.map(copyNode), results: [...r.results] };
}

function copyNode(n: Node): Node {
  return {
    id: n.id,
    op: n.op,
    inputs: [...n.inputs],
    outputs: [...n.outputs],
    attrs: { ...n.attrs },
    ...(n.body ? { body: copyRegion(n.body) } : {}),
    ...(n.loc ? { loc: n.loc } : {}),
  };
}

export const printGraphJson = (g: Graph): string => JSON.stringify(graphToJson(g), null, 1) + '\n';
