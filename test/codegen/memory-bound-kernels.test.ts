// The memory-bound kernels' rendered shape: 16-byte accesses through vector.cuh, RoPE's pairs per access
// from the rotary dim (kernels.ts bf16VectorWidth), the norms' backward rows a CTA (norm_bwd.cuh). Their numbers are checked on a GPU by
// test/gpu/kernels/check_kernels.py and timed by test/bench/elementwise.py.
import { expect } from 'chai';
import { bf16VectorWidth, renderKernels, type KernelSpec } from '../../compiler/codegen/kernels.js';
import { gptSpec, llamaSpec } from '../gpu/kernels/specs.js';

const fileOf = (spec: KernelSpec, name: string): string => renderKernels(spec).find((f) => f.file === name)!.text;

describe('codegen: memory-bound kernels', () => {
  it('takes the widest bf16 access of at most 16 bytes that divides the count', () => {
    expect([64, 16, 12, 10, 9, 1].map(bf16VectorWidth)).to.deep.equal([8, 8, 4, 2, 1, 1]);
  });

  it('renders RoPE with the pairs per access of its rotary dim, sin/cos once per row and frequency', () => {
    expect(fileOf(llamaSpec, 'rope.cu')).to.contain('constexpr int V = 8;').and.contain('sincospif(');
    expect(fileOf({ ...gptSpec, rotaryDim: 24 }, 'rope.cu')).to.contain('constexpr int V = 4;');
    expect(fileOf({ ...gptSpec, rotaryDim: 20, headDim: 96 }, 'rope.cu')).to.contain('constexpr int V = 2;');
    expect(fileOf({ ...gptSpec, packed: true }, 'rope_pos.cu')).to.contain('constexpr int V = 8;');
  });

  it('moves the fp32 element-wise operands 4 a vector (16 bytes a lane)', () => {
    const text = fileOf(llamaSpec, 'elementwise.cu');
    for (const op of ['CastBf16F32', 'CastF32Bf16', 'FillF32', 'AccF32Bf16'])
      expect(text.slice(text.indexOf(`struct ${op} {`)).split('};')[0], op).to.contain('static constexpr int N = 4, UNROLL = 4;');
    expect(text.slice(text.indexOf('struct AddBf16 {')).split('};')[0]).not.to.contain('constexpr int N');
  });

  it('renders the norms\' backward with 256 threads a CTA, one row a slot of the forward\'s threads', () => {
    // hidden 4096: 256 threads a row, one row a CTA; hidden 1536: 128 threads, two rows
    expect(fileOf(llamaSpec, 'norm_rms.cu')).to.contain('constexpr int NT = 256;').and.contain('constexpr int SLOTS = 1;')
      .and.contain('#ifndef FPDT_NORM_BWD_CUH');
    expect(fileOf(gptSpec, 'norm_layer.cu')).to.contain('constexpr int NT = 128;').and.contain('constexpr int SLOTS = 2;')
      .and.contain('cta_add_columns(db, db_part, H, SLOTS);');
  });

  it('runs the element-wise kernels and activations through the vector loop', () => {
    for (const [spec, file] of [[llamaSpec, 'elementwise.cu'], [llamaSpec, 'mlp_swiglu.cu'], [gptSpec, 'mlp_gelu.cu']] as const) {
      const text = fileOf(spec, file);
      expect(text, file).to.contain('vec_loop<Op><<<').and.contain('fpdt_vec_launch(');
      expect(text.match(/#ifndef FPDT_VECTOR_CUH/g), file).to.have.length(1);
    }
  });
});
