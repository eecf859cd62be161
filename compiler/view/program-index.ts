// One walk over the structured program (never unrolled) that the view's tables key into: each
// instruction's position (as the memory plan numbers them), its enclosing loops, and the events
// it waits on and records on its stream; each loop's role, trip count and positions.
import { evalAff, type Instr, type Item, type Loop, type Schedule } from '../schedule/types.js';

export interface LoopInfo {
  /** the loop's id, made unique (a second loop of one id gets `#2`, ...) */
  readonly id: string;
  readonly role: Loop['role'];
  readonly var: string;
  /** iterations on rank 0 (bounds that depend on an outer variable: at its first value) */
  readonly trips: number;
  readonly reverse: boolean;
  readonly parent?: string;
  /** first and last instruction position inside it */
  readonly first: number;
  readonly last: number;
}

export interface InstrInfo {
  readonly instr: Instr;
  readonly position: number;
  /** enclosing loops, outermost first */
  readonly loops: readonly string[];
  /** `event[index]` waited on by its stream since that stream's previous instruction */
  readonly waits: readonly string[];
  /** `event[index]` recorded on its stream after it, before that stream's next instruction */
  readonly records: readonly string[];
}

export interface ProgramIndex {
  readonly instrs: readonly InstrInfo[];
  readonly byId: ReadonlyMap<string, InstrInfo>;
  readonly loops: readonly LoopInfo[];
  readonly positions: number;
}

const indexText = (it: Item & { kind: 'record' | 'wait' }): string => {
  if (!it.index) return it.event;
  const terms = Object.entries(it.index.t).map(([k, c]) => (c === 1 ? k : `${c}*${k}`));
  if (it.index.c !== 0 || terms.length === 0) terms.push(String(it.index.c));
  return `${it.event}[${terms.join('+')}]`;
};

/** Trip count at the loop variables' first values (rank 0), for labels. */
function tripCount(loop: Loop, env: Record<string, number>): number {
  try {
    return evalAff(loop.to, env) - evalAff(loop.from, env);
  } catch {
    return loop.to.c - loop.from.c;
  }
}

export function indexProgram(s: Schedule): ProgramIndex {
  const instrs: (InstrInfo & { waits: string[]; records: string[] })[] = [];
  const loops: LoopInfo[] = [];
  const pendingWaits = new Map<string, string[]>();
  const lastOnStream = new Map<string, InstrInfo & { records: string[] }>();
  let pos = 0;
  const env: Record<string, number> = { r: 0 };
  const seen = new Map<string, number>();
  const uniqueId = (id: string): string => {
    const n = (seen.get(id) ?? 0) + 1;
    seen.set(id, n);
    return n === 1 ? id : `${id}#${n}`;
  };
  const walk = (items: readonly Item[], stack: string[]): void => {
    for (const it of items) {
      if (it.kind === 'loop') {
        const first = pos;
        const trips = tripCount(it, env);
        const id = uniqueId(it.id);
        env[it.var] = evalFrom(it, env);
        walk(it.body, [...stack, id]);
        delete env[it.var];
        loops.push({ id, role: it.role, var: it.var, trips, reverse: !!it.reverse, parent: stack.at(-1), first, last: Math.max(first, pos - 1) });
      } else if (it.kind === 'instr') {
        const info = { instr: it, position: pos++, loops: stack, waits: pendingWaits.get(it.stream) ?? [], records: [] as string[] };
        pendingWaits.delete(it.stream);
        instrs.push(info);
        lastOnStream.set(it.stream, info);
      } else if (it.kind === 'wait') {
        const list = pendingWaits.get(it.stream) ?? [];
        list.push(indexText(it));
        pendingWaits.set(it.stream, list);
      } else {
        lastOnStream.get(it.stream)?.records.push(indexText(it));
      }
    }
  };
  walk(s.body, []);
  return { instrs, byId: new Map(instrs.map((x) => [x.instr.id, x])), loops, positions: pos };
}

function evalFrom(loop: Loop, env: Record<string, number>): number {
  try {
    return evalAff(loop.from, env);
  } catch {
    return loop.from.c;
  }
}
