// The schedule is the whole contract: codegen, the reference executor and `fpdtc run` read the
// layout, the memory plan and the parameter table from the schedule IR (schedule.json), never
// from lowering or the graph passes, so that a wrong layout is not agreed on by two copies of
// one piece of code. Checked on the import lines, and by rendering from an out dir whose
// graph.json is gone.
import { expect } from 'chai';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { loadCompiled, renderProgramSources } from '../../compiler/codegen/host-files.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';

const root = join(import.meta.dirname, '..', '..');
const model = join(root, 'test', 'gpu', 'models', 'gpu-llama.ts');

/** Every module specifier a TypeScript file imports or re-exports (static and dynamic). */
function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]/g)) out.push(m[1]);
  for (const m of text.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]);
  return out;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

describe('the schedule is the whole contract', () => {
  it('the import scan sees static, re-exported and dynamic imports', () => {
    expect(importsOf("import { a } from '../lower/params.js';\nexport { b } from \"../passes/x.js\";\nconst c = await import('../lower/y.js');")).to.deep.equal(['../lower/params.js', '../passes/x.js', '../lower/y.js']);
  });

  for (const folder of ['codegen', 'reference', 'train'])
    it(`compiler/${folder}/ imports nothing from compiler/lower/ or compiler/passes/`, () => {
      const files = tsFiles(join(root, 'compiler', folder));
      expect(files.length).to.be.greaterThan(0);
      const bad = files.flatMap((f) => importsOf(readFileSync(f, 'utf8')).filter((x) => /(^|\/)(lower|passes)\//.test(x)).map((x) => `${f.slice(root.length + 1)}: ${x}`));
      expect(bad).to.deep.equal([]);
    });

  describe('rendering reads schedule.json alone', function () {
    this.timeout(120_000);
    let out = '';
    before(() => (out = makeTempDir('fpdt-contract-')));
    after(() => removeTempDir(out));

    it('renders the same sources from an out dir without graph.json', async () => {
      await compile(model, { sp: 2 }, { outDir: out, typeCheck: false });
      const dir = join(out, 'gpu-llama');
      const before = renderProgramSources(loadCompiled(dir));
      rmSync(join(dir, 'graph.json'));
      const after = renderProgramSources(loadCompiled(dir));
      expect(after.map((f) => f.file)).to.deep.equal(before.map((f) => f.file));
      after.forEach((f, i) => expect(f.text, f.file).to.equal(before[i].text));
    });
  });
});
