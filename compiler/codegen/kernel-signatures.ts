// The extern "C" launchers the kernel templates define, by file. The host-program generator and the
// rendered header (fpdt_kernels.h) both read this table; test/codegen/kernels.test.ts checks that
// every rendered launcher appears here and nothing here is missing from the rendered source.

const S = 'cudaStream_t stream';
const attnFwd = (name: string): string =>
  `cudaError_t ${name}(const void* q, const void* k, const void* v, float* o_acc, float* lse, void* o_out, ` +
  `int Lq, int Lk, int Hq, int Hkv, int q_head_base, int group, float softmax_scale, int causal, int mode, ${S})`;

const attnFwdDocs = (name: string): string =>
  `cudaError_t ${name}(const void* q, const void* k, const void* v, float* o_acc, float* lse, void* o_out, ` +
  `int Lq, int Lk, int Hq, int Hkv, int q_head_base, int group, float softmax_scale, int causal, int mode, const int* q_docs, const int* k_docs, ${S})`;

const attnBwd = (name: string): string =>
  `cudaError_t ${name}(const void* q, const void* k, const void* v, const void* dout, const float* lse, ` +
  'const float* delta, float* dq, float* dk, float* dv, int Lq, int Lk, int Hq, int Hkv, int q_head_base, ' +
  `int group, float softmax_scale, int causal, ${S})`;

const attnBwdDocs = (name: string): string =>
  `cudaError_t ${name}(const void* q, const void* k, const void* v, const void* dout, const float* lse, ` +
  'const float* delta, float* dq, float* dk, float* dv, int Lq, int Lk, int Hq, int Hkv, int q_head_base, ' +
  `int group, float softmax_scale, int causal, const int* q_docs, const int* k_docs, ${S})`;

