// `compile` replaces out/<model> as a whole or not at all: no file of an older compile is left
// beside newer ones, a build survives only a recompile to the same schedule, a failed write
// leaves the old folder byte for byte, and a model name that is not a plain folder name is refused.
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { compile, outputIo, replaceOutputDir, STALE_BUILD_NOTE } from '../../compiler/compile.js';
import { expectUnchanged, failsWithOneLine, snapshot } from './helpers.js';

const quick = { typeCheck: false } as const;
const HASH = 'a'.repeat(64);
/** What a compile hands to the folder swap: its files, the schedule's hash among them. */
const outputs = (tag: string) => ['graph.txt', 'graph.json', 'report.json', 'schedule.json', 'passes/001_shapes.txt'].map((name) => ({ name, text: `${name} of ${tag}\n` }));

describe('compile outputs: all or nothing', () => {
  let root: string;
  let dir: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'fpdtc-outputs-'));
    dir = join(root, 'm');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** A finished build of the schedule with `hash`, as `fpdtc build` leaves it. */
  const fakeBuild = (hash: string) => {
    mkdirSync(join(dir, 'build', 'cmake'), { recursive: true });
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(join(dir, 'build', 'cmake', 'fpdt_m.node'), 'addon');
    writeFileSync(join(dir, 'src', 'program.cu'), '// program');
    writeFileSync(join(dir, 'build', 'built-from.json'), JSON.stringify({ hash, arch: '90a', built_at: '2026-01-01T00:00:00Z', addon: 'cmake/fpdt_m.node' }));
  };
  const leftovers = () => readdirSync(root).filter((n) => n.startsWith('.'));

  it('a recompile leaves nothing of the compile before: --skip drops schedule.json, old IR dumps go, other files stay', async () => {
    dir = join(root, 'tiny-llama');
    await compile('tiny-llama', {}, { ...quick, outDir: root, dumpAfter: ['shapes'] });
    expect(existsSync(join(dir, 'schedule.json'))).to.equal(true);
    expect(readdirSync(join(dir, 'passes'))).to.deep.equal(['001_shapes.txt']);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    const r = await compile('tiny-llama', {}, { ...quick, outDir: root, skip: ['chunk', 'offload', 'checkpoint'] });
    expect(readdirSync(dir).sort()).to.deep.equal(['graph.json', 'graph.txt', 'notes.txt', 'report.json']);
    expect(r.files.map((f) => f.slice(dir.length + 1))).to.deep.equal(['graph.txt', 'graph.json', 'report.json']);
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).to.equal('mine');
    expect(leftovers()).to.deep.equal([]);
  });

  it('keeps the build of the same schedule; drops the build of another one, or of a failed build, with a note', () => {
    replaceOutputDir(root, 'm', outputs('first'), HASH);
    fakeBuild(HASH);
    const built = snapshot(join(dir, 'build'));
    expect(replaceOutputDir(root, 'm', outputs('same schedule'), HASH).notes).to.deep.equal([]);
    expectUnchanged(join(dir, 'build'), built, 'build after a recompile to the same schedule');
    expect(readFileSync(join(dir, 'src', 'program.cu'), 'utf8')).to.equal('// program');
    expect(readFileSync(join(dir, 'report.json'), 'utf8')).to.equal('report.json of same schedule\n');

    expect(replaceOutputDir(root, 'm', outputs('other schedule'), 'b'.repeat(64)).notes).to.deep.equal([STALE_BUILD_NOTE]);
    expect(STALE_BUILD_NOTE).to.equal('note: the previous build was for another schedule; run fpdtc build again');
    expect(readdirSync(dir).sort()).to.deep.equal(['graph.json', 'graph.txt', 'passes', 'report.json', 'schedule.json']);

    fakeBuild(HASH);
    rmSync(join(dir, 'build', 'built-from.json'));
    expect(replaceOutputDir(root, 'm', outputs('after a failed build'), HASH).notes).to.deep.equal([STALE_BUILD_NOTE]);
    expect(existsSync(join(dir, 'build'))).to.equal(false);
    expect(leftovers()).to.deep.equal([]);
  });

  describe('a failed write leaves the old folder as it was', () => {
    const saved = { ...outputIo };
    afterEach(() => Object.assign(outputIo, saved));
    const fail = () => Object.assign(new Error('no space left'), { code: 'ENOSPC' });
    const old = () => {
      replaceOutputDir(root, 'm', outputs('old'), HASH);
      fakeBuild(HASH);
      writeFileSync(join(dir, 'notes.txt'), 'mine');
      return snapshot(dir);
    };

    it('while writing the new files', async () => {
      const before = old();
      let writes = 0;
      outputIo.write = ((path: string, text: string) => {
        if (++writes === 4) throw fail();
        saved.write(path, text);
      }) as typeof outputIo.write;
      const line = await failsWithOneLine(() => replaceOutputDir(root, 'm', outputs('new'), HASH), 'write');
      expect(line).to.equal(`error: cannot write ${dir}/schedule.json: ENOSPC`);
      expectUnchanged(dir, before, 'after a failed write');
      expect(leftovers()).to.deep.equal([]);
    });

    for (const step of ['carrying the build over', 'swapping the folders'])
      it(`while ${step}`, async () => {
        const before = old();
        outputIo.rename = ((from: string, to: string) => {
          if ((to === dir) === (step === 'swapping the folders')) throw fail();
          saved.rename(from, to);
        }) as typeof outputIo.rename;
        const line = await failsWithOneLine(() => replaceOutputDir(root, 'm', outputs('new'), HASH), step);
        expect(line).to.equal(`error: cannot write ${dir}: ENOSPC`);
        expectUnchanged(dir, before, step);
        expect(leftovers()).to.deep.equal([]);
      });

    it('when out/<model> is a file', async () => {
      writeFileSync(dir, 'not a folder');
      expect(await failsWithOneLine(() => replaceOutputDir(root, 'm', outputs('new'), HASH))).to.match(/^error: cannot write .*\/m: it is a file, not a folder/);
      expect(readFileSync(dir, 'utf8')).to.equal('not a folder');
    });

    it('when --out is a file', async () => {
      const file = join(root, 'out-file');
      writeFileSync(file, 'mine');
      expect(await failsWithOneLine(() => replaceOutputDir(file, 'm', outputs('new'), HASH))).to.match(/^error: cannot write .*out-file: (EEXIST|ENOTDIR)$/);
      expect(readFileSync(file, 'utf8')).to.equal('mine');
    });

    it('when an output would land outside --out', async () => {
      const line = await failsWithOneLine(() => replaceOutputDir(root, 'm', [{ name: '../../escape.txt', text: 'x' }], undefined));
      expect(line).to.match(/^error: refusing to write .*escape\.txt: it is outside the output folder/);
      expect(existsSync(join(dirname(root), 'escape.txt'))).to.equal(false);
      expect(leftovers()).to.deep.equal([]);
    });
  });

  for (const [file, name] of [['dotdot-name', '..'], ['slash-name', '../escape/x']])
    it(`refuses a model named ${JSON.stringify(name)} before writing anything`, async () => {
      const before = snapshot(root);
      const line = await failsWithOneLine(() => compile(`test/inputs/fixtures/${file}.ts`, {}, { ...quick, outDir: join(root, 'out') }));
      expect(line).to.equal(`test/inputs/fixtures/${file}.ts: error: the model's name ${JSON.stringify(name)} cannot name its output folder; use letters, digits, '.', '_' and '-', not starting with '.'`);
      expectUnchanged(root, before);
      expect(existsSync(join(root, 'escape'))).to.equal(false);
    });
});
