// Kernels of the collectives (see fpdt_comm.h): the all-to-all's head selection (pack for
// NCCL, direct reads for the local world), its inverse with sums over replicated kv heads,
// and sums over ranks for reduce-scatter and all-reduce. One thread per element.
#include <cuda_bf16.h>
#include "fpdt_comm.h"

namespace {
typedef __nv_bfloat16 bf16;

__device__ inline float to_f(float x) { return x; }
__device__ inline float to_f(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ inline T from_f(float x);
template <> __device__ inline float from_f<float>(float x) { return x; }
template <> __device__ inline bf16 from_f<bf16>(float x) { return __float2bfloat16(x); }

template <typename T>
__device__ inline const T* src_of(const fpdt_rank_ptrs& s, int q) {
  return s.base ? (const T*)(s.base + q * s.stride) : (const T*)s.p[q];
}
__device__ inline int head0(const fpdt_a2a_geom& g, int r) { return g.G == 1 ? r * g.hL : (r * g.hqL) / g.G; }

template <typename T>
__global__ void to_heads_kernel(T* dst, fpdt_rank_ptrs src, fpdt_a2a_geom g, int head_rank) {
  const long long total = (long long)g.P * g.c * g.hL * g.d;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const int e = (int)(i % g.d), h = (int)(i / g.d % g.hL);
    const long long row = i / ((long long)g.d * g.hL);
    const int q = (int)(row / g.c), t = (int)(row % g.c);
    const int gh = head0(g, head_rank < 0 ? q : head_rank) + h;
    dst[i] = gh < g.H ? src_of<T>(src, q)[((long long)t * g.H + gh) * g.d + e] : from_f<T>(0.f);
  }
}

template <typename T>
__global__ void to_seq_kernel(T* dst, fpdt_rank_ptrs src, int row0, fpdt_a2a_geom g) {
  const long long total = (long long)g.c * g.H * g.d;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const int e = (int)(i % g.d), gh = (int)(i / g.d % g.H);
    const long long t = i / ((long long)g.d * g.H);
    float acc = 0.f;
    for (int q = 0; q < g.P; q++) {
      const int h = gh - head0(g, q);
      if (h >= 0 && h < g.hL) acc += to_f(src_of<T>(src, q)[((row0 + t) * g.hL + h) * g.d + e]);
    }
    dst[i] = from_f<T>(acc);
  }
}

template <typename T>
__global__ void sum_kernel(T* dst, fpdt_rank_ptrs src, long long offset, int P, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float acc = 0.f;
    for (int q = 0; q < P; q++) acc += to_f(src_of<T>(src, q)[offset + i]);
    dst[i] = from_f<T>(acc);
  }
}

unsigned blocks(long long n) {
  const long long b = (n + 255) / 256;
  return (unsigned)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}
}  // namespace

extern "C" cudaError_t fpdt_a2a_to_heads(void* dst, fpdt_rank_ptrs src, fpdt_a2a_geom g, int head_rank, int elem_bytes, cudaStream_t s) {
  const long long n = (long long)g.P * g.c * g.hL * g.d;
  if (elem_bytes == 4) to_heads_kernel<float><<<blocks(n), 256, 0, s>>>((float*)dst, src, g, head_rank);
  else to_heads_kernel<bf16><<<blocks(n), 256, 0, s>>>((bf16*)dst, src, g, head_rank);
  return cudaGetLastError();
}

extern "C" cudaError_t fpdt_a2a_to_seq(void* dst, fpdt_rank_ptrs src, int row0, fpdt_a2a_geom g, int elem_bytes, cudaStream_t s) {
  const long long n = (long long)g.c * g.H * g.d;
  if (elem_bytes == 4) to_seq_kernel<float><<<blocks(n), 256, 0, s>>>((float*)dst, src, row0, g);
  else to_seq_kernel<bf16><<<blocks(n), 256, 0, s>>>((bf16*)dst, src, row0, g);
  return cudaGetLastError();
}

extern "C" cudaError_t fpdt_sum_ranks(void* dst, fpdt_rank_ptrs src, long long offset, int P, long long n, int elem_bytes, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  if (elem_bytes == 4) sum_kernel<float><<<blocks(n), 256, 0, s>>>((float*)dst, src, offset, P, n);
  else sum_kernel<bf16><<<blocks(n), 256, 0, s>>>((bf16*)dst, src, offset, P, n);
  return cudaGetLastError();
}
