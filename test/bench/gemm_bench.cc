// The C side of test/bench/gemm.py, built there with runtime/src's gemm_bf16.cc, gemm_plan.cc,
// cublaslt_shim.cc, dl_library.cc and cuda_errors.cc into one shared library. Python calls the
// runtime's own fpdt_gemm_create / fpdt_gemm_bf16 (exported as they are) for "ours", and the entries
// below for the same row-major GEMM run with each of cuBLASLt's top-N heuristic algorithms: the
// same descriptors (fpdt_gemm_plan_rowmajor's mapping), the same workspace limit, so candidate i is
// what the runtime would run had the heuristic ranked it first.
#include <stdio.h>
#include <string.h>

#include "cublaslt_shim.h"
#include "dl_library.h"
#include "fpdt_abi.h"
#include "gemm_bf16.h"

namespace {

constexpr int kMaxCandidates = 64;
// cublasLtMatmulAlgoConfigAttributes_t (cublasLt.h): values and sizes
enum { kConfigId = 0, kConfigTile = 1, kConfigSplitK = 2, kConfigStages = 6, kConfigCluster = 8 };
using ConfigGetFn = int (*)(const fpdt_lt_algo*, int, void*, size_t, size_t*);

ConfigGetFn configGetter() {
  // Optional: only to describe the candidates. Opens the library the shim opened.
  static ConfigGetFn fn = [] {
    static const char* const names[] = {"libcublasLt.so.13", "libcublasLt.so"};
    char msg[512];
    void* lib = fpdt_dl_open("cuBLASLt", "FPDT_CUBLASLT", names, 2, msg, sizeof msg);
    return lib ? reinterpret_cast<ConfigGetFn>(fpdt_dl_symbol(lib, "cuBLASLt", "FPDT_CUBLASLT",
                                                                "cublasLtMatmulAlgoConfigGetAttribute",
                                                                msg, sizeof msg))
               : nullptr;
  }();
  return fn;
}

}  // namespace

struct fpdt_gemm_candidates {
  const fpdt_cublaslt* lt = nullptr;
  fpdt_lt_handle handle = nullptr;
  fpdt_lt_matmul_desc desc = nullptr;
  fpdt_lt_layout first = nullptr, second = nullptr, out = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  fpdt_lt_heuristic results[kMaxCandidates];
  int count = 0;
  int top1 = -1;  // which candidate a request for one algorithm (the runtime's) returns
};

extern "C" void fpdt_bench_candidates_destroy(fpdt_gemm_candidates* c) {
  if (!c) return;
  if (c->desc) c->lt->matmul_desc_destroy(c->desc);
  if (c->first) c->lt->layout_destroy(c->first);
  if (c->second) c->lt->layout_destroy(c->second);
  if (c->out) c->lt->layout_destroy(c->out);
  if (c->handle) c->lt->destroy(c->handle);
  delete c;
}

