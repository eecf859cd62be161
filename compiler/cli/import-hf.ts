// `fpdtc import-hf DIR`: a model file for a Hugging Face Llama folder, written from its
// config.json (sizes, RoPE theta and llama3 scaling, norm eps, tied embeddings), so that the
// compiled model takes `fpdtc run --weights DIR` as it is. Other architectures are refused.
import { existsSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { RuntimeError } from '../../runtime/errors.js';
import { readFolderConfig } from '../../runtime/hf-folder.js';
import { writeFileAtomic } from '../atomic-write.js';
import { formatSize, parseSize } from '../config.js';
import { errors } from '../errors.js';
import { displayPath, MODELS_DIR } from '../frontend/index.js';
import { parseLlamaConfig, type HfLlama } from '../train/hf-config.js';

/** The DSL entry point that generated files import. */
const DSL_INDEX = resolve(MODELS_DIR, '../compiler/dsl/index.js');
const DEFAULT_SEQ = 4096;

interface ImportFlags {
  out?: string;
  seq?: string;
  sp?: string;
  force?: boolean;
}

/** A model name from a folder name: `Meta-Llama-3.1-8B` -> `meta-llama-3.1-8b`. */
export function modelNameFor(dir: string): string {
  const name = basename(resolve(dir)).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '');
  return name || 'imported';
}

const quote = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
/** `'256K'` where a suffix fits, else the plain number. */
const seqText = (n: number) => (/[KM]$/.test(formatSize(n)) ? quote(formatSize(n)) : String(n));
/** Numbers as people write them in configs: 1e-5, not 0.00001. */
const num = (x: number) => (x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential() : String(x));

export interface ModelFileOptions {
  name: string;
  /** where the config came from, for the header comment */
  source: string;
  /** the import specifier of compiler/dsl/index.js as seen from the file */
  dslImport: string;
  seq: number;
  sp: number;
}

/** The text of a model file for a parsed Llama config. */
export function llamaModelFile(hf: HfLlama, o: ModelFileOptions): string {
  const s = hf.sizes;
  const sc = hf.ropeScaling;
  const layerOptions = [
    `ropeTheta: ${num(hf.ropeTheta)}`,
    `eps: ${num(hf.eps)}`,
    ...(sc
      ? [`ropeScaling: { type: 'llama3', factor: ${num(sc.factor)}, lowFreqFactor: ${num(sc.lowFreqFactor)}, highFreqFactor: ${num(sc.highFreqFactor)}, originalMaxPositions: ${num(sc.originalMaxPositions)} }`]
      : []),
  ];
  return [
    `// ${o.name}: a Llama model from the Hugging Face folder ${o.source.replace(/[\r\n]/g, ' ')}`,
    `// (written by \`fpdtc import-hf\`; \`fpdtc run --weights\` checks that folder's config.json against it).`,
    `import { causalLM, defineModel, llamaLayer } from ${quote(o.dslImport)};`,
    '',
    'export default defineModel({',
    `  name: ${quote(o.name)},`,
    `  sizes: { V: ${s.V}, D: ${s.D}, L: ${s.L}, Hq: ${s.Hq}, Hkv: ${s.Hkv}, Dh: ${s.Dh}, F: ${s.F} },`,
    `  train: { seq: ${seqText(o.seq)}, sp: ${o.sp}, chunk: 'auto', offload: true, zero: 3, checkpoint: 'host', device: 'h200' },`,
    '  forward: (m) =>',
    '    causalLM(m, {',
    "      norm: 'rms',",
    `      tiedEmbeddings: ${hf.tied},`,
    `      eps: ${num(hf.eps)},`,
    `      layer: (x, l) => llamaLayer(x, l, { ${layerOptions.join(', ')} }),`,
    '    }),',
    '});',
    '',
  ].join('\n');
}

/** Reads DIR/config.json and writes the model file; returns the path written. */
export async function importHf(dir: string, flags: ImportFlags): Promise<{ path: string; name: string; hf: HfLlama }> {
  const where = join(dir, 'config.json');
  let config: Record<string, unknown> | undefined;
  try {
    config = await readFolderConfig(dir);
  } catch (e) {
    throw e instanceof RuntimeError ? errors.runtime(e.message) : e;
  }
  if (!config) throw errors.hfNoConfig(dir);
  const hf = parseLlamaConfig(config, where, 'import-hf');
  const sp = flags.sp === undefined ? 1 : Number(flags.sp);
  if (!Number.isSafeInteger(sp) || sp < 1) throw errors.badFlag('sp', String(flags.sp), 'expected a whole number of at least 1');
  const seq = flags.seq !== undefined ? parseSize(flags.seq, 'seq') : (hf.maxPositions ?? DEFAULT_SEQ);
  const name = flags.out ? modelNameFor(flags.out.replace(/\.ts$/, '')) : modelNameFor(dir);
  const path = resolve(flags.out ?? join(MODELS_DIR, `${name}.ts`));
  if (existsSync(path) && !flags.force) throw errors.fileExists(displayPath(path));
  let dslImport = relative(dirname(path), DSL_INDEX).split('\\').join('/');
  if (!dslImport.startsWith('.')) dslImport = `./${dslImport}`;
  writeFileAtomic(path, llamaModelFile(hf, { name, source: displayPath(resolve(dir)), dslImport, seq, sp }));
  return { path, name, hf };
}

export function register(program: Command): void {
  program
    .command('import-hf')
    .description("write a model file from a Hugging Face Llama folder's config.json")
    .argument('<dir>', 'a Hugging Face model folder (config.json and safetensors weights)')
    .option('--out <file>', 'the model file to write (default models/<folder name>.ts)')
    .option('--seq <tokens>', "the model's default sequence length (default the config's max_position_embeddings)")
    .option('--sp <ranks>', "the model's default sequence-parallel degree", '1')
    .option('--force', 'overwrite an existing model file')
    .action(async (dir: string, flags: ImportFlags) => {
      const { path, name, hf } = await importHf(dir, flags);
      const s = hf.sizes;
      process.stdout.write(
        `wrote ${displayPath(path)}: ${name}, ${s.L} layers, hidden ${s.D}, ${s.Hq}/${s.Hkv} heads${hf.ropeScaling ? ', llama3 RoPE scaling' : ''}${hf.tied ? ', tied embeddings' : ''}\n` +
          `  next: npx fpdtc compile ${displayPath(path)} && npx fpdtc build out/${name} && npx fpdtc run out/${name} --weights ${dir}\n`,
      );
    });
}
