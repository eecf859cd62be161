// `fpdtc run out/<name> --steps N`: loads the built addon and trains; the work is in
// compiler/train/, this file parses flags.
import type { Command } from 'commander';
import { errors } from '../errors.js';
import { runTraining } from '../train/loop.js';

export function register(program: Command): void {
  program
    .command('run')
    .description('train a built model on the GPU: per-step loss, step time, tokens/s, MFU, memory')
    .argument('<dir>', 'the output folder of a build, e.g. out/llama1b')
    .option('--steps <n>', 'training steps', '1')
    .option('--tokens <file>', 'tokens: flat little-endian uint32 (.bin) or .npy; default seeded random tokens')
    .option('--weights <file>', 'initial weights (.safetensors, Hugging Face Llama names); default seeded random init')
    .option('--save <file>', 'write the weights after the last step (.safetensors)')
    .option('--dump-grads <file>', 'write the gradients of the last step (.safetensors)')
    .option('--lr <x>', 'learning rate')
    .action(async (dir: string, o: { steps: string; tokens?: string; weights?: string; save?: string; dumpGrads?: string; lr?: string }) => {
      const steps = Number(o.steps);
      if (!Number.isInteger(steps) || steps < 1) throw errors.badFlag('steps', o.steps, 'a whole number of steps, at least 1');
      const lr = o.lr === undefined ? undefined : Number(o.lr);
      if (lr !== undefined && !(lr >= 0)) throw errors.badFlag('lr', String(o.lr), 'a non-negative number');
      await runTraining({ dir, steps, tokens: o.tokens, weights: o.weights, save: o.save, dumpGrads: o.dumpGrads, lr, log: (l) => process.stdout.write(l + '\n') });
    });
}
