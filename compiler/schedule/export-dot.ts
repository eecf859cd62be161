// schedule.dot (Graphviz) for one window of the program (one layer, a couple of chunks):
// one cluster per stream holding its instructions in order, solid edges for stream order,
// dashed edges from the instruction a `record` follows to the first instruction after the
// matching `wait`. The whole step would be millions of nodes; a window shows the pattern.
import { STREAMS, type StreamName } from './types.js';
import type { Schedule } from './types.js';
import { unroll, type UnrollOptions } from './unroll.js';

export interface DotOptions {
  readonly window?: UnrollOptions['window'];
  readonly rank?: number;
  /** stop after this many instructions (default 400) */
  readonly maxNodes?: number;
}

export const DEFAULT_DOT_WINDOW = { layer: 1, chunk: 2, kv: 2, q: 2 } as const;

const COLORS: Record<StreamName, string> = { compute: '#4e79a7', h2d: '#59a14f', d2h: '#f28e2b', comm: '#b07aa1' };
const quote = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

export function scheduleToDot(s: Schedule, opts: DotOptions = {}): string {
  const maxNodes = opts.maxNodes ?? 400;
  const nodes: Record<StreamName, string[]> = { compute: [], h2d: [], d2h: [], comm: [] };
  const edges: string[] = [];
  const lastOn: Partial<Record<StreamName, string>> = {};
  const recorded = new Map<string, string>(); // event key -> node the record follows
  const pending: Record<StreamName, { from: string; key: string }[]> = { compute: [], h2d: [], d2h: [], comm: [] };
  let count = 0;
  for (const d of unroll(s, { rank: opts.rank, window: opts.window ?? DEFAULT_DOT_WINDOW })) {
    const st = d.item.stream;
    if (d.kind !== 'instr') {
      const from = d.kind === 'record' ? lastOn[st] : recorded.get(d.key);
      if (d.kind === 'wait') {
        if (from) pending[st].push({ from, key: d.key });
      } else if (from) recorded.set(d.key, from);
      else recorded.delete(d.key);
      continue;
    }
    if (count >= maxNodes) break;
    const id = `n${d.seq}`;
    const where = Object.entries(d.env)
      .filter(([k]) => k !== 'r')
      .map(([k, x]) => `${k}=${x}`)
      .join(' ');
    nodes[st].push(`    ${id} [label=${quote(`${d.item.op}\n${d.item.id}${where ? `\n${where}` : ''}`)}];`);
    const prev = lastOn[st];
    if (prev) edges.push(`  ${prev} -> ${id} [color=${quote(COLORS[st])}];`);
    for (const p of pending[st]) if (p.from !== prev) edges.push(`  ${p.from} -> ${id} [style=dashed, label=${quote(p.key)}, fontsize=9];`);
    pending[st] = [];
    lastOn[st] = id;
    count++;
  }
  const out = [`digraph ${quote(s.model)} {`, '  rankdir=LR;', '  node [shape=box, style="rounded,filled", fillcolor=white, fontsize=10];'];
  for (const st of STREAMS) {
    if (nodes[st].length === 0) continue;
    out.push(`  subgraph cluster_${st} {`, `    label=${quote(st)}; color=${quote(COLORS[st])};`, ...nodes[st], '  }');
  }
  out.push(...edges, '}');
  return out.join('\n') + '\n';
}
