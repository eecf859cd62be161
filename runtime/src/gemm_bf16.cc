#include "gemm_bf16.h"

#include <stdio.h>
#include <string.h>

#include "cublaslt_shim.h"
#include "cuda_errors.h"
#include "fpdt_abi.h"

namespace {

constexpr int kCacheSlots = 64;

struct PlanKey {
  int trans_a, trans_b, out_type, accumulate;
  int64_t m, n, k, lda, ldb, ldc;
  bool operator==(const PlanKey& o) const { return memcmp(this, &o, sizeof o) == 0; }
};

struct CachedPlan {
  bool used = false;
  PlanKey key{};
  fpdt_lt_matmul_desc desc = nullptr;
  fpdt_lt_layout first = nullptr, second = nullptr, out = nullptr;
  fpdt_lt_algo algo{};
};

}  // namespace

struct fpdt_gemm {
  const fpdt_cublaslt* lt = nullptr;
  fpdt_lt_handle handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  CachedPlan cache[kCacheSlots];
  int next_victim = 0;
  char error[1024] = "";
};

namespace {

void releasePlan(const fpdt_cublaslt* lt, CachedPlan& p) {
  if (p.desc) lt->matmul_desc_destroy(p.desc);
  if (p.first) lt->layout_destroy(p.first);
  if (p.second) lt->layout_destroy(p.second);
  if (p.out) lt->layout_destroy(p.out);
  p = CachedPlan{};
}

int fail(fpdt_gemm* g, int status, const char* fmt, const char* what, int code) {
  snprintf(g->error, sizeof g->error, fmt, what, code, fpdt_cublas_status_name(code));
  return status;
}

// Builds descriptors and picks an algorithm for `key`; fills slot.
int buildPlan(fpdt_gemm* g, const PlanKey& key, const fpdt_gemm_plan& plan, CachedPlan& slot) {
  const fpdt_cublaslt* lt = g->lt;
  const char* fmt = "cuBLASLt error: %s failed with status %d (%s) for a bf16 GEMM";
  int out_dtype = key.out_type == FPDT_GEMM_OUT_F32 ? FPDT_CUDA_R_32F : FPDT_CUDA_R_16BF;
  int s = lt->matmul_desc_create(&slot.desc, FPDT_CUBLAS_COMPUTE_32F, FPDT_CUDA_R_32F);
  if (s) return fail(g, FPDT_ERR_CUBLAS, fmt, "cublasLtMatmulDescCreate", s);
  int op_first = plan.first.op, op_second = plan.second.op;
  s = lt->matmul_desc_set_attribute(slot.desc, FPDT_LT_DESC_TRANSA, &op_first, sizeof op_first);
  if (!s) s = lt->matmul_desc_set_attribute(slot.desc, FPDT_LT_DESC_TRANSB, &op_second,
                                            sizeof op_second);
  if (s) return fail(g, FPDT_ERR_CUBLAS, fmt, "cublasLtMatmulDescSetAttribute", s);
  s = lt->layout_create(&slot.first, FPDT_CUDA_R_16BF, plan.first.rows, plan.first.cols,
                        plan.first.ld);
  if (!s) s = lt->layout_create(&slot.second, FPDT_CUDA_R_16BF, plan.second.rows,
                                plan.second.cols, plan.second.ld);
  if (!s) s = lt->layout_create(&slot.out, out_dtype, plan.out_rows, plan.out_cols, plan.out_ld);
  if (s) return fail(g, FPDT_ERR_CUBLAS, fmt, "cublasLtMatrixLayoutCreate", s);

  fpdt_lt_preference pref = nullptr;
  s = lt->preference_create(&pref);
  if (s) return fail(g, FPDT_ERR_CUBLAS, fmt, "cublasLtMatmulPreferenceCreate", s);
  size_t ws = g->workspace_bytes;
  s = lt->preference_set_attribute(pref, FPDT_LT_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  fpdt_lt_heuristic result{};
  int returned = 0;
  if (!s) s = lt->heuristic(g->handle, slot.desc, slot.first, slot.second, slot.out, slot.out,
                            pref, 1, &result, &returned);
  lt->preference_destroy(pref);
  if (s) return fail(g, FPDT_ERR_CUBLAS, fmt, "cublasLtMatmulAlgoGetHeuristic", s);
  if (returned == 0) {
    snprintf(g->error, sizeof g->error,
             "cuBLASLt error: no algorithm for a bf16 GEMM m=%lld n=%lld k=%lld (lda=%lld ldb=%lld "
             "ldc=%lld); use leading dimensions that are multiples of 8",
             (long long)key.m, (long long)key.n, (long long)key.k, (long long)key.lda,
             (long long)key.ldb, (long long)key.ldc);
    return FPDT_ERR_CUBLAS;
  }
  slot.algo = result.algo;
  slot.key = key;
  slot.used = true;
  return FPDT_OK;
}

}  // namespace

extern "C" int fpdt_gemm_create(fpdt_gemm** out, size_t workspace_bytes, char* msg, size_t cap) {
  if (!out) {
    if (msg) snprintf(msg, cap, "fpdt_gemm_create: out is NULL");
    return FPDT_ERR_INVALID_ARGUMENT;
  }
  *out = nullptr;
  const fpdt_cublaslt* lt = fpdt_cublaslt_load(msg, cap);
  if (!lt) return FPDT_ERR_LIBRARY;
  fpdt_gemm* g = new fpdt_gemm();
  g->lt = lt;
  int s = lt->create(&g->handle);
  if (s) {
    if (msg) snprintf(msg, cap, "cuBLASLt error: cublasLtCreate failed with status %d (%s)", s,
                      fpdt_cublas_status_name(s));
    delete g;
    return FPDT_ERR_CUBLAS;
  }
  if (workspace_bytes) {
    cudaError_t err = cudaMalloc(&g->workspace, workspace_bytes);
    if (err != cudaSuccess) {
      int status = fpdt_cuda_describe(err, "allocating the cuBLASLt workspace", msg, cap);
      lt->destroy(g->handle);
      delete g;
      return status;
    }
    g->workspace_bytes = workspace_bytes;
  }
  *out = g;
  return FPDT_OK;
}

extern "C" void fpdt_gemm_destroy(fpdt_gemm* g) {
  if (!g) return;
  for (CachedPlan& p : g->cache)
    if (p.used) releasePlan(g->lt, p);
  if (g->workspace) cudaFree(g->workspace);
  if (g->handle) g->lt->destroy(g->handle);
  delete g;
}

extern "C" const char* fpdt_gemm_last_error(const fpdt_gemm* g) { return g ? g->error : ""; }

extern "C" int fpdt_gemm_bf16(fpdt_gemm* g, cudaStream_t stream, int trans_a, int trans_b,
                              int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                              int64_t lda, const void* b, int64_t ldb, float beta, void* c,
                              int64_t ldc, fpdt_gemm_out out_type) {
  if (!g) return FPDT_ERR_INVALID_ARGUMENT;
  fpdt_gemm_plan plan;
  int status = fpdt_gemm_plan_rowmajor(trans_a, trans_b, m, n, k, lda, ldb, ldc, &plan, g->error,
                                       sizeof g->error);
  if (status) return status;
  PlanKey key{};  // zeroed padding keeps memcmp meaningful
  key.trans_a = trans_a ? 1 : 0;
  key.trans_b = trans_b ? 1 : 0;
  key.out_type = (int)out_type;
  key.accumulate = beta != 0.0f;
  key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldc = ldc;

  CachedPlan* slot = nullptr;
  for (CachedPlan& p : g->cache)
    if (p.used && p.key == key) { slot = &p; break; }
  if (!slot) {
    slot = &g->cache[g->next_victim];
    g->next_victim = (g->next_victim + 1) % kCacheSlots;
    if (slot->used) releasePlan(g->lt, *slot);
    status = buildPlan(g, key, plan, *slot);
    if (status) {
      releasePlan(g->lt, *slot);
      return status;
    }
  }
  // Column-major D = first * second: first is the B buffer, second the A buffer.
  int s = g->lt->matmul(g->handle, slot->desc, &alpha, b, slot->first, a, slot->second, &beta, c,
                        slot->out, c, slot->out, &slot->algo, g->workspace, g->workspace_bytes,
                        stream);
  if (s) return fail(g, FPDT_ERR_CUBLAS, "cuBLASLt error: %s failed with status %d (%s)",
                     "cublasLtMatmul", s);
  return FPDT_OK;
}
