// The kernel constants of a compiled model, read off its schedule: sizes, and the attributes
// its norm, rope and MLP instructions carry (eps, rotary dim, theta, rope scaling).
import type { Instr, Item, Schedule } from '../schedule/types.js';
import type { KernelSpec } from './kernels.js';

export function* instrsOf(items: readonly Item[]): Generator<Instr> {
  for (const it of items) {
    if (it.kind === 'loop') yield* instrsOf(it.body);
    else if (it.kind === 'instr') yield it;
  }
}

/** Lowering writes a rope node's llama3 scaling as `llama3Scaling: [factor, low, high, originalMaxPositions]`. */
function ropeScalingOf(rope: Instr): Pick<KernelSpec, 'ropeScaling'> {
  const x = rope.attrs.llama3Scaling;
  if (x === undefined) return {};
  if (!Array.isArray(x) || x.length !== 4) throw new Error(`host codegen: rope llama3Scaling must be 4 numbers, got ${JSON.stringify(x)}`);
  const [factor, lowFreqFactor, highFreqFactor, originalMaxPositions] = x as readonly number[];
  return { ropeScaling: { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositions } };
}

/** Device profiles (schedule/devices.ts) whose GPUs are sm_90a: the build's default arch (cli/build.ts). */
const HOPPER_DEVICES: ReadonlySet<string> = new Set(['h100', 'h200']);

export function kernelSpecOf(s: Schedule): KernelSpec {
  const ops = new Map<string, Instr>();
  for (const it of instrsOf(s.body)) if (!ops.has(it.op)) ops.set(it.op, it);
  const norm = ops.get('rmsnorm') ?? ops.get('layernorm');
  const rope = ops.get('rope');
  if (!norm) throw new Error('host codegen: the schedule has no norm instruction');
  const z = s.sizes;
  return {
    headDim: z.Dh,
    hidden: z.D,
    kvHeads: z.Hkv,
    qHeads: z.Hq,
    ffn: z.F,
    vocab: z.V,
    rotaryDim: rope ? Number(rope.attrs.rotaryDim) : z.Dh,
    ropeTheta: rope ? Number(rope.attrs.theta) : 10000,
    ...(rope ? ropeScalingOf(rope) : {}),
    norm: norm.op === 'rmsnorm' ? 'rms' : 'layer',
    mlp: ops.has('swiglu') ? 'swiglu' : 'gelu',
    eps: Number(norm.attrs.eps),
    target: HOPPER_DEVICES.has(s.config.device) ? 'sm90a' : 'generic',
    // packed documents: the document-masked attention and RoPE at given positions (kernels.ts)
    ...(s.config.packed ? { packed: true } : {}),
  };
}

/** Most rows any norm instruction normalizes: the size of the statistics scratch. */
export function normRows(s: Schedule): number {
  let rows = 1;
  for (const it of instrsOf(s.body)) if (/norm/.test(it.op)) rows = Math.max(rows, Number(it.attrs.rows));
  return rows;
}
