// The command as a subprocess: exit codes, one-line errors, files written. Kept to a few
// runs because each starts Node; the library tests cover every error message.
import { expect } from 'chai';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../temp-dir.js';
import { runCli } from './run-cli.js';

describe('fpdtc (subprocess)', () => {
  let out: string;
  before(() => {
    out = makeTempDir('fpdtc-cli-');
  });
  after(() => removeTempDir(out));

  it('compiles a model by bare name, dumps IR, prints a summary', () => {
    const r = runCli(['compile', 'tiny-llama', '--out', out, '--seq', '192', '--dump-after', 'all']);
    expect(r.stderr).to.equal('');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^tiny-llama: 35\.6K params, 2 layers, 192 tokens \(sp 2, chunk 24,/);
    expect(r.stdout).to.match(/wrote .*tiny-llama\/\{graph\.txt, graph\.json, report\.json, schedule\.json, schedule\.dot, trace\.json\}/);
    expect(r.stdout).to.match(/done in \d+\.\d\d s/);
    for (const f of ['graph.txt', 'graph.json', 'report.json']) expect(existsSync(join(out, 'tiny-llama', f)), f).to.equal(true);
    const dumps = readdirSync(join(out, 'tiny-llama', 'passes'));
    expect(dumps).to.include.members(['000_input.txt', '001_shapes.txt']);
  });

  it('a missing model file: one line, exit 1', () => {
    const r = runCli(['compile', 'test/fixtures/models/missing.ts', '--out', out]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal(`error: model file 'test/fixtures/models/missing.ts' not found (looked at test/fixtures/models/missing.ts)\n`);
    expect(r.stdout).to.equal('');
  });

  it('a type error: path:line:col, exit 1', () => {
    const r = runCli(['compile', 'test/fixtures/models/type-error.mts', '--out', out]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal(`test/fixtures/models/type-error.mts:8:82: error: Type 'string' is not assignable to type 'number'.\n`);
  });

  it('an exception in the model: its line, no stack unless FPDTC_DEBUG=1', () => {
    const r = runCli(['compile', 'test/fixtures/models/throws.ts', '--out', out]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.equal('test/fixtures/models/throws.ts:5:28: error: the model threw: vocabulary 64 is not padded to 128\n');
    const debug = runCli(['compile', 'test/fixtures/models/throws.ts', '--out', out], { FPDTC_DEBUG: '1' });
    expect(debug.stderr.split('\n')[0]).to.equal('test/fixtures/models/throws.ts:5:28: error: the model threw: vocabulary 64 is not padded to 128');
    expect(debug.stderr).to.match(/\n\s+at checkVocab \(.*throws\.ts:5:28\)/);
  });

  const usage: [string, string[], string][] = [
    ['an unknown flag', ['compile', 'tiny-llama', '--bogus'], "error: unknown option '--bogus'"],
    ['a missing argument', ['compile'], "error: missing required argument 'model'"],
    ['a bad size', ['compile', 'tiny-llama', '--seq', '3Q'], 'error: --seq 3Q: not a size; write a whole number, optionally with K or M (e.g. 65536, 64K, 2M)'],
    ['an unknown command', ['compiel'], "error: unknown command 'compiel'"],
  ];
  for (const [what, args, line] of usage)
    it(`${what}: one line, exit 2`, () => {
      const r = runCli(args);
      expect(r.code).to.equal(2);
      expect(r.stderr.split('\n')[0]).to.equal(line);
      expect(r.stderr.trim().split('\n')).to.have.length.of.at.most(2); // commander may add a "did you mean"
    });
});
