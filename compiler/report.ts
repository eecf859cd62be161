// report.json: what a compile decided and what a step costs. Each stage contributes its
// own fields through `extras` (the pipeline its pass names, later the schedule, the memory
// plan, the cost model), so this module stays the one place that knows the base fields.
import type { Graph, TrainConfig } from './ir/types.js';
import { numel } from './ir/types.js';

export interface BaseReport {
  model: string;
  /** trainable parameters, all layers */
  params: number;
  /** tokens per step (the global sequence length) */
  tokens: number;
  layers: number;
  hidden: number;
  /** 6*params*tokens + 6*layers*tokens^2*hidden; see `flops_convention` */
  flops_per_step: number;
  flops_convention: string;
  config: TrainConfig;
}

export type Report = BaseReport & Record<string, unknown>;

export const FLOPS_CONVENTION =
  'model FLOPs per step = 6*params*tokens + 6*layers*S^2*hidden (causal attention, forward and backward, no recomputation counted)';

export function countParams(g: Graph): number {
  return g.params.reduce((n, id) => n + numel(g.values[id].type, g.sizes), 0);
}

/** The MFU convention of the project: the same formula everywhere a FLOP count is quoted. */
export function modelFlopsPerStep(params: number, tokens: number, layers: number, hidden: number): number {
  return 6 * params * tokens + 6 * layers * tokens * tokens * hidden;
}

export function buildReport(g: Graph, extras: Record<string, unknown> = {}): Report {
  const params = countParams(g);
  const tokens = g.config.seq;
  const layers = g.sizes.L ?? 0;
  const hidden = g.sizes.D ?? 0;
  const base: BaseReport = {
    model: g.name,
    params,
    tokens,
    layers,
    hidden,
    flops_per_step: modelFlopsPerStep(params, tokens, layers, hidden),
    flops_convention: FLOPS_CONVENTION,
    config: g.config,
  };
  return { ...base, ...extras };
}