export const launcherPrototypes: Readonly<Record<string, readonly string[]>> = {
  'attention_fwd.cu': [attnFwd('fpdt_attn_fwd')],
  // sm_90a, head dims 64 and 128 (kernels.ts usesSm90Forward): the wgmma kernel, and the mma.sync one it falls back to
  'attention_fwd_sm90.cu': [attnFwd('fpdt_attn_fwd_sm90'), attnFwd('fpdt_attn_fwd')],
  'attention_fwd_mma.cu': [attnFwd('fpdt_attn_fwd_mma')],
  'attention_bwd.cu': [attnBwd('fpdt_attn_bwd')],
  // sm_90a, head dim 128 (kernels.ts usesSm90Backward): the wgmma kernel, and the mma.sync one it falls back to
  'attention_bwd_sm90.cu': [attnBwd('fpdt_attn_bwd_sm90'), attnBwd('fpdt_attn_bwd')],
  'attention_bwd_mma.cu': [attnBwd('fpdt_attn_bwd_mma')],
  // packed documents (kernels.ts packedFiles): each block reads its q rows' and kv rows' document ids
  'attention_fwd_docs.cu': [attnFwdDocs('fpdt_attn_fwd_docs')],
  // on sm_90a (kernels.ts usesSm90Documents): the wgmma kernel with ids, and the mma.sync one it falls back to
  'attention_fwd_docs_sm90.cu': [attnFwdDocs('fpdt_attn_fwd_docs_sm90'), attnFwdDocs('fpdt_attn_fwd_docs')],
  'attention_fwd_docs_mma.cu': [attnFwdDocs('fpdt_attn_fwd_docs_mma')],
  'attention_bwd_docs.cu': [attnBwdDocs('fpdt_attn_bwd_docs')],
  'attention_bwd_docs_sm90.cu': [attnBwdDocs('fpdt_attn_bwd_docs_sm90'), attnBwdDocs('fpdt_attn_bwd_docs')],
  'attention_bwd_docs_mma.cu': [attnBwdDocs('fpdt_attn_bwd_docs_mma')],
  'rope_pos.cu': [
    `cudaError_t fpdt_rope_fwd_pos(const void* x, void* y, int L, int H, const int* positions, ${S})`,
    `cudaError_t fpdt_rope_bwd_pos(const void* dy, void* dx, int L, int H, const int* positions, ${S})`,
  ],
  'attention_util.cu': [
    `cudaError_t fpdt_attn_acc_init(float* o_acc, float* lse, int L, int H, ${S})`,
    `cudaError_t fpdt_attn_merge(float* o_acc, float* lse, const float* o_b, const float* lse_b, int L, int H, ${S})`,
    `cudaError_t fpdt_attn_finalize(const float* o_acc, void* o, int L, int H, ${S})`,
    `cudaError_t fpdt_attn_bwd_delta(const void* o, const void* dout, float* delta, int L, int H, ${S})`,
  ],
  'norm_rms.cu': [
    `cudaError_t fpdt_rmsnorm_fwd(const void* x, const void* w, void* y, float* rstd, int rows, ${S})`,
    'cudaError_t fpdt_rmsnorm_bwd(const void* x, const void* w, const void* dy, const float* rstd, void* dx, ' +
      `float* dw, int rows, ${S})`,
  ],
  'norm_layer.cu': [
    'cudaError_t fpdt_layernorm_fwd(const void* x, const void* w, const void* b, void* y, float* mean, float* rstd, ' +
      `int rows, ${S})`,
    'cudaError_t fpdt_layernorm_bwd(const void* x, const void* w, const void* dy, const float* mean, ' +
      `const float* rstd, void* dx, float* dw, float* db, int rows, ${S})`,
  ],
  'rope.cu': [
    `cudaError_t fpdt_rope_fwd(const void* x, void* y, int L, int H, long long pos_offset, ${S})`,
    `cudaError_t fpdt_rope_bwd(const void* dy, void* dx, int L, int H, long long pos_offset, ${S})`,
  ],
  'mlp_swiglu.cu': [
    `cudaError_t fpdt_swiglu_fwd(const void* gate, const void* up, void* out, int rows, long long ld_in, ${S})`,
    'cudaError_t fpdt_swiglu_bwd(const void* gate, const void* up, const void* dout, void* dgate, void* dup, ' +
      `int rows, long long ld_in, ${S})`,
  ],
  'mlp_gelu.cu': [
    `cudaError_t fpdt_gelu_fwd(const void* x, void* y, long long n, ${S})`,
    `cudaError_t fpdt_gelu_bwd(const void* x, const void* dy, void* dx, long long n, ${S})`,
  ],
  'embedding.cu': [
    `cudaError_t fpdt_embedding_fwd(const int* ids, const void* table, void* out, int rows, ${S})`,
    `cudaError_t fpdt_embedding_bwd(const int* ids, const void* dout, float* dtable, int rows, ${S})`,
  ],
  'loss.cu': [
    'cudaError_t fpdt_xent_bf16(const void* logits, const int* labels, float* loss_sum, void* dlogits, int rows, ' +
      `float inv_num_valid, ${S})`,
    'cudaError_t fpdt_xent_f32(const float* logits, const int* labels, float* loss_sum, void* dlogits, int rows, ' +
      `float inv_num_valid, ${S})`,
  ],
  'optimizer.cu': [
    'cudaError_t fpdt_adamw(float* params, const float* grads, float* m, float* v, void* bf16_out, long long n, ' +
      'float lr, float beta1, float beta2, float eps, float weight_decay, const float* sqnorm, float max_norm, int step, ' +
      S + ')',
    `cudaError_t fpdt_sqnorm_acc(const float* x, long long n, float* acc, ${S})`,
  ],
  'elementwise.cu': [
    `cudaError_t fpdt_cast_bf16_f32(const void* x, float* y, long long n, ${S})`,
    `cudaError_t fpdt_cast_f32_bf16(const float* x, void* y, long long n, ${S})`,
    `cudaError_t fpdt_fill_f32(float* y, float value, long long n, ${S})`,
    `cudaError_t fpdt_fill_bf16(void* y, float value, long long n, ${S})`,
    `cudaError_t fpdt_zero(void* y, long long bytes, ${S})`,
    `cudaError_t fpdt_add_bf16(const void* a, const void* b, void* y, long long n, ${S})`,
    `cudaError_t fpdt_acc_f32_bf16(float* acc, const void* x, long long n, ${S})`,
  ],
};
