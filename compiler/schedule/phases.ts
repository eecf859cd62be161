// The phases of a step (types.ts `StepPhases`): zero, micro, update, as runs of the top-level
// items. Gradient accumulation runs them apart (zero, K micro steps, update), each run ending
// with every stream joined, so two things must hold for that to mean what one step means:
//   1. the boundaries name top-level items, micro's before update's;
//   2. a buffer touched by two phases is of a kind the memory plan keeps for the whole step
//      (memory.ts PERSISTENT): no other buffer may take its bytes between two micro steps.
import { PERSISTENT } from './memory.js';
import type { Item, PhaseName, Ref, Schedule } from './types.js';

export type PhaseBodies = Readonly<Record<PhaseName, readonly Item[]>>;

/**
 * The top-level items of each phase. A schedule without phases is all micro step (nothing to
 * zero, nothing to update apart): it runs as one step and cannot accumulate.
 */
export function phaseBodies(s: Pick<Schedule, 'body' | 'phases'>): PhaseBodies {
  if (!s.phases) return { zero: [], micro: s.body, update: [] };
  const micro = s.body.findIndex((x) => x.id === s.phases!.micro);
  const update = s.body.findIndex((x) => x.id === s.phases!.update);
  if (micro < 0 || update < 0 || update < micro) throw new Error(`schedule: phases name ${s.phases.micro} and ${s.phases.update}, which are not top-level items in that order`);
  return { zero: s.body.slice(0, micro), micro: s.body.slice(micro, update), update: s.body.slice(update) };
}

/** The schedule of one phase alone: its items, everything else kept (buffers, events, plan positions by id). */
export function phaseSchedule(s: Schedule, phase: PhaseName): Schedule {
  return { ...s, body: phaseBodies(s)[phase] };
}

/** Whether the schedule can run K > 1 micro steps per update. */
export const canAccumulate = (s: Pick<Schedule, 'phases'>): boolean => s.phases !== undefined;

function touched(items: readonly Item[], out: Set<string>): Set<string> {
  const add = (r: Ref) => out.add(r.buf);
  for (const it of items) {
    if (it.kind === 'loop') touched(it.body, out);
    else if (it.kind === 'instr') {
      it.reads.forEach(add);
      it.writes.forEach(add);
    }
  }
  return out;
}

/** The first violation of the invariants above, as one line, or undefined. */
export function phaseProblem(s: Schedule): string | undefined {
  if (!s.phases) return undefined;
  let bodies: PhaseBodies;
  try {
    bodies = phaseBodies(s);
  } catch (e) {
    return (e as Error).message;
  }
  const kind = new Map(s.buffers.map((b) => [b.id, b.kind]));
  const seen = new Map<string, PhaseName>();
  for (const phase of ['zero', 'micro', 'update'] as const)
    for (const buf of touched(bodies[phase], new Set())) {
      const before = seen.get(buf);
      const k = kind.get(buf);
      if (before && before !== phase && k && !PERSISTENT.has(k)) return `buffer ${buf} (${k}) is used in the ${before} and ${phase} phases but its bytes are not kept between them`;
      if (!before) seen.set(buf, phase);
    }
  return undefined;
}
