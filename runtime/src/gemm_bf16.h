// Row-major bf16 GEMM on cuBLASLt for generated programs:
//   C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n]
// bf16 inputs, fp32 accumulation, C/D in bf16 or fp32 (beta != 0 accumulates).
// cuBLASLt is column-major; a row-major product is computed as the
// column-major product C^T = op(B)^T * op(A)^T on the same buffers.
#ifndef FPDT_GEMM_BF16_H
#define FPDT_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fpdt_gemm_out { FPDT_GEMM_OUT_BF16 = 0, FPDT_GEMM_OUT_F32 = 1 } fpdt_gemm_out;

// One column-major operand as cuBLASLt sees it.
typedef struct fpdt_colmajor_operand {
  int op;  // FPDT_CUBLAS_OP_N or FPDT_CUBLAS_OP_T
  int64_t rows, cols, ld;
} fpdt_colmajor_operand;

// The column-major call that computes a row-major GEMM: D = first * second.
typedef struct fpdt_gemm_plan {
  fpdt_colmajor_operand first;   // the B buffer
  fpdt_colmajor_operand second;  // the A buffer
  int64_t out_rows, out_cols, out_ld;  // n, m, ldc
} fpdt_gemm_plan;

// Pure: checks sizes and leading dimensions and fills plan. Returns an
// fpdt_status; msg says which argument is wrong.
int fpdt_gemm_plan_rowmajor(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                            int64_t lda, int64_t ldb, int64_t ldc, fpdt_gemm_plan* plan,
                            char* msg, size_t cap);

// A cuBLASLt handle, a workspace and a cache of descriptors and algorithms.
// Use one per stream: calls on one fpdt_gemm share its workspace.
typedef struct fpdt_gemm fpdt_gemm;

// Opens cuBLASLt (FPDT_CUBLASLT) and allocates workspace_bytes on the current device.
int fpdt_gemm_create(fpdt_gemm** out, size_t workspace_bytes, char* msg, size_t cap);
void fpdt_gemm_destroy(fpdt_gemm* g);
const char* fpdt_gemm_last_error(const fpdt_gemm* g);

// A is [m,k] (lda >= k), or [k,m] with trans_a (lda >= m); B is [k,n]
// (ldb >= n), or [n,k] with trans_b (ldb >= k); C is [m,n] (ldc >= n), of
// out_type. Asynchronous on `stream`. Returns an fpdt_status.
int fpdt_gemm_bf16(fpdt_gemm* g, cudaStream_t stream, int trans_a, int trans_b, int64_t m,
                   int64_t n, int64_t k, float alpha, const void* a, int64_t lda, const void* b,
                   int64_t ldb, float beta, void* c, int64_t ldc, fpdt_gemm_out out_type);

#ifdef __cplusplus
}
#endif

#endif  // FPDT_GEMM_BF16_H
