// One layer's dataflow for the page: the instructions of the first forward and the first
// backward layer loop with the buffers they read and write, laid out by dagre here so that the
// page only draws boxes and paths at the computed positions. Capped at MAX_NODES nodes (the
// instructions of each loop in program order until its share of the cap), and the data says
// when it was cut.
import dagre from '@dagrejs/dagre';
import { COLLECTIVE_OPS } from '../schedule/ops.js';
import type { Buffer, Schedule } from '../schedule/types.js';
import type { InstrInfo, LoopInfo, ProgramIndex } from './program-index.js';

export const MAX_NODES = 140;
const CHAR_W = 6.5;
const NODE_H = 30;

export interface FlowNode {
  readonly id: string;
  readonly kind: 'instr' | 'buffer';
  readonly label: string;
  /** instr: stream and the loops it repeats in; buffer: space, kind and slots */
  readonly detail: string;
  /** instr: stream; buffer: space */
  readonly group: string;
  readonly collective: boolean;
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

export interface FlowEdge {
  readonly from: string;
  readonly to: string;
  readonly points: readonly (readonly [number, number])[];
}

export interface DataflowData {
  readonly nodes: readonly FlowNode[];
  readonly edges: readonly FlowEdge[];
  readonly width: number;
  readonly height: number;
  /** instructions of the layer loops, and how many are drawn */
  readonly instrsTotal: number;
  readonly instrsDrawn: number;
  readonly maxNodes: number;
  readonly loops: readonly string[];
}


/** The first forward and the first backward layer loop that run (as `fpdtc inspect` lists them). */
function layerLoopIds(index: ProgramIndex): string[] {
  const layers = index.loops.filter((l) => l.role === 'layer' && l.trips > 0).sort((a, b) => a.first - b.first);
  return [layers.find((l) => !l.reverse), layers.find((l) => l.reverse)].filter((l) => l !== undefined).map((l) => l.id);
}

function bufferDetail(b: Buffer): string {
  const slots = b.slots > 1 ? `, ${b.slots} slots` : '';
  return `@${b.space} ${b.kind}${slots}`;
}

export function dataflowData(s: Schedule, index: ProgramIndex): DataflowData {
  const loopIds = layerLoopIds(index);
  const loops = new Map(index.loops.map((l) => [l.id, l]));
  const inLayer = index.instrs.filter((i) => i.loops.some((l) => loopIds.includes(l)));
  const bufs = new Map(s.buffers.map((b) => [b.id, b]));
  const chosen: InstrInfo[] = [];
  const bufNodes = new Set<string>();
  // each layer loop gets its share of the cap, so backward shows even when forward alone would fill it
  loopIds.forEach((loopId, k) => {
    const limit = Math.floor((MAX_NODES * (k + 1)) / loopIds.length);
    for (const i of inLayer.filter((x) => x.loops.includes(loopId))) {
      const touched = new Set([...i.instr.reads, ...i.instr.writes].map((r) => r.buf).filter((b) => !bufNodes.has(b)));
      if (chosen.length + bufNodes.size + 1 + touched.size > limit) break;
      chosen.push(i);
      touched.forEach((b) => bufNodes.add(b));
    }
  });
  const g = new dagre.graphlib.Graph<{ width?: number; height?: number }, { x: number; y: number; width: number; height: number }, { points?: { x: number; y: number }[] }>({ multigraph: false });
  g.setGraph({ rankdir: 'TB', nodesep: 14, ranksep: 28, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const meta = new Map<string, Omit<FlowNode, 'x' | 'y' | 'w' | 'h'>>();
  const addNode = (n: Omit<FlowNode, 'x' | 'y' | 'w' | 'h'>): void => {
    meta.set(n.id, n);
    g.setNode(n.id, { width: Math.max(n.label.length, n.detail.length) * CHAR_W + 16, height: NODE_H });
  };
  for (const b of bufNodes) {
    const buf = bufs.get(b);
    addNode({ id: `b:${b}`, kind: 'buffer', label: b, detail: buf ? bufferDetail(buf) : '', group: buf?.space ?? 'gpu', collective: false });
  }
  for (const i of chosen) {
    const repeats = i.loops.map((l) => loops.get(l)).filter((l): l is LoopInfo => l !== undefined && l.role !== 'layer').map((l) => `${l.role}×${l.trips}`);
    const detail = [i.instr.stream, ...repeats].join(' ');
    addNode({ id: `i:${i.instr.id}`, kind: 'instr', label: i.instr.op, detail, group: i.instr.stream, collective: COLLECTIVE_OPS.has(i.instr.op) });
    for (const r of i.instr.reads) g.setEdge(`b:${r.buf}`, `i:${i.instr.id}`);
    for (const w of i.instr.writes) g.setEdge(`i:${i.instr.id}`, `b:${w.buf}`);
  }
  dagre.layout(g);
  const round = (x: number): number => Math.round(x * 10) / 10;
  const nodes = g.nodes().map((id: string) => {
    const n = g.node(id);
    return { ...meta.get(id)!, x: round(n.x), y: round(n.y), w: round(n.width), h: round(n.height) };
  });
  const edges = g.edges().map((e: { v: string; w: string }) => ({ from: e.v, to: e.w, points: (g.edge(e).points ?? []).map((p: { x: number; y: number }) => [round(p.x), round(p.y)] as const) }));
  const graph = g.graph();
  return {
    nodes,
    edges,
    width: round(graph.width ?? 0),
    height: round(graph.height ?? 0),
    instrsTotal: inLayer.length,
    instrsDrawn: chosen.length,
    maxNodes: MAX_NODES,
    loops: loopIds,
  };
}
