// Every transfer, fill and kernel of a generated program and of the runtime is issued on an
// explicit stream. The program's streams are non-blocking: they do not wait for the legacy
// default stream, so a plain cudaMemcpy from pageable memory (which may return before its DMA
// lands) or a plain cudaMemset races with them. That race once let loaded weights reach the
// bf16 copy only in part, at random: wrong, irreproducible gradients with `--weights`.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { loadCompiled, renderProgramSources } from '../../compiler/codegen/host-files.js';
import { withTempDir } from '../temp-dir.js';

const root = join(import.meta.dirname, '..', '..');
const model = join(root, 'test', 'gpu', 'models', 'gpu-llama.ts');

/** Calls that run on the legacy default stream, found in CUDA source text (comments removed). */
export function legacyStreamCalls(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const found: string[] = [];
  for (const m of code.matchAll(/\b(cudaMemcpy|cudaMemset|cudaMemcpy2D|cudaMemcpyPeer|cudaMemcpyToSymbol)\s*\(/g)) found.push(m[0]);
  // a launch with fewer than four configuration arguments uses the default stream
  for (const m of code.matchAll(/<<<([^>]*)>>>/g)) if (m[1].split(',').length < 4) found.push(m[0]);
  return found;
}

describe('stream order of generated programs and the runtime', function () {
  this.timeout(60_000);

  it('finds a plain copy, a plain fill and a launch without a stream (the check can fail)', () => {
    const bad = 'cudaMemcpy(a, b, n, cudaMemcpyHostToDevice); cudaMemset(a, 0, n); k<<<g, 256>>>(x); /* cudaMemcpy( */';
    expect(legacyStreamCalls(bad)).to.have.length(3);
    expect(legacyStreamCalls('cudaMemcpyAsync(a, b, n, k, s); k<<<g, 256, 0, s>>>(x);')).to.deep.equal([]);
  });

  it('no rendered source of gpu-llama (sp 1 and sp 2) uses the legacy default stream', async () => {
    for (const sp of [1, 2]) {
      await withTempDir('fpdt-streams-', async (out) => {
        await compile(model, { sp }, { outDir: out, typeCheck: false });
        for (const f of renderProgramSources(loadCompiled(join(out, 'gpu-llama')))) {
          expect(legacyStreamCalls(f.text), `${f.file} (sp ${sp})`).to.deep.equal([]);
        }
      });
    }
  });

  it('no runtime or host template source uses the legacy default stream', () => {
    for (const dir of ['runtime/src', 'runtime/include', 'codegen-templates/host', 'codegen-templates/kernels']) {
      for (const f of readdirSync(join(root, dir))) {
        if (!/\.(cc|cu|cuh|h|njk)$/.test(f)) continue;
        expect(legacyStreamCalls(readFileSync(join(root, dir, f), 'utf8')), `${dir}/${f}`).to.deep.equal([]);
      }
    }
  });
});
