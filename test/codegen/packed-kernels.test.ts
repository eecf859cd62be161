// The kernels of packed programs (KernelSpec.packed): the document-masked attention and RoPE at
// given positions are extra files with their own launchers (on sm_90a the wgmma kernels with ids, with
// mma.sync fallbacks; elsewhere the mma.sync kernels), and without packing nothing rendered changes.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { renderKernels, usesSm90Forward, type KernelSpec } from '../../compiler/codegen/kernels.js';
import { launcherPrototypes } from '../../compiler/codegen/kernel-signatures.js';
import { gptSpec, llamaSpec } from '../gpu/kernels/specs.js';

const run = promisify(execFile);
const nvcc = process.env.NVCC ?? '/usr/local/cuda/bin/nvcc';
const PACKED_FILES = ['attention_fwd_docs.cu', 'attention_bwd_docs.cu', 'rope_pos.cu'];
const launchersIn = (text: string) => [...text.matchAll(/extern "C" cudaError_t (\w+)\(/g)].map((m) => m[1]!).sort();

describe('codegen/kernels of packed documents', () => {
  const sm90: KernelSpec = { ...llamaSpec, target: 'sm90a', packed: true };

  it('adds the document-masked attention and positional RoPE, each launcher in the table and the header', () => {
    for (const spec of [{ ...llamaSpec, packed: true }, { ...gptSpec, packed: true }]) {
      const files = renderKernels(spec);
      const header = files.find((f) => f.file === 'fpdt_kernels.h')!.text;
      for (const name of PACKED_FILES) {
        const f = files.find((x) => x.file === name);
        expect(f, name).to.not.equal(undefined);
        const listed = (launcherPrototypes[name] ?? []).map((p) => /cudaError_t (\w+)\(/.exec(p)![1]!).sort();
        expect(launchersIn(f!.text), name).to.deep.equal(listed);
        for (const p of launcherPrototypes[name]!) expect(header).to.contain(p);
      }
    }
  });

  it('on sm_90a, renders the wgmma forward and backward with ids and their mma.sync fallbacks (head dims 64 and 128)', () => {
    for (const spec of [sm90, { ...gptSpec, target: 'sm90a' as const, packed: true }]) {
      const files = renderKernels(spec);
      const names = files.map((f) => f.file);
      const sm90Files = ['attention_fwd_docs_sm90.cu', 'attention_fwd_docs_mma.cu', 'attention_bwd_docs_sm90.cu', 'attention_bwd_docs_mma.cu'];
      expect(names).to.include.members(sm90Files).and.not.include('attention_fwd_docs.cu').and.not.include('attention_bwd_docs.cu');
      const header = files.find((f) => f.file === 'fpdt_kernels.h')!.text;
      for (const name of sm90Files) {
        const text = files.find((f) => f.file === name)!.text;
        const listed = launcherPrototypes[name]!.map((p) => /cudaError_t (\w+)\(/.exec(p)![1]!).sort();
        expect(launchersIn(text), name).to.deep.equal(listed);
        for (const p of launcherPrototypes[name]!) expect(header).to.contain(p);
      }
      const fwd = files.find((f) => f.file === 'attention_fwd_docs_sm90.cu')!.text;
      expect(fwd).to.contain('first_id_at_least').and.contain('apply_doc_mask').and.contain('return fpdt_attn_fwd_docs_mma(');
      const bwd = files.find((f) => f.file === 'attention_bwd_docs_sm90.cu')!.text;
      expect(bwd).to.contain('const int m_end = q_hi > q_lo').and.contain('return fpdt_attn_bwd_docs_mma(');
    }
    // off Hopper, the mma.sync kernels with ids alone
    const generic = renderKernels({ ...llamaSpec, packed: true }).map((f) => f.file);
    expect(generic).to.include.members(PACKED_FILES).and.not.include('attention_fwd_docs_sm90.cu').and.not.include('attention_bwd_docs_sm90.cu');
  });

  it('takes the mma.sync forward on sm_90a, and renders nothing new without packing', () => {
    expect(usesSm90Forward(sm90)).to.equal(false);
    expect(usesSm90Forward({ ...sm90, packed: false })).to.equal(true);
    expect(renderKernels(sm90).map((f) => f.file)).to.not.include('attention_fwd_sm90.cu');
    for (const spec of [llamaSpec, gptSpec, { ...llamaSpec, target: 'sm90a' as const }]) {
      const plain = renderKernels(spec);
      expect(plain.map((f) => f.file).filter((f) => PACKED_FILES.includes(f) || f.includes('_docs'))).to.deep.equal([]);
      // the files both render are the same text: packing only adds
      const packed = new Map(renderKernels({ ...spec, packed: true }).map((f) => [f.file, f.text]));
      for (const f of plain) if (packed.has(f.file) && f.file !== 'fpdt_kernels.h') expect(packed.get(f.file), f.file).to.equal(f.text);
    }
  });

  it('masks by id and skips tiles by range in both attention kernels, reads positions in RoPE', () => {
    const files = new Map(renderKernels({ ...gptSpec, packed: true }).map((f) => [f.file, f.text]));
    for (const name of ['attention_fwd_docs.cu', 'attention_bwd_docs.cu']) {
      const text = files.get(name)!;
      expect(text, name).to.contain('first_id_at_least(').and.contain('first_id_above(').and.contain('need_docs');
    }
    expect(files.get('rope_pos.cu')).to.contain('__ldg(positions + row)').and.not.contain('pos_offset');
  });

  it('compiles the packed files with nvcc -arch=sm_90 @nvcc', async function () {
    if (!existsSync(nvcc)) {
      console.log(`      (skipped: ${nvcc} not found)`);
      this.skip();
    }
    this.timeout(180_000);
    const dir = mkdtempSync(join(tmpdir(), 'fpdt-packed-kernels-'));
    try {
      const jobs: string[] = [];
      const specs = [['llama', llamaSpec], ['gpt', gptSpec], ['llama90', { ...llamaSpec, target: 'sm90a' }], ['gpt90', { ...gptSpec, target: 'sm90a' }]] as const;
      for (const [name, spec] of specs)
        for (const f of renderKernels({ ...spec, packed: true }).filter((x) => PACKED_FILES.includes(x.file) || x.file.includes('_docs'))) {
          const path = join(dir, `${name}_${f.file}`);
          writeFileSync(path, f.text);
          jobs.push(path);
        }
      await Promise.all(
        jobs.map(async (file) => {
          try {
            // the wgmma kernels need sm_90a; their mma.sync fallbacks and the generic kernels build for sm_90
            const arch = file.endsWith('_sm90.cu') ? '-gencode=arch=compute_90a,code=sm_90a' : '-arch=sm_90';
            await run(nvcc, ['-c', arch, '-O1', file, '-o', `${file}.o`], { cwd: dir });
          } catch (e) {
            throw new Error(`nvcc failed on ${file}:\n${(e as { stderr?: string }).stderr ?? String(e)}`);
          }
        }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
