// Run on the GPU host (bundled to one .mjs, with a carried node): for each test model, one
// step from the program's seeded init on seeded tokens; writes init/grads/after weights,
// tokens and meta.json for torch_ref.py. With --bench DIR..., runs `fpdtc run`'s loop instead.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RankSet } from '../../compiler/train/ranks.js';
import { findBuiltAddon, randomTokens, runTraining } from '../../compiler/train/loop.js';
import { saveTensors } from '../../compiler/train/weights.js';
import { readFileSync } from 'node:fs';

const LR = 1e-3;

async function stepCase(dir: string, out: string): Promise<void> {
  const sched = JSON.parse(readFileSync(join(dir, 'schedule.json'), 'utf8')) as { model: string; sizes: Record<string, number>; body: unknown };
  const text = readFileSync(join(dir, 'schedule.json'), 'utf8');
  const z = sched.sizes;
  const norm = text.includes('"op": "rmsnorm"') ? 'rms' : 'layer';
  const rot = Number(/"rotaryDim": (\d+)/.exec(text)?.[1] ?? z.Dh);
  const theta = Number(/"theta": ([\d.e+]+)/.exec(text)?.[1] ?? 10000);
  const program = RankSet.single(findBuiltAddon(dir), { seed: 7, lr: LR });
  mkdirSync(out, { recursive: true });
  await saveTensors(program, join(out, 'init.safetensors'), 'params');
  const tokens = randomTokens(z.S, z.V, 11);
  writeFileSync(join(out, 'tokens.bin'), new Uint8Array(new Uint32Array(tokens).buffer));
  program.setTokens(tokens);
  const loss = await program.step();
  await saveTensors(program, join(out, 'grads.safetensors'), 'grads');
  await saveTensors(program, join(out, 'after.safetensors'), 'params');
  const mem = program.programs[0].memory();
  program.destroy();
  const model = { L: z.L, Hq: z.Hq, Hkv: z.Hkv, Dh: z.Dh, norm, mlp: text.includes('"op": "swiglu"') ? 'swiglu' : 'gelu', rot, theta, eps: 1e-5 };
  writeFileSync(join(out, 'meta.json'), JSON.stringify({ name: sched.model, loss, lr: LR, model, memory: mem }));
  console.log(`${sched.model}: loss ${loss}`);
}

const args = process.argv.slice(2);
if (args[0] === '--bench') {
  for (const dir of args.slice(1)) {
    console.log(`== ${dir}`);
    await runTraining({ dir, steps: 3, log: (l) => console.log(l) });
  }
} else {
  for (let k = 0; k + 1 < args.length; k += 2) await stepCase(args[k], args[k + 1]);
}
