// Renders the kernels for two model shapes and compiles every file with the local nvcc (sm_90),
// in parallel. Skips the compile when nvcc is absent.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KernelSpecError, renderKernels, type KernelSpec } from '../../compiler/codegen/kernels.js';
import { launcherPrototypes } from '../../compiler/codegen/kernel-signatures.js';
import { gptSpec, llamaSpec } from '../gpu/kernels/specs.js';

const run = promisify(execFile);
const nvcc = process.env.NVCC ?? '/usr/local/cuda/bin/nvcc';

const sm90Llama: KernelSpec = { ...llamaSpec, target: 'sm90a' };
const sm90Gpt: KernelSpec = { ...gptSpec, target: 'sm90a' };

function launchersIn(text: string): string[] {
  return [...text.matchAll(/extern "C" cudaError_t (\w+)\(/g)].map((m) => m[1]!);
}

describe('codegen/kernels', () => {
  it('specializes the templates to the model constants', () => {
    const files = renderKernels(llamaSpec);
    const byName = new Map(files.map((f) => [f.file, f.text]));
    expect(byName.get('attention_fwd.cu')).to.contain('constexpr int D = 128;');
    expect(byName.get('norm_rms.cu')).to.contain('constexpr int H = 4096;');
    expect(byName.get('mlp_swiglu.cu')).to.contain('constexpr int F = 14336;');
    expect(byName.get('loss.cu')).to.contain('constexpr int V = 128256;');
    expect(byName.has('norm_layer.cu')).to.equal(false);
    const gpt = new Map(renderKernels(gptSpec).map((f) => [f.file, f.text]));
    expect(gpt.has('norm_layer.cu') && gpt.has('mlp_gelu.cu')).to.equal(true);
    expect(gpt.get('rope.cu')).to.contain('constexpr int RD = 32;');
  });

  it('declares in the header exactly the launchers the sources define', () => {
    for (const spec of [llamaSpec, gptSpec, sm90Llama, sm90Gpt]) {
      const files = renderKernels(spec);
      const header = files.find((f) => f.file === 'fpdt_kernels.h')!.text;
      for (const f of files.filter((x) => x.file.endsWith('.cu'))) {
        const defined = launchersIn(f.text).sort();
        const listed = (launcherPrototypes[f.file] ?? []).map((p) => /cudaError_t (\w+)\(/.exec(p)![1]!).sort();
        expect(defined, f.file).to.deep.equal(listed);
        for (const name of defined) expect(header).to.contain(`cudaError_t ${name}(`);
      }
    }
  });

  it('renders the wgmma forward for head dims 64 and 128 on sm_90a targets only, with the mma.sync kernel as fallback', () => {
    const names = (spec: KernelSpec) => renderKernels(spec).map((f) => f.file).filter((f) => f.startsWith('attention_fwd'));
    expect(names(sm90Llama)).to.deep.equal(['attention_fwd_sm90.cu', 'attention_fwd_mma.cu']);
    expect(names(sm90Gpt)).to.deep.equal(['attention_fwd_sm90.cu', 'attention_fwd_mma.cu']); // head dim 64
    expect(names(llamaSpec)).to.deep.equal(['attention_fwd.cu']);
    expect(names({ ...llamaSpec, target: 'generic' })).to.deep.equal(['attention_fwd.cu']);
    expect(names({ ...sm90Gpt, headDim: 96, rotaryDim: 32 })).to.deep.equal(['attention_fwd.cu']); // no wgmma tiles for 96
    // the head dim and the K/V ring depth are the rendered constants
    const gpt90 = renderKernels(sm90Gpt).find((f) => f.file === 'attention_fwd_sm90.cu')!.text;
    expect(gpt90).to.contain('constexpr int kD = 64;').and.contain('constexpr int ST = 4;').and.contain('(3 consumer warpgroups x 64)');
    expect(renderKernels(sm90Llama).find((f) => f.file === 'attention_fwd_sm90.cu')!.text).to.contain('(2 consumer warpgroups x 64)');
    // the two-warpgroup head-dim-64 forward stays as a benchmark copy
    const wg2 = renderKernels(sm90Gpt, { sm90TwoConsumers: true }).find((f) => f.file === 'attention_fwd_wg2_sm90.cu')!.text;
    expect(wg2).to.contain('(2 consumer warpgroups x 64)').and.contain('return fpdt_attn_fwd_mma(');
    // benchmark copies with another ring depth fall back to the one mma.sync kernel; none where the forward is mma.sync
    const st2 = renderKernels(sm90Gpt, { sm90StageVariants: [2] }).find((f) => f.file === 'attention_fwd_st2_sm90.cu')!.text;
    expect(st2).to.contain('constexpr int ST = 2;').and.contain('return fpdt_attn_fwd_mma(');
    expect(launchersIn(st2)).to.deep.equal(['fpdt_attn_fwd_st2_sm90', 'fpdt_attn_fwd_st2']);
    expect(renderKernels(gptSpec, { sm90StageVariants: [2] }).map((f) => f.file)).to.not.include('attention_fwd_st2_sm90.cu');
    const files = new Map(renderKernels(sm90Llama).map((f) => [f.file, f.text]));
    const sm90 = files.get('attention_fwd_sm90.cu')!;
    expect(sm90).to.contain('wgmma.mma_async').and.contain('cp.async.bulk.tensor.3d');
    expect(sm90).to.contain('return fpdt_attn_fwd_mma(').and.contain('constexpr int kD = 128;').and.contain('constexpr int ST = 2;');
    expect(files.get('attention_fwd_mma.cu')).to.contain('extern "C" cudaError_t fpdt_attn_fwd_mma(');
    const header = files.get('fpdt_kernels.h')!;
    for (const n of ['fpdt_attn_fwd', 'fpdt_attn_fwd_sm90', 'fpdt_attn_fwd_mma']) expect(header).to.contain(`cudaError_t ${n}(`);
  });

  it('renders the wgmma backward for head dims 64 and 128 on sm_90a targets, and the ping-pong forward only on request', () => {
    const names = (spec: KernelSpec) => renderKernels(spec).map((f) => f.file).filter((f) => f.startsWith('attention_bwd'));
    expect(names(sm90Llama)).to.deep.equal(['attention_bwd_sm90.cu', 'attention_bwd_mma.cu']);
    expect(names(sm90Gpt)).to.deep.equal(['attention_bwd_sm90.cu', 'attention_bwd_mma.cu']);
    expect(names(llamaSpec)).to.deep.equal(['attention_bwd.cu']);
    // packed: only the kernels with document ids are called (on sm_90a the wgmma ones, with mma.sync fallbacks)
    expect(names({ ...sm90Llama, packed: true })).to.deep.equal(['attention_bwd.cu', 'attention_bwd_docs_sm90.cu', 'attention_bwd_docs_mma.cu']);
    const bwd = (spec: KernelSpec) => renderKernels(spec).find((f) => f.file === 'attention_bwd_sm90.cu')!.text;
    expect(launchersIn(bwd(sm90Gpt))).to.deep.equal(['fpdt_attn_bwd_sm90', 'fpdt_attn_bwd']);
    expect(bwd(sm90Gpt)).to.contain('constexpr int kD = 64;').and.contain('return fpdt_attn_bwd_mma(');
    expect(bwd(sm90Llama)).to.contain('constexpr int kD = 128;').and.contain('cp.reduce.async.bulk.tensor');
    // full blocks in L2-sized bands of q tiles, kv tiles fastest (dK/dV then added with atomics); causal blocks keep
    // the heads-fastest grid; the packed kernels have neither
    for (const spec of [sm90Llama, sm90Gpt]) {
      expect(bwd(spec)).to.contain('band_parts(').and.contain('dim3(n_kv, Hkv, p.parts)').and.contain('atomicAdd(pk, ak)');
      expect(bwd(spec)).to.contain(`band_bytes = ${32 << 20}LL;`).and.not.contain('getenv').and.not.contain('bwd_parts(');
      const fwdText = renderKernels(spec).find((f) => f.file === 'attention_fwd_sm90.cu')!.text;
      expect(fwdText).to.contain('causal ? dim3(Hq, n_mblocks, 1) : dim3(n_mblocks, Hq, 1)');
    }
    const packed = renderKernels({ ...sm90Llama, packed: true });
    const docs = packed.find((f) => f.file === 'attention_bwd_docs_sm90.cu')!.text;
    expect(docs).to.contain('p.parts = 1;').and.contain('dim3 grid(Hkv, n_kv, p.parts);');
    expect(docs).to.not.contain('band_parts(').and.not.contain('bwd_parts(');
    expect(packed.find((f) => f.file === 'attention_fwd_docs_sm90.cu')!.text).to.contain('dim3 grid(Hq, n_mblocks, 1);');
    // bench copies: the heads-fastest form (the programs' until 2026-12-01) and the band swept by FPDT_BAND_MIB
    const copies = renderKernels(sm90Llama, { sm90HeadsFastestAttention: true, sm90BandSweepBackward: true });
    const text = (file: string) => copies.find((f) => f.file === file)!.text;
    expect(launchersIn(text('attention_fwd_heads_sm90.cu'))).to.deep.equal(['fpdt_attn_fwd_heads_sm90', 'fpdt_attn_fwd_heads']);
    expect(launchersIn(text('attention_bwd_heads_sm90.cu'))).to.deep.equal(['fpdt_attn_bwd_heads_sm90', 'fpdt_attn_bwd_heads']);
    expect(text('attention_fwd_heads_sm90.cu')).to.contain('dim3 grid(Hq, n_mblocks, 1);');
    expect(text('attention_bwd_heads_sm90.cu')).to.contain('bwd_parts(Hkv, n_kv').and.not.contain('band_parts(');
    expect(launchersIn(text('attention_bwd_band_sm90.cu'))).to.deep.equal(['fpdt_attn_bwd_band_sm90', 'fpdt_attn_bwd_band']);
    expect(text('attention_bwd_band_sm90.cu')).to.contain('getenv("FPDT_BAND_MIB")');
    const fwd = renderKernels(sm90Gpt).find((f) => f.file === 'attention_fwd_sm90.cu')!.text;
    expect(launchersIn(fwd)).to.deep.equal(['fpdt_attn_fwd_sm90', 'fpdt_attn_fwd']);
    expect(fwd).to.contain('constexpr int kD = 64;').and.contain('return fpdt_attn_fwd_mma(');
  });

  it('rejects shapes the kernels cannot take', () => {
    const bad: Partial<KernelSpec>[] = [{ headDim: 72 }, { qHeads: 30 }, { rotaryDim: 130 }, { hidden: 4095 }, { eps: 0 }];
    for (const b of bad) expect(() => renderKernels({ ...llamaSpec, ...b })).to.throw(KernelSpecError);
  });

  it('compiles every rendered file with nvcc -arch=sm_90 @nvcc', async function () {
    if (!existsSync(nvcc)) {
      console.log(`      (skipped: ${nvcc} not found)`);
      this.skip();
    }
    this.timeout(180_000);
    const dir = mkdtempSync(join(tmpdir(), 'fpdt-kernels-'));
    try {
      const jobs: { spec: string; file: string }[] = [];
      for (const [name, spec] of [['llama', llamaSpec], ['gpt', gptSpec], ['llama90', sm90Llama], ['gpt90', sm90Gpt]] as const) {
        for (const f of renderKernels(spec)) {
          const path = join(dir, `${name}_${f.file}`);
          writeFileSync(path, f.text);
          if (f.file.endsWith('.cu')) jobs.push({ spec: name, file: path });
        }
      }
      // the header must compile as C++ too
      const hdr = join(dir, 'header_check.cu');
      writeFileSync(hdr, '#include "llama_fpdt_kernels.h"\n');
      jobs.push({ spec: 'llama', file: hdr });
      await Promise.all(
        jobs.map(async (j) => {
          try {
            await run(nvcc, ['-c', '-arch=sm_90', '-O1', '-w', j.file, '-o', `${j.file}.o`], { cwd: dir });
            if (j.file.endsWith('_sm90.cu'))
              await run(nvcc, ['-c', '-gencode=arch=compute_90a,code=sm_90a', '-O3', j.file, '-o', `${j.file}.a.o`], { cwd: dir });
          } catch (e) {
            const err = e as { stderr?: string };
            throw new Error(`nvcc failed on ${j.file}:\n${err.stderr ?? String(e)}`);
          }
        }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
