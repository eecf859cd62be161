// The host program of gpu-llama at dp 2 x sp 2 (four ranks, two groups of two): it knows dp and
// sp, names the schedule's `r` as the rank's place in its group, splits the NCCL world into the
// groups' communicators at creation, takes both groups' sequences and picks its own; the static
// collectives keep all-to-alls inside the group. With nvcc, it builds (npm run test:build).
// A dp 1 program carries none of it (its golden file is unchanged).
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { loadCompiled, renderProgramSources, writeProgramSources } from '../../compiler/codegen/host-files.js';
import { commMemory, NCCL_PEER_BYTES } from '../../compiler/schedule/comm-memory.js';
import { buildAddon, findExecutable } from '../../runtime/build.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';

const model = join(import.meta.dirname, '..', 'gpu', 'models', 'gpu-llama.ts');

describe('host program with dp groups', function () {
  this.timeout(300_000);
  let out = '';
  let dir = '';
  let out1 = '';
  let program = '';
  let comm = '';
  let single = '';
  before(async () => {
    out = makeTempDir('fpdt-dp-');
    dir = join(out, 'gpu-llama');
    out1 = makeTempDir('fpdt-dp1-');
    await compile(model, { sp: 2, dp: 2 }, { outDir: out, typeCheck: false });
    await compile(model, { sp: 2 }, { outDir: out1, typeCheck: false });
    const files = renderProgramSources(loadCompiled(dir));
    program = files.find((f) => f.file === 'program.cu')!.text;
    comm = files.find((f) => f.file === 'program_comm.cuh')!.text;
    single = renderProgramSources(loadCompiled(join(out1, 'gpu-llama'))).find((f) => f.file === 'program.cu')!.text;
  });
  after(() => {
    removeTempDir(out);
    removeTempDir(out1);
  });

  it('knows the world, the groups and the group size', () => {
    for (const line of ['#define FPDT_WORLD 4', '#define FPDT_SP 2', '#define FPDT_DP 2']) expect(program).to.include(line);
    expect(program).to.match(/fpdt_program_name\(void\) \{ return "gpu-llama seq=\d+ sp=2 dp=2 /);
  });

  it('names `r` as the place in the group: RoPE positions and the first q head of attention', () => {
    expect(program).to.match(/fpdt_rope_fwd\([^;]*\(\d+LL \* i \+ \d+LL \* \(p->rank % FPDT_SP\)\)/);
    expect(program).to.match(/fpdt_attn_fwd\([^;]*, \(int\)\d+LL \* \(p->rank % FPDT_SP\), /);
    expect(single).to.not.include('FPDT_SP');
    expect(single).to.match(/fpdt_attn_fwd\([^;]*\(int\)\(?2LL \* p->rank\)?, /);
  });

  it('opens the group communicator at creation and takes every group sequence, keeping its own', () => {
    expect(program).to.include('status = comm_open_group(p, create_error, sizeof create_error);');
    expect(program).to.include('if (n != (int64_t)FPDT_DP * FPDT_SEQ)');
    expect(program).to.include('const int64_t first = (int64_t)(p->rank / FPDT_SP) * FPDT_SEQ, place = p->rank % FPDT_SP;');
    expect(single).to.not.include('comm_open_group');
  });

  it('all-to-alls inside the group (NCCL: the split communicator; local: the group ranks), the rest over the world', () => {
    expect(comm).to.include('p->nccl->comm_split((fpdt_nccl_comm)p->comm->nccl, p->rank / FPDT_SP, p->rank % FPDT_SP, &group, NULL)');
    expect(comm).to.match(/fpdt_nccl_comm c = group_comm\(p\);[\s\S]*for \(int q = 0; q < FPDT_SP; q\+\+\)/);
    expect(comm).to.match(/const comm_span group = group_span\(p\);[\s\S]*fpdt_a2a_to_heads\(recv, sends_of\(all, group\), g, place, eb, s\)/);
    expect(comm).to.include('fpdt_sum_ranks(recv, sends_of(all, world_span(p)), p->rank * count, p->world, count, eb, p->s[3])');
  });

  it('plans a second communicator of NCCL buffers for the groups', () => {
    expect(commMemory(loadCompiled(dir).schedule).library).to.equal(2 * NCCL_PEER_BYTES);
    expect(commMemory(loadCompiled(join(out1, 'gpu-llama')).schedule).library).to.equal(NCCL_PEER_BYTES);
  });

  it('builds the dp 2 x sp 2 program with nvcc @nvcc', async function () {
    if (!findExecutable('nvcc', process.env.CUDACXX, ['/usr/local/cuda/bin/nvcc']) || !findExecutable('cmake', process.env.CMAKE, [])) {
      console.log('    skipped: no nvcc or cmake on this machine');
      this.skip();
    }
    writeProgramSources(dir);
    const built = await buildAddon({ programDir: dir, onProgress: () => {} });
    expect(existsSync(built.addonPath)).to.equal(true);
  });
});
