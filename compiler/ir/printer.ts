// Text form of the graph IR. Every decision the compiler makes about a tensor
// (sharding, placement, buffer slots) shows on the line that defines it.
import type { Attrs, AttrValue, Graph, Node, Region, RopeScaling, TensorType, Value } from './types.js';

export function printType(t: TensorType): string {
  const notes: string[] = [];
  if (t.shard) notes.push(`${t.shard.kind}/${t.shard.ways}`);
  if (t.place) notes.push(`@${t.place}`);
  if (t.slots) notes.push(`slots=${t.slots}`);
  return `${t.dtype}[${t.shape.join(', ')}]${notes.length ? ` {${notes.join(' ')}}` : ''}`;
}

/** `llama3(factor,lowFreqFactor,highFreqFactor,originalMaxPositions)`, as short as the line it sits on. */
export function printRopeScaling(s: RopeScaling): string {
  return `${s.type}(${s.factor},${s.lowFreqFactor},${s.highFreqFactor},${s.originalMaxPositions})`;
}

function printAttr(v: AttrValue): string {
  if (Array.isArray(v)) return `[${v.join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object') return printRopeScaling(v as RopeScaling);
  return String(v);
}

function printAttrs(a: Attrs): string {
  const keys = Object.keys(a).sort();
  if (keys.length === 0) return '';
  const parts = keys.map((k) => `${k}=${printAttr(a[k])}`);
  return ` {${parts.join(', ')}}`;
}

function printNode(g: Graph, n: Node, indent: string, out: string[]): void {
  const types = n.outputs.map((o) => printType(g.values[o].type)).join(', ');
  const lhs = n.outputs.map((o) => `%${o}`).join(', ');
  const call = `${n.op}(${n.inputs.map((i) => `%${i}`).join(', ')})${printAttrs(n.attrs)}`;
  if (!n.body) {
    out.push(`${indent}${lhs} = ${call} : ${types}`);
    return;
  }
  out.push(`${indent}${lhs} = ${call} : ${types} {`);
  printRegion(g, n.body, indent + '  ', out);
  out.push(`${indent}}`);
}

function printRegion(g: Graph, r: Region, indent: string, out: string[]): void {
  const params = r.params.map((p) => `%${p}: ${printType(g.values[p].type)}`);
  out.push(`${indent}^${r.name}(${params.join(', ')})`);
  for (const n of r.nodes) printNode(g, n, indent, out);
  out.push(`${indent}yield ${r.results.map((x) => `%${x}`).join(', ')}`);
}

function printDecl(v: Value): string {
  return `  ${v.role} %${v.id}: ${printType(v.type)}${v.name ? `  "${v.name}"` : ''}`;
}

export function printGraph(g: Graph): string {
  const out: string[] = [];
  const sizes = Object.entries(g.sizes).map(([k, v]) => `${k}=${v}`).join(' ');
  out.push(`graph ${g.name} {${sizes}}`);
  for (const id of g.inputs) out.push(printDecl(g.values[id]));
  for (const id of g.params) out.push(printDecl(g.values[id]));
  printRegion(g, g.main, '  ', out);
  out.push(`  outputs ${g.outputs.map((o) => `%${o}`).join(', ')}`);
  return out.join('\n') + '\n';
}
