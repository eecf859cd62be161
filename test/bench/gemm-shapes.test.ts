// test/bench/gemm-shapes.ts reads a step's GEMMs back from the host program's own calls: the shapes it
// lists are exactly the fpdt_gemm_bf16 calls of the rendered program.cu.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { loadCompiled, renderProgramSources } from '../../compiler/codegen/host-files.js';
import { readScheduleJson } from '../../compiler/schedule/export-json.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';
import { callArgs, gemmOfCall, gemmShapes } from './gemm-shapes.js';

const model = join(import.meta.dirname, '..', 'gpu', 'models', 'gpu-llama.ts');

describe('gemm-shapes (the GEMM bench input)', function () {
  this.timeout(120_000);
  let out = '';
  before(async () => {
    out = makeTempDir('fpdt-gemm-shapes-');
    await compile(model, {}, { outDir: out, typeCheck: false });
  });
  after(() => removeTempDir(out));

  it('splits a call at its top-level commas', () => {
    expect(callArgs('x; f(a, g(b, c), (d)) + 1', 'f')).to.deep.equal(['a', 'g(b, c)', '(d)']);
  });

  it('lists the distinct fpdt_gemm_bf16 calls of the program, each with how often a step runs it', () => {
    const dir = join(out, 'gpu-llama');
    const s = readScheduleJson(readFileSync(join(dir, 'schedule.json'), 'utf8'));
    const shapes = gemmShapes(s);
    const program = renderProgramSources(loadCompiled(dir)).find((f) => f.file === 'program.cu')!.text;
    const calls = program.split('\n').filter((l) => l.includes('fpdt_gemm_bf16(p->gemm')).map((l) => gemmOfCall(l));
    const key = (g: object) => JSON.stringify(g);
    const fromProgram = new Set(calls.map(key));
    const listed = shapes.map(({ key: _k, count: _c, flops: _f, uses: _u, ...g }) => key(g));
    expect(new Set(listed)).to.deep.equal(fromProgram);
    expect(listed.length).to.equal(fromProgram.size);
    for (const x of shapes) {
      expect(x.count).to.equal(x.uses.reduce((n, u) => n + u.count, 0));
      expect(x.count % s.chunks, x.key).to.equal(0);
    }
    // the forward projections run once per layer and chunk, at least
    const q = shapes.flatMap((x) => x.uses).find((u) => u.op === 'linear' && u.weight === 'q_proj');
    expect(q?.count).to.be.at.least(s.layers * s.chunks);
  });
});