static int heuristic(fpdt_gemm_candidates* c, int requested, fpdt_lt_heuristic* results, int* returned) {
  fpdt_lt_preference pref = nullptr;
  int s = c->lt->preference_create(&pref);
  if (s) return s;
  size_t ws = c->workspace_bytes;
  s = c->lt->preference_set_attribute(pref, FPDT_LT_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  if (!s) s = c->lt->heuristic(c->handle, c->desc, c->first, c->second, c->out, c->out, pref,
                               requested, results, returned);
  c->lt->preference_destroy(pref);
  return s;
}

// Up to `requested` candidates for a GEMM of fpdt_gemm_bf16's arguments; `workspace` (device
// memory of workspace_bytes) is what every candidate runs with.
extern "C" int fpdt_bench_candidates_create(fpdt_gemm_candidates** out, int trans_a, int trans_b,
                                            int64_t m, int64_t n, int64_t k, int64_t lda,
                                            int64_t ldb, int64_t ldc, int out_type, int requested,
                                            void* workspace, size_t workspace_bytes, char* msg,
                                            size_t cap) {
  *out = nullptr;
  fpdt_gemm_plan plan;
  int status = fpdt_gemm_plan_rowmajor(trans_a, trans_b, m, n, k, lda, ldb, ldc, &plan, msg, cap);
  if (status) return status;
  const fpdt_cublaslt* lt = fpdt_cublaslt_load(msg, cap);
  if (!lt) return FPDT_ERR_LIBRARY;
  auto* c = new fpdt_gemm_candidates();
  c->lt = lt;
  c->workspace = workspace;
  c->workspace_bytes = workspace_bytes;
  const char* what = "cublasLtCreate";
  int s = lt->create(&c->handle);
  int op_first = plan.first.op, op_second = plan.second.op;
  int out_dtype = out_type == FPDT_GEMM_OUT_F32 ? FPDT_CUDA_R_32F : FPDT_CUDA_R_16BF;
  if (!s) what = "cublasLtMatmulDescCreate", s = lt->matmul_desc_create(&c->desc, FPDT_CUBLAS_COMPUTE_32F, FPDT_CUDA_R_32F);
  if (!s) what = "cublasLtMatmulDescSetAttribute", s = lt->matmul_desc_set_attribute(c->desc, FPDT_LT_DESC_TRANSA, &op_first, sizeof op_first);
  if (!s) s = lt->matmul_desc_set_attribute(c->desc, FPDT_LT_DESC_TRANSB, &op_second, sizeof op_second);
  if (!s) what = "cublasLtMatrixLayoutCreate", s = lt->layout_create(&c->first, FPDT_CUDA_R_16BF, plan.first.rows, plan.first.cols, plan.first.ld);
  if (!s) s = lt->layout_create(&c->second, FPDT_CUDA_R_16BF, plan.second.rows, plan.second.cols, plan.second.ld);
  if (!s) s = lt->layout_create(&c->out, out_dtype, plan.out_rows, plan.out_cols, plan.out_ld);
  if (requested > kMaxCandidates) requested = kMaxCandidates;
  if (!s) what = "cublasLtMatmulAlgoGetHeuristic", s = heuristic(c, requested, c->results, &c->count);
  fpdt_lt_heuristic first{};
  int one = 0;
  if (!s) s = heuristic(c, 1, &first, &one);
  if (s) {
    snprintf(msg, cap, "cuBLASLt error: %s failed with status %d (%s)", what, s, fpdt_cublas_status_name(s));
    fpdt_bench_candidates_destroy(c);
    return FPDT_ERR_CUBLAS;
  }
  for (int i = 0; one && i < c->count && c->top1 < 0; i++)
    if (memcmp(&c->results[i].algo, &first.algo, sizeof first.algo) == 0) c->top1 = i;
  *out = c;
  return FPDT_OK;
}

extern "C" int fpdt_bench_candidates_count(const fpdt_gemm_candidates* c) { return c->count; }
extern "C" int fpdt_bench_candidates_top1(const fpdt_gemm_candidates* c) { return c->top1; }

// What the heuristic says of candidate i; info = {algo id, tile id, split-k, stages id, cluster
// shape id} (-1 where cuBLASLt does not say), workspace bytes and waves.
extern "C" int fpdt_bench_candidate_info(const fpdt_gemm_candidates* c, int i, int64_t* info,
                                         size_t* workspace, float* waves) {
  if (i < 0 || i >= c->count) return FPDT_ERR_INVALID_ARGUMENT;
  const fpdt_lt_heuristic& r = c->results[i];
  *workspace = r.workspace_size;
  *waves = r.waves_count;
  static const int attrs[] = {kConfigId, kConfigTile, kConfigSplitK, kConfigStages, kConfigCluster};
  static const size_t sizes[] = {4, 4, 4, 4, 2};
  ConfigGetFn get = configGetter();
  for (int a = 0; a < 5; a++) {
    uint32_t v = 0;
    size_t written = 0;
    info[a] = get && get(&r.algo, attrs[a], &v, sizes[a], &written) == 0 ? (int64_t)v : -1;
  }
  return FPDT_OK;
}

// C[m,n] = alpha * op(A) * op(B) + beta * C with candidate i, on `stream` (fpdt_gemm_bf16's buffers).
extern "C" int fpdt_bench_candidate_run(const fpdt_gemm_candidates* c, int i, cudaStream_t stream,
                                        float alpha, const void* a, const void* b, float beta,
                                        void* out) {
  if (i < 0 || i >= c->count) return FPDT_ERR_INVALID_ARGUMENT;
  // Column-major D = first * second: first is the B buffer, second the A buffer.
  int s = c->lt->matmul(c->handle, c->desc, &alpha, b, c->first, a, c->second, &beta, out, c->out,
                        out, c->out, &c->results[i].algo, c->workspace, c->workspace_bytes, stream);
  return s ? FPDT_ERR_CUBLAS : FPDT_OK;
}
