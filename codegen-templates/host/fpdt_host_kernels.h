// Launchers of host_kernels.cu (rendered per model beside program.cu). Same conventions as the
// kernel library: bf16 as void*, stream last, the launch status returned.
#pragma once
#include <cuda_runtime.h>
#ifdef __cplusplus
extern "C" {
#endif
cudaError_t fpdt_host_bias_add(void* y, const void* b, int rows, int cols, cudaStream_t s);
cudaError_t fpdt_host_bias_grad(const void* dy, float* db, int rows, int cols, cudaStream_t s);
cudaError_t fpdt_host_rms_stats(const void* x, float* rstd, int rows, int dim, float eps, cudaStream_t s);
cudaError_t fpdt_host_ln_stats(const void* x, float* mean, float* rstd, int rows, int dim, float eps, cudaStream_t s);
/* y[i] += x[i] (fp32): a micro step's reduced gradient added into the accumulated shard. */
cudaError_t fpdt_host_add_f32(float* y, const float* x, long long n, cudaStream_t s);
/* Elements [first, first + n) of a parameter's seeded init: the same values whatever the sharding. */
cudaError_t fpdt_host_init(float* master, void* param, long long n, long long first, unsigned long long seed, int kind, float std, cudaStream_t s);
#ifdef __cplusplus
}
#endif
