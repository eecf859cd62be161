// Renders the host program of one rank (program.cu) and its small kernels (host_kernels.cu)
// from the schedule: its program, its memory plan and its parameter table. Everything the template
// needs is decided here and passed as plain data (STYLE.md 7).
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';
import { groupsOf, PACKED_BUFFERS, PHASES, type Item, type Schedule } from '../schedule/types.js';
import { arenasOf, RANK_C, RANK_IN_GROUP_C } from './host-c.js';
import { phaseBodies } from '../schedule/phases.js';
import { bodyC, eventLayout, pairLossInstrs, profileOps, tracedInstrs } from './host-body.js';
import { hostParams, paramTableOf } from './host-params.js';
import type { PlannedMemory } from './planned.js';
import { normRows } from './host-spec.js';
import type { RenderedKernel } from './kernels.js';

const templateDir = fileURLToPath(new URL('../../codegen-templates/host/', import.meta.url));
const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(templateDir), { autoescape: false, throwOnUndefined: true });

/**
 * Static files of the program, copied beside it. The runtime's contract headers (fpdt_abi.h,
 * fpdt_comm.h) are not among them: the build includes them from runtime/include.
 */
export const HOST_STATIC_FILES = ['program_util.cuh', 'fpdt_host_kernels.h', 'program_comm.cuh', 'comm_kernels.cu'];

/** A C float literal (`1f` is not one). */
export const floatC = (x: number): string => `${Number.isInteger(x) ? x.toFixed(1) : String(x)}f`;

export interface HostProgramInput {
  readonly schedule: Schedule;
  readonly plan: PlannedMemory;
}

function bytesOf(plan: PlannedMemory, buf: string): number {
  const p = plan.placements.find((x) => x.buf === buf);
  if (!p) throw new Error(`host codegen: buffer ${buf} is not in the memory plan`);
  return p.size;
}

function offsetOf(plan: PlannedMemory, buf: string): number {
  const p = plan.placements.find((x) => x.buf === buf);
  if (!p) throw new Error(`host codegen: buffer ${buf} is not in the memory plan`);
  return p.offset;
}

/** AdamW's betas, eps and weight decay as the schedule's updates carry them: the program's defaults. */
function adamwDefaults(items: readonly Item[]): Record<'beta1' | 'beta2' | 'eps' | 'weightDecay' | 'maxGradNorm', string> {
  const find = (list: readonly Item[]): Item | undefined => {
    for (const it of list) {
      const hit = it.kind === 'loop' ? find(it.body) : it.kind === 'instr' && it.op === 'adamw' ? it : undefined;
      if (hit) return hit;
    }
    return undefined;
  };
  const update = find(items);
  if (!update || update.kind !== 'instr') throw new Error('host codegen: the schedule has no adamw update');
  const attr = (k: string) => {
    const x = update.attrs?.[k];
    if (typeof x !== 'number') throw new Error(`host codegen: the adamw update has no numeric ${k}`);
    return floatC(x);
  };
  return { beta1: attr('beta1'), beta2: attr('beta2'), eps: attr('eps'), weightDecay: attr('weightDecay'), maxGradNorm: attr('maxGradNorm') };
}

export function renderHostProgram({ schedule: s, plan }: HostProgramInput): RenderedKernel[] {
  // with dp groups the world is dp * sp ranks and `r` is a rank's place in its group
  const { sp, dp } = groupsOf(s);
  const ar = arenasOf(s.buffers, plan, dp > 1 ? RANK_IN_GROUP_C : RANK_C);
  const ev = eventLayout(s.events);
  const profOps = profileOps(s.body);
  const traced = tracedInstrs(s.body);
  const traceIndex = new Map(traced.map((it, i) => [it, i]));
  const ctx = { schedule: s, ar, eventBase: ev.base, loss: pairLossInstrs(s.body, new Map(), ar), profOps, traceIndex };
  // each phase its own function, so that fpdt_step_phases can issue zero, micro and update apart
  const bodies = phaseBodies(s);
  const phases = Object.fromEntries(PHASES.map((ph) => [ph, bodyC(ctx, bodies[ph]).join('\n')]));
  const part = (prefix: string) => ({ layers: offsetOf(plan, `${prefix}.layers`), global: offsetOf(plan, `${prefix}.global`) });
  const onHost = (buf: string) => (plan.placements.find((x) => x.buf === buf)?.space === 'host' ? 1 : 0);
  // AdamW states kept in pinned host memory (--optimizer host): where the master weights are, and
  // which host ranges hold moments that the first update reads
  const hostStates = plan.placements.filter((x) => x.space === 'host' && /^optim\.(m|v)\.(layers|global)$/.test(x.buf));
  const c = s.config;
  const data = {
    name: s.model,
    description: `${s.model} seq=${c.seq} sp=${c.sp}${dp > 1 ? ` dp=${dp}` : ''} chunk=${s.chunk}${c.offload ? ' offload' : ''}`,
    gpuBytes: plan.gpuBytes,
    hostBytes: plan.hostBytes,
    eventCount: ev.total,
    world: s.world,
    sp,
    dp,
    packed: c.packed === true,
    seq: s.sizes.S,
    vocab: s.sizes.V,
    statRows: normRows(s),
    chunk: s.chunk,
    zero3: c.zero === 3 ? 1 : 0,
    layerElems: paramTableOf(s).layerElems,
    globalElems: paramTableOf(s).globalElems,
    commScratchBytes: plan.commScratchBytes,
    commLibraryBytes: plan.commLibraryBytes,
    lr: floatC(c.lr),
    adamw: adamwDefaults(s.body),
    seed: c.seed ?? 0,
    params: hostParams(s).map((x) => ({ ...x, std: floatC(x.init.std) })),
    at: {
      params: part('params'),
      master: part('optim.master'),
      masterOnHost: { layers: onHost('optim.master.layers'), global: onHost('optim.master.global') },
      m: part('optim.m'),
      v: part('optim.v'),
      mOnHost: { layers: onHost('optim.m.layers'), global: onHost('optim.m.global') },
      vOnHost: { layers: onHost('optim.v.layers'), global: onHost('optim.v.global') },
      gradBytes: { layers: bytesOf(plan, 'grads.layers'), global: bytesOf(plan, 'grads.global') },
      grads: part('grads'),
      gradsq: offsetOf(plan, 'io.gradsq'),
      tokens: offsetOf(plan, 'io.tokens'),
      labels: offsetOf(plan, 'io.labels'),
      nvalid: offsetOf(plan, 'io.nvalid'),
      loss: offsetOf(plan, 'io.loss'),
      ...(c.packed ? { positions: offsetOf(plan, PACKED_BUFFERS.positions), docs: offsetOf(plan, PACKED_BUFFERS.docs) } : {}),
    },
    hostStates: hostStates.map((x) => ({ buf: x.buf, offset: x.offset, size: x.size })),
    phases,
    profOps: [...profOps.keys()],
    traced: traced.map((it) => ({ id: it.id, op: profOps.get(it.op)! })),
  };
  return [
    { file: 'program.cu', text: env.render('program.cu.njk', data) },
    { file: 'host_kernels.cu', text: env.render('host_kernels.cu.njk', { hidden: s.sizes.D }) },
    ...HOST_STATIC_FILES.map((f) => ({ file: f, text: env.render(f, {}) })),
  ];
}
