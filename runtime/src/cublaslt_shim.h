// cuBLASLt opened at run time with dlopen (libcublasLt.so.13, then
// libcublasLt.so; FPDT_CUBLASLT overrides the path). The declarations are our
// own and cover only the entry points the runtime uses; the enum values match
// cuBLAS 13's cublasLt.h and library_types.h.
#ifndef FPDT_CUBLASLT_SHIM_H
#define FPDT_CUBLASLT_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int fpdt_cublas_status;  // cublasStatus_t; 0 is success
enum {
  FPDT_CUBLAS_STATUS_SUCCESS = 0,
  FPDT_CUBLAS_STATUS_NOT_SUPPORTED = 15,
};

typedef struct fpdt_lt_context_s* fpdt_lt_handle;        // cublasLtHandle_t
typedef struct fpdt_lt_matmul_desc_s* fpdt_lt_matmul_desc;  // cublasLtMatmulDesc_t
typedef struct fpdt_lt_layout_s* fpdt_lt_layout;         // cublasLtMatrixLayout_t
typedef struct fpdt_lt_preference_s* fpdt_lt_preference;  // cublasLtMatmulPreference_t

// cudaDataType_t
enum { FPDT_CUDA_R_32F = 0, FPDT_CUDA_R_16F = 2, FPDT_CUDA_R_16BF = 14 };
// cublasComputeType_t
enum { FPDT_CUBLAS_COMPUTE_32F = 68 };
// cublasOperation_t
enum { FPDT_CUBLAS_OP_N = 0, FPDT_CUBLAS_OP_T = 1 };
// cublasLtMatmulDescAttributes_t
enum { FPDT_LT_DESC_TRANSA = 3, FPDT_LT_DESC_TRANSB = 4 };
// cublasLtMatrixLayoutAttribute_t
enum { FPDT_LT_LAYOUT_BATCH_COUNT = 5, FPDT_LT_LAYOUT_STRIDED_BATCH_OFFSET = 6 };
// cublasLtMatmulPreferenceAttributes_t
enum { FPDT_LT_PREF_MAX_WORKSPACE_BYTES = 1 };

typedef struct fpdt_lt_algo {  // cublasLtMatmulAlgo_t
  uint64_t data[8];
} fpdt_lt_algo;

typedef struct fpdt_lt_heuristic {  // cublasLtMatmulHeuristicResult_t
  fpdt_lt_algo algo;
  size_t workspace_size;
  fpdt_cublas_status state;
  float waves_count;
  int reserved[4];
} fpdt_lt_heuristic;

typedef struct fpdt_cublaslt {
  fpdt_cublas_status (*create)(fpdt_lt_handle* handle);
  fpdt_cublas_status (*destroy)(fpdt_lt_handle handle);
  fpdt_cublas_status (*matmul_desc_create)(fpdt_lt_matmul_desc* desc, int compute_type,
                                           int scale_type);
  fpdt_cublas_status (*matmul_desc_set_attribute)(fpdt_lt_matmul_desc desc, int attr,
                                                  const void* buf, size_t size);
  fpdt_cublas_status (*matmul_desc_destroy)(fpdt_lt_matmul_desc desc);
  fpdt_cublas_status (*layout_create)(fpdt_lt_layout* layout, int type, uint64_t rows,
                                      uint64_t cols, int64_t ld);
  fpdt_cublas_status (*layout_set_attribute)(fpdt_lt_layout layout, int attr, const void* buf,
                                             size_t size);
  fpdt_cublas_status (*layout_destroy)(fpdt_lt_layout layout);
  fpdt_cublas_status (*preference_create)(fpdt_lt_preference* pref);
  fpdt_cublas_status (*preference_set_attribute)(fpdt_lt_preference pref, int attr,
                                                 const void* buf, size_t size);
  fpdt_cublas_status (*preference_destroy)(fpdt_lt_preference pref);
  fpdt_cublas_status (*heuristic)(fpdt_lt_handle handle, fpdt_lt_matmul_desc desc,
                                  fpdt_lt_layout a, fpdt_lt_layout b, fpdt_lt_layout c,
                                  fpdt_lt_layout d, fpdt_lt_preference pref, int requested,
                                  fpdt_lt_heuristic* results, int* returned);
  fpdt_cublas_status (*matmul)(fpdt_lt_handle handle, fpdt_lt_matmul_desc desc,
                               const void* alpha, const void* a, fpdt_lt_layout a_layout,
                               const void* b, fpdt_lt_layout b_layout, const void* beta,
                               const void* c, fpdt_lt_layout c_layout, void* d,
                               fpdt_lt_layout d_layout, const fpdt_lt_algo* algo,
                               void* workspace, size_t workspace_size, cudaStream_t stream);
  const char* (*status_string)(fpdt_cublas_status status);  // optional: may be NULL
} fpdt_cublaslt;

// Opens the library once per process (thread-safe). Returns the table, or
// NULL with a one-line message naming the library and FPDT_CUBLASLT.
const fpdt_cublaslt* fpdt_cublaslt_load(char* msg, size_t cap);

// Name of a cublasStatus_t for messages, e.g. "CUBLAS_STATUS_NOT_SUPPORTED".
const char* fpdt_cublas_status_name(fpdt_cublas_status status);

#ifdef __cplusplus
}
#endif

#endif  // FPDT_CUBLASLT_SHIM_H
