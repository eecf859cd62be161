// The row-major -> column-major mapping of fpdt_gemm_bf16, kept apart from
// cuBLASLt so it can be checked on a CPU.
#include <stdio.h>

#include "cublaslt_shim.h"
#include "fpdt_abi.h"
#include "gemm_bf16.h"

extern "C" int fpdt_gemm_plan_rowmajor(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                                       int64_t lda, int64_t ldb, int64_t ldc,
                                       fpdt_gemm_plan* plan, char* msg, size_t cap) {
  if (m <= 0 || n <= 0 || k <= 0) {
    if (msg) snprintf(msg, cap, "fpdt_gemm_bf16: sizes m=%lld n=%lld k=%lld must be positive",
                      (long long)m, (long long)n, (long long)k);
    return FPDT_ERR_INVALID_ARGUMENT;
  }
  // Row-major X[r,c] with leading dimension ld is the column-major X^T (c x r).
  int64_t a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
  const char* bad = nullptr;
  int64_t have = 0, need = 0;
  if (lda < a_cols) bad = "lda", have = lda, need = a_cols;
  else if (ldb < b_cols) bad = "ldb", have = ldb, need = b_cols;
  else if (ldc < n) bad = "ldc", have = ldc, need = n;
  if (bad) {
    if (msg) snprintf(msg, cap, "fpdt_gemm_bf16: %s=%lld is below the row length %lld; pass %s >= %lld",
                      bad, (long long)have, (long long)need, bad, (long long)need);
    return FPDT_ERR_INVALID_ARGUMENT;
  }
  // C^T (n x m) = op(B)^T (n x k) * op(A)^T (k x m).
  // B buffer seen column-major is (b_cols x b_rows): op(B)^T when not transposed.
  plan->first.op = trans_b ? FPDT_CUBLAS_OP_T : FPDT_CUBLAS_OP_N;
  plan->first.rows = b_cols;
  plan->first.cols = trans_b ? n : k;
  plan->first.ld = ldb;
  plan->second.op = trans_a ? FPDT_CUBLAS_OP_T : FPDT_CUBLAS_OP_N;
  plan->second.rows = a_cols;
  plan->second.cols = trans_a ? k : m;
  plan->second.ld = lda;
  plan->out_rows = n;
  plan->out_cols = m;
  plan->out_ld = ldc;
  if (msg && cap) msg[0] = '\0';
  return FPDT_OK;
}
