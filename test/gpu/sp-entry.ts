// Run on the GPU host (bundled to one .mjs with a carried node): ranks against one rank.
//   sp-entry.mjs OUT SP1_DIR [SPn_DIR ...]
// SP1_DIR's program takes one step from its seeded init on seeded tokens (files in OUT/<model>-sp1
// for torch_ref.py). Each SPn_DIR (the same model compiled for sp n) runs its n ranks with the
// local backend on this GPU from the same weights and tokens; then the SP 1 program runs again as
// a one-rank NCCL world. Each run prints one JSON line: loss, worst gradient and worst update
// relative norm error against SP 1, and whether the seeded init of the shards equals SP 1's.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../../runtime/safetensors.js';
import { loadAddon } from '../../runtime/load.js';
import { findBuiltAddon, randomTokens } from '../../compiler/train/loop.js';
import { RankSet } from '../../compiler/train/ranks.js';

const LR = 1e-3;
const CONFIG = { seed: 7, lr: LR };
type Tensors = Map<string, Float32Array>;

interface Result {
  loss: number;
  init: Tensors;
  grads: Tensors;
  after: Tensors;
  ms: number;
  shapes: Map<string, number[]>;
}

const all = (r: RankSet, what: 'params' | 'grads'): Tensors => new Map(r.params().map((p) => [p.name, r.gather(p.index, what)]));

function relNorm(a: Float32Array, b: Float32Array): number {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-30);
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function runStep(ranks: RankSet, tokens: Int32Array, from?: Tensors): Promise<Result> {
  const init = all(ranks, 'params');
  if (from) for (const p of ranks.params()) await ranks.setParam(p.index, async (o, n) => from.get(p.name)!.slice(o, o + n));
  ranks.setTokens(tokens);
  const loss = await ranks.step();
  const ms = ranks.programs[0].timings().find((t) => t.name === 'step')?.ms ?? 0;
  const out = { loss, init, grads: all(ranks, 'grads'), after: all(ranks, 'params'), ms, shapes: new Map(ranks.params().map((p) => [p.name, p.shape])) };
  ranks.destroy();
  return out;
}

function compare(tag: string, r: Result, base: Result): boolean {
  let gw = [0, ''] as [number, string], uw = [0, ''] as [number, string], init = 0;
  for (const [name, g] of base.grads) {
    const e = relNorm(r.grads.get(name)!, g);
    if (e > gw[0]) gw = [e, name];
    const a = base.after.get(name)!, b0 = base.init.get(name)!, a2 = r.after.get(name)!;
    const du = relNorm(a2.map((x, i) => x - b0[i]), a.map((x, i) => x - b0[i]));
    if (du > uw[0]) uw = [du, name];
    init = Math.max(init, maxAbs(r.init.get(name)!, b0));
  }
  const lossRel = Math.abs(r.loss - base.loss) / Math.abs(base.loss);
  const pass = lossRel < 5e-3 && gw[0] < 2e-2;
  console.log(JSON.stringify({ case: tag, loss: r.loss, loss_sp1: base.loss, loss_rel: lossRel, grad_worst_rel: gw[0], grad_worst: gw[1], update_worst_rel: uw[0], update_worst: uw[1], seeded_init_max_abs_diff: init, step_ms: r.ms, pass }));
  return pass;
}

async function main(): Promise<void> {
  const [out, sp1, ...others] = process.argv.slice(2);
  const sched = JSON.parse(readFileSync(join(sp1, 'schedule.json'), 'utf8')) as { model: string; sizes: Record<string, number> };
  const z = sched.sizes;
  const tokens = randomTokens(z.S, z.V, 11);
  const base = await runStep(RankSet.single(findBuiltAddon(sp1), CONFIG), tokens);
  console.log(JSON.stringify({ case: `${sched.model} sp1`, loss: base.loss, step_ms: base.ms }));
  // files for torch_ref.py
  const dir = join(out, `${sched.model}-sp1`);
  mkdirSync(dir, { recursive: true });
  const save = (path: string, t: Tensors) => writeSafetensors(path, [...t].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: base.shapes.get(name)!, data })));
  await save(join(dir, 'init.safetensors'), base.init);
  await save(join(dir, 'grads.safetensors'), base.grads);
  await save(join(dir, 'after.safetensors'), base.after);
  writeFileSync(join(dir, 'tokens.bin'), new Uint8Array(new Uint32Array(tokens).buffer));
  const text = readFileSync(join(sp1, 'schedule.json'), 'utf8');
  const model = {
    L: z.L, Hq: z.Hq, Hkv: z.Hkv, Dh: z.Dh, eps: 1e-5,
    norm: text.includes('"op": "rmsnorm"') ? 'rms' : 'layer',
    mlp: text.includes('"op": "swiglu"') ? 'swiglu' : 'gelu',
    rot: Number(/"rotaryDim": (\d+)/.exec(text)?.[1] ?? z.Dh),
    theta: Number(/"theta": ([\d.e+]+)/.exec(text)?.[1] ?? 10000),
  };
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ name: sched.model, loss: base.loss, lr: LR, model }));
  let ok = true;
  for (const d of others) {
    const world = (JSON.parse(readFileSync(join(d, 'schedule.json'), 'utf8')) as { world: number }).world;
    try {
      ok = compare(`${sched.model} sp${world} local`, await runStep(RankSet.local(findBuiltAddon(d), world, CONFIG), tokens, base.init), base) && ok;
    } catch (e) {
      ok = false;
      console.log(JSON.stringify({ case: `${sched.model} sp${world} local`, error: String((e as Error).message) }));
    }
  }
  try {
    const addon = loadAddon(findBuiltAddon(sp1));
    const comm = await addon.native.ncclInit(addon.native.ncclUniqueId(), 0, 1, 0);
    ok = compare(`${sched.model} sp1 nccl-1-rank`, await runStep(RankSet.nccl(addon, 0, 1, comm, CONFIG), tokens, base.init), base) && ok;
  } catch (e) {
    ok = false;
    console.log(JSON.stringify({ case: `${sched.model} sp1 nccl-1-rank`, error: String((e as Error).message) }));
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
