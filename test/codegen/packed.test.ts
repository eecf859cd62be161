// Codegen of a schedule compiled with --packed (lower/packed.ts): the program calls the
// document-masked attention with the id windows its blocks read, RoPE at the positions its rows
// read, gathers the ids as int32 (4 bytes each) over the sp group, takes the documents through
// fpdt_set_documents and refuses a step without them, skips the blocks off the diagonal (and their
// transfers) whose chunks share no document; with dp groups the ids are gathered inside
// the sequence-parallel group only; it builds with nvcc. A program compiled without --packed
// renders none of it and refuses fpdt_set_documents.
import { expect } from 'chai';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { loadCompiled, renderProgramSources, writeProgramSources } from '../../compiler/codegen/host-files.js';
import { buildAddon, findExecutable } from '../../runtime/build.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';

const model = join(import.meta.dirname, '..', 'gpu', 'models', 'gpu-llama.ts');

describe('codegen of packed documents', function () {
  this.timeout(300_000);
  let out = '';
  let plain = '';
  let groups = '';
  before(async () => {
    out = makeTempDir('fpdt-packed-');
    plain = makeTempDir('fpdt-unpacked-');
    groups = makeTempDir('fpdt-packed-dp-');
    await compile(model, { sp: 2, packed: true }, { outDir: out, typeCheck: false });
    await compile(model, { sp: 2 }, { outDir: plain, typeCheck: false });
    await compile(model, { sp: 2, dp: 2, packed: true }, { outDir: groups, typeCheck: false });
  });
  after(() => {
    removeTempDir(out);
    removeTempDir(plain);
    removeTempDir(groups);
  });

  const sources = (dir: string) => new Map(renderProgramSources(loadCompiled(join(dir, 'gpu-llama'))).map((f) => [f.file, f.text]));

  it('calls the document-masked kernels on the ids and positions the schedule gives them', () => {
    const files = sources(out);
    const program = files.get('program.cu')!;
    // an h200 program: the sm_90a kernels with ids behind the launchers fpdt_attn_{fwd,bwd}_docs
    for (const f of ['attention_fwd_docs_sm90.cu', 'attention_fwd_docs_mma.cu', 'attention_bwd_docs_sm90.cu', 'attention_bwd_docs_mma.cu', 'rope_pos.cu'])
      expect(files.has(f), f).to.equal(true);
    expect(program).to.match(/fpdt_attn_fwd_docs\(/).and.to.match(/fpdt_attn_bwd_docs\(/);
    expect(program).to.match(/fpdt_rope_fwd_pos\(/).and.to.match(/fpdt_rope_bwd_pos\(/);
    // every block and RoPE of the packed program: no unmasked attention, no pos0 rotation
    expect(program).to.not.match(/fpdt_attn_fwd\(|fpdt_attn_bwd\(|fpdt_rope_fwd\(|fpdt_rope_bwd\(/);
    // the ids of a chunk, gathered over the group: c int32 ids of 4 bytes each
    const gather = /fpdt_all_gather\([^;]*"i\d+ all_gather"\)/.exec(program.slice(0, program.indexOf('fpdt_attn_fwd_docs(')));
    expect(gather, 'the id gather before the first block').to.not.equal(null);
    expect(gather![0]).to.match(/, \d+LL, 4, "/);
    expect(program).to.contain('extern "C" int fpdt_set_documents(').and.contain('POSITIONS_AT').and.contain('p->has_documents');
    expect(program).to.contain('a packed program needs fpdt_set_documents first');
    // the blocks off the diagonal and their transfers run only where their chunks share a document
    expect(program).to.match(/if \(fpdt_docs_meet\(p, [^)]*\)\) \{ FPDT_CK\(fpdt_attn_fwd_docs\(/);
    expect(program).to.match(/if \(fpdt_docs_meet\(p, [^)]*\)\) \{ FPDT_CK\(cudaMemcpyAsync\(/);
    expect(program).to.contain('p->doc_first[k] = docs[');
  });

  it('with dp groups gathers the ids inside the sequence-parallel group', () => {
    const program = sources(groups).get('program.cu')!;
    expect(program).to.match(/FPDT_TRY\(fpdt_all_gather_group\([^;]*, \d+LL, 4, "i\d+ all_gather"\)\);/);
    expect(sources(out).get('program.cu')).to.not.contain('fpdt_all_gather_group(');
  });

  it('without --packed: no document kernels, and fpdt_set_documents refuses', () => {
    const files = sources(plain);
    const program = files.get('program.cu')!;
    for (const f of ['attention_fwd_docs.cu', 'attention_bwd_docs.cu', 'rope_pos.cu']) expect(files.has(f), f).to.equal(false);
    expect(program).to.not.contain('_docs(').and.not.contain('POSITIONS_AT').and.not.contain('has_documents');
    expect(program).to.contain('this program was compiled without --packed');
  });

  it('builds the packed dp 2 x sp 2 program with nvcc @nvcc', async function () {
    if (!findExecutable('nvcc', process.env.CUDACXX, ['/usr/local/cuda/bin/nvcc']) || !findExecutable('cmake', process.env.CMAKE, [])) {
      console.log('    skipped: no nvcc or cmake on this machine');
      this.skip();
    }
    const dir = join(groups, 'gpu-llama');
    writeProgramSources(dir);
    const built = await buildAddon({ programDir: dir, onProgress: () => {} });
    expect(built.addonPath).to.match(/\.node$/);
  });
});
