// fa_bwd_sm90.cu: FlashAttention-style backward for Hopper (sm_90a), head dim 128, bf16 in/out.
//
// Standalone; our own code, after the FlashAttention-3 backward design. Same layouts as fa_fwd_sm90.cu:
//   Q, O, dO [s, h, 128] bf16; K, V [s, h_kv, 128] bf16; LSE [h, s] fp32 (natural log, from the forward);
//   outputs dQ [s, h, 128] bf16, dK, dV [s, h_kv, 128] bf16. scale = 1/sqrt(128). GQA: query head hq
//   uses kv head hq / (h / h_kv); dK/dV of a kv head are summed over its query heads.
//   Causal (query i sees keys j <= i, s_q == s_k) or not (s_q == s_k here too).
//
// Three kernels, in fa_bwd_sm90():
//   1. prep: delta[hq, i] = sum_d dO[i,hq,d] * O[i,hq,d] (fp32) and lse2[hq, i] = LSE * log2(e), both
//      [h, s_pad] (s_pad = s rounded up to 64; padded rows get lse2 = +inf, delta = 0, so their P is 0);
//      the fp32 dQ accumulator [s, h, 128] is zeroed by cudaMemsetAsync before.
//   2. main: one CTA per (kv head, 128 kv rows), 384 threads = 3 warpgroups, looping over the group's
//      query heads and, per head, over the 64-row q tiles that see the kv tile (causal: q tiles from
//      the diagonal on). dK/dV stay in registers for the whole loop (no atomics, deterministic).
//        warpgroup 0 producer: K and V once, then Q+LSE and dO+delta tiles into a ST-deep mbarrier
//          ring (TMA: cp.async.bulk.tensor for Q/dO with 128B swizzle, cp.async.bulk for the 256-byte
//          LSE/delta rows). setmaxnreg.dec 24.
//        warpgroups 1, 2 consumers, 64 kv rows each (setmaxnreg.inc 240), per q tile:
//          S^T  = K_c Q^T        wgmma m64n64k16 SS (8 k-steps over d)
//          dP^T = V_c dO^T       wgmma m64n64k16 SS
//          P^T  = exp2(S^T * scale*log2e - lse2[q])   (causal / kv >= s masked to 0)
//          dV  += P^T dO         wgmma m64n128k16 RS: P^T is an accumulator of m64n64, whose layout is
//                                the RS A-fragment layout (kv rows = M), so no shuffles, no smem
//          dS^T = P^T * (dP^T - delta[q])
//          dK  += dS^T Q         wgmma m64n128k16 RS (A = dS^T from registers)
//          dS^T -> shared memory (bf16, [128 kv][64 q], q contiguous, 128B swizzle, double buffered),
//          fence.proxy.async, named barrier of the 256 consumer threads, then
//          dQ_c = dS K[:, 64c:64c+64]   wgmma m64n64k16 SS, A = dS MN-major (trans-a), B = K MN-major
//          (trans-b): warpgroup c makes 64 of the 128 d columns of dQ for the whole 64-row q tile,
//          added to the fp32 accumulator with float2 atomics (red.global.add.v2.f32).
//        epilogue: dV, scale*dK to bf16 straight from registers.
//      Computing S and dP transposed (kv rows as M) is what lets P^T and dS^T feed the dV/dK wgmmas
//      from registers; dQ needs dS with q as M, which only shared memory can provide.
//   3. convert: dQ = bf16(scale * dQ_acc).
// Workspace (fa_bwd_sm90_workspace_bytes): dQ_acc fp32 [s, h, 128], lse2 and delta fp32 [h, s_pad].
#include <cuda.h>  // CUtensorMap and its enums only: the driver entry point comes via cudart
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#ifndef FA_SM90_HANG_TRAP
#define FA_SM90_HANG_TRAP 1  // give up (and count it) instead of hanging if an mbarrier never completes
#endif

namespace fa90b {

constexpr int kD = 128;                 // head dim
constexpr int kBN = 128;                // kv rows per CTA (2 consumer warpgroups x 64)
constexpr int kBM = 64;                 // q rows per tile
constexpr int kThreads = 384;           // 3 warpgroups
constexpr int kConsumerThreads = 256;
constexpr int kKV = kBN * kD * 2;       // bytes of the K or V tile (32768)
constexpr int kKVHalf = kBN * 64 * 2;   // one 64-column half of it (16384)
constexpr int kQT = kBM * kD * 2;       // bytes of a Q or dO tile (16384)
constexpr int kQHalf = kBM * 64 * 2;    // one 64-column half of it (8192)
constexpr int kDS = kBN * kBM * 2;      // bytes of a dS^T tile [128 kv][64 q] (16384)
constexpr int kVec = kBM * 4;           // bytes of a 64-entry lse2 / delta row (256)

template <int ST>
struct SmemLayout {
  static constexpr int k = 0;
  static constexpr int v = kKV;
  static constexpr int q = 2 * kKV;                 // ST Q tiles
  static constexpr int dO = q + ST * kQT;           // ST dO tiles
  static constexpr int ds = dO + ST * kQT;          // 2 dS^T tiles
  static constexpr int lse = ds + 2 * kDS;          // ST lse2 rows
  static constexpr int delta = lse + ST * kVec;     // ST delta rows
  static constexpr int bar = delta + ST * kVec;     // mbarriers
  static constexpr int nbar = 1 + 4 * ST;           // kv, full_q[ST], full_do[ST], empty_q[ST], empty_do[ST]
  static constexpr int bytes = bar + 8 * nbar;
  static constexpr int alloc = bytes + 1024;        // slack for aligning the base to 1024
};

struct Params {
  __nv_bfloat16* dk;
  __nv_bfloat16* dv;
  float* dq_acc;        // [s, h, 128]
  const float* lse2;    // [h, s_pad]
  const float* delta;   // [h, s_pad]
  int s, h, h_kv, group, causal, n_qtiles, s_pad;
  float sl2;    // softmax scale * log2(e)
  float scale;  // softmax scale
};

// ---------------------------------------------------------------------------------------------
// PTX wrappers (as in fa_fwd_sm90.cu)
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

__device__ __forceinline__ uint32_t mbar_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t ok;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
      "selp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(ok)
      : "r"(bar), "r"(parity)
      : "memory");
  return ok;
}

// Set when an mbarrier wait gave up; read and cleared by fa_bwd_sm90_timeouts().
__device__ int g_timeouts;

// Waits for the phase of parity `parity`; with FA_SM90_HANG_TRAP a wait over ~2 s gives up, counts
// itself and returns (wrong results instead of a hung GPU). See fa_fwd_sm90.cu.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  if (mbar_try_wait(bar, parity)) return;
#if FA_SM90_HANG_TRAP
  const long long t0 = clock64();
#endif
  while (!mbar_try_wait(bar, parity)) {
#if FA_SM90_HANG_TRAP
    const long long dt = clock64() - t0;
    if (dt > 1000000LL && (dt > 4000000000LL || *reinterpret_cast<volatile int*>(&g_timeouts) != 0)) {
      atomicAdd(&g_timeouts, 1);
      return;
    }
#endif
  }
}

__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1,
                                            int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], [%2];" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

// Plain bulk copy global -> shared (16-byte aligned, size a multiple of 16), completing on an mbarrier.
__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(src)), "r"(bytes), "r"(bar)
      : "memory");
}

__device__ __forceinline__ void prefetch_tmap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

// Keeps the compiler from moving register reads/writes across wgmma issue/wait points.
__device__ __forceinline__ void reg_fence(float& r) { asm volatile("" : "+f"(r)::"memory"); }
__device__ __forceinline__ void reg_fence(uint32_t& r) { asm volatile("" : "+r"(r)::"memory"); }
template <int N>
__device__ __forceinline__ void reg_fence(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) reg_fence(r[i]);
}
__device__ __forceinline__ void reg_fence(uint32_t (&r)[4][4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) reg_fence(r[i][j]);
}

// wgmma shared-memory matrix descriptor (sm_90), as in fa_fwd_sm90.cu:
//   bits 0-13 start >> 4, bits 16-29 LBO >> 4, bits 32-45 SBO >> 4, bits 62-63 swizzle (1 = 128B).
// K-major SW128: rows of 128 bytes, 8-row groups SBO = 1024 apart; k step of 16 = +32 bytes.
// MN-major SW128: 64 MN elements per 128-byte row, one row per K index, 8-K-row groups SBO = 1024
//   apart, the next 64-wide MN block LBO away; k step of 16 = +2048 bytes.
__device__ __forceinline__ uint64_t make_desc(uint32_t saddr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  return static_cast<uint64_t>((saddr & 0x3FFFFu) >> 4) | (static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFFu) << 16) |
         (static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}

#define FA90B_D32                                                                                                 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31}"
#define FA90B_D32_OPS(d)                                                                                           \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),      \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),       \
      "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),      \
      "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define FA90B_D64                                                                                                 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "  \
  "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define FA90B_D64_OPS(d)                                                                                           \
  FA90B_D32_OPS(d), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]),     \
      "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]),      \
      "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]),      \
      "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),      \
      "+f"(d[63])

// D[64x64] (+)= A[64x16] * B[16x64]; both from shared memory, both K-major. scale_d == 0: D = A*B.
__device__ __forceinline__ void wgmma_ss_m64n64k16(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %34, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " FA90B_D32 ", %32, %33, p, 1, 1, 0, 0;\n\t}"
      : FA90B_D32_OPS(d)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// D[64x64] (+)= A[64x16] * B[16x64]; both from shared memory, both MN-major (imm-trans-a = imm-trans-b = 1).
__device__ __forceinline__ void wgmma_ss_m64n64k16_tt(float (&d)[32], uint64_t desc_a, uint64_t desc_b,
                                                      int scale_d) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %34, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " FA90B_D32 ", %32, %33, p, 1, 1, 1, 1;\n\t}"
      : FA90B_D32_OPS(d)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// D[64x128] += A[64x16] * B[16x128]; A from registers (4 x bf16x2 per thread), B from shared memory,
// MN-major (imm-trans-b = 1).
__device__ __forceinline__ void wgmma_rs_m64n128k16_tb(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %69, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " FA90B_D64 ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n\t}"
      : FA90B_D64_OPS(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ void st_shared_b32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared.b32 [%0], %1;" ::"r"(addr), "r"(v) : "memory");
}

__device__ __forceinline__ float2 ld_shared_f2(uint32_t addr) {
  float2 v;
  asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(addr) : "memory");
  return v;
}

__device__ __forceinline__ void red_add_f2(float* addr, float a, float b) {
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" ::"l"(addr), "f"(a), "f"(b) : "memory");
}

// Named barrier of the two consumer warpgroups (id 1; id 0 is __syncthreads).
__device__ __forceinline__ void consumer_sync() { asm volatile("bar.sync 1, 256;" ::: "memory"); }

// ---------------------------------------------------------------------------------------------
// Fragment ownership (wgmma m64nN accumulator, f32): warp w of the warpgroup owns rows 16w..16w+15;
// lane = 4*g + t: acc[4j+0], acc[4j+1] are (row 16w+g, cols 8j+2t, 8j+2t+1) and acc[4j+2],
// acc[4j+3] are (row 16w+g+8, same cols). The RS A fragment of m64k16 has the same pattern over 16
// columns, so k-slice kk of an m64n64 accumulator is acc[8kk .. 8kk+7] packed in pairs.
// ---------------------------------------------------------------------------------------------

// X^T[64 kv x 64 q] = A[64 kv rows of a 128-row K/V tile] * B[64-row Q/dO tile]^T over d = 128.
// Both K-major, 128B swizzle; the 64-column halves are kKVHalf (A) and kQHalf (B) bytes apart.
__device__ __forceinline__ void gemm_t(float (&acc)[32], uint64_t da, uint64_t db) {
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    const uint32_t oa = static_cast<uint32_t>((kk >> 2) * kKVHalf + (kk & 3) * 32) >> 4;
    const uint32_t ob = static_cast<uint32_t>((kk >> 2) * kQHalf + (kk & 3) * 32) >> 4;
    wgmma_ss_m64n64k16(acc, da + oa, db + ob, kk > 0 ? 1 : 0);
  }
}

// acc[64 kv x 128 d] += X^T (registers, k = 64 q rows) * B[64 q x 128 d] (Q or dO tile, MN-major).
__device__ __forceinline__ void gemm_acc(float (&acc)[64], const uint32_t (&xa)[4][4], uint64_t db) {
#pragma unroll
  for (int kk = 0; kk < kBM / 16; ++kk) {
    const uint32_t off = static_cast<uint32_t>(kk * 16 * 128) >> 4;  // 16 q rows of 128 bytes
    wgmma_rs_m64n128k16_tb(acc, xa[kk], db + off);
  }
}

// dQ_c[64 q x 64 d] = dS[64 q x 128 kv] (dS^T tile, MN-major) * K[128 kv x 64 d] (one K half, MN-major).
__device__ __forceinline__ void gemm_dq(float (&acc)[32], uint64_t da, uint64_t db) {
#pragma unroll
  for (int kk = 0; kk < kBN / 16; ++kk) {
    const uint32_t off = static_cast<uint32_t>(kk * 16 * 128) >> 4;  // 16 kv rows of 128 bytes
    wgmma_ss_m64n64k16_tt(acc, da + off, db + off, kk > 0 ? 1 : 0);
  }
}

__device__ __forceinline__ void pack_x(const float (&x)[32], uint32_t (&xa)[4][4]) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    xa[kk][0] = pack_bf16(x[8 * kk + 0], x[8 * kk + 1]);  // row g,   cols 16kk+2t, +1
    xa[kk][1] = pack_bf16(x[8 * kk + 2], x[8 * kk + 3]);  // row g+8, cols 16kk+2t, +1
    xa[kk][2] = pack_bf16(x[8 * kk + 4], x[8 * kk + 5]);  // row g,   cols 16kk+8+2t, +1
    xa[kk][3] = pack_bf16(x[8 * kk + 6], x[8 * kk + 7]);  // row g+8, cols 16kk+8+2t, +1
  }
}

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------

// delta = rowsum(dO * O), lse2 = lse * log2(e); [h, s_pad], padded rows: delta 0, lse2 +inf.
// 16 threads per (row, head), 8 elements (16 bytes) each.
__global__ void __launch_bounds__(256) fa_bwd_prep_kernel(const __nv_bfloat16* __restrict__ o,
                                                          const __nv_bfloat16* __restrict__ dout,
                                                          const float* __restrict__ lse, float* __restrict__ lse2,
                                                          float* __restrict__ delta, int s, int h, int s_pad) {
  const long long gid = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const long long item = gid >> 4;  // (head, row) with row fastest
  const int part = threadIdx.x & 15;
  const bool live = item < static_cast<long long>(h) * s_pad;
  const int hh = live ? static_cast<int>(item / s_pad) : 0;
  const int i = live ? static_cast<int>(item % s_pad) : 0;
  float acc = 0.f;
  if (live && i < s) {
    const size_t off = (static_cast<size_t>(i) * h + hh) * kD + part * 8;
    const uint4 a = *reinterpret_cast<const uint4*>(o + off);
    const uint4 b = *reinterpret_cast<const uint4*>(dout + off);
    const __nv_bfloat162* a2 = reinterpret_cast<const __nv_bfloat162*>(&a);
    const __nv_bfloat162* b2 = reinterpret_cast<const __nv_bfloat162*>(&b);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 fa = __bfloat1622float2(a2[e]);
      const float2 fb = __bfloat1622float2(b2[e]);
      acc = fmaf(fa.x, fb.x, acc);
      acc = fmaf(fa.y, fb.y, acc);
    }
  }
#pragma unroll
  for (int sh = 8; sh >= 1; sh >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, sh);
  if (live && part == 0) {
    const size_t idx = static_cast<size_t>(hh) * s_pad + i;
    if (i < s) {
      delta[idx] = acc;
      lse2[idx] = lse[static_cast<size_t>(hh) * s + i] * 1.4426950408889634f;
    } else {
      delta[idx] = 0.f;
      lse2[idx] = INFINITY;
    }
  }
}

// dq = bf16(scale * dq_acc), 4 elements per thread.
__global__ void __launch_bounds__(256) fa_bwd_dq_kernel(const float4* __restrict__ acc, uint2* __restrict__ dq,
                                                        long long n4, float scale) {
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n4;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const float4 a = acc[i];
    dq[i] = make_uint2(pack_bf16(a.x * scale, a.y * scale), pack_bf16(a.z * scale, a.w * scale));
  }
}

template <int ST>
__global__ void __launch_bounds__(kThreads, 1)
    fa_bwd_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_do,
                  const __grid_constant__ CUtensorMap tm_k, const __grid_constant__ CUtensorMap tm_v,
                  const Params p) {
  using L = SmemLayout<ST>;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t sK = base + L::k, sV = base + L::v, sQ = base + L::q, sdO = base + L::dO, sDS = base + L::ds;
  const uint32_t sLse = base + L::lse, sDelta = base + L::delta, sB = base + L::bar;
  const uint32_t bar_kv = sB;
  auto bar_full_q = [&](int s) { return sB + 8u * (1 + s); };
  auto bar_full_do = [&](int s) { return sB + 8u * (1 + ST + s); };
  auto bar_empty_q = [&](int s) { return sB + 8u * (1 + 2 * ST + s); };
  auto bar_empty_do = [&](int s) { return sB + 8u * (1 + 3 * ST + s); };

  const int kvh = blockIdx.x;
  const int n = blockIdx.y;                          // kv tile; low n = most q tiles (causal) first
  const int m_start = p.causal ? (n * kBN) / kBM : 0;  // first q tile that sees this kv tile
  const int tid = threadIdx.x;
  const int wg = tid >> 7;

  if (tid == 0) {
    mbar_init(bar_kv, 1);
#pragma unroll
    for (int s = 0; s < ST; ++s) {
      mbar_init(bar_full_q(s), 1);
      mbar_init(bar_full_do(s), 1);
      mbar_init(bar_empty_q(s), kConsumerThreads);
      mbar_init(bar_empty_do(s), kConsumerThreads);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    // ------------------------------- producer -------------------------------
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
    if (tid == 0) {
      prefetch_tmap(&tm_q);
      prefetch_tmap(&tm_do);
      prefetch_tmap(&tm_k);
      prefetch_tmap(&tm_v);
      mbar_arrive_expect_tx(bar_kv, 2 * kKV);
      tma_load_3d(sK, &tm_k, bar_kv, 0, kvh, n * kBN);
      tma_load_3d(sK + kKVHalf, &tm_k, bar_kv, 64, kvh, n * kBN);
      tma_load_3d(sV, &tm_v, bar_kv, 0, kvh, n * kBN);
      tma_load_3d(sV + kKVHalf, &tm_v, bar_kv, 64, kvh, n * kBN);
      int it = 0;
      for (int gi = 0; gi < p.group; ++gi) {
        const int hq = kvh * p.group + gi;
        const float* lse_row = p.lse2 + static_cast<size_t>(hq) * p.s_pad;
        const float* delta_row = p.delta + static_cast<size_t>(hq) * p.s_pad;
        for (int m = m_start; m < p.n_qtiles; ++m, ++it) {
          const int s = it % ST;
          const int use = it / ST;
          if (use > 0) mbar_wait(bar_empty_q(s), (use - 1) & 1);
          mbar_arrive_expect_tx(bar_full_q(s), kQT + kVec);
          tma_load_3d(sQ + s * kQT, &tm_q, bar_full_q(s), 0, hq, m * kBM);
          tma_load_3d(sQ + s * kQT + kQHalf, &tm_q, bar_full_q(s), 64, hq, m * kBM);
          bulk_load(sLse + s * kVec, lse_row + m * kBM, kVec, bar_full_q(s));
          if (use > 0) mbar_wait(bar_empty_do(s), (use - 1) & 1);
          mbar_arrive_expect_tx(bar_full_do(s), kQT + kVec);
          tma_load_3d(sdO + s * kQT, &tm_do, bar_full_do(s), 0, hq, m * kBM);
          tma_load_3d(sdO + s * kQT + kQHalf, &tm_do, bar_full_do(s), 64, hq, m * kBM);
          bulk_load(sDelta + s * kVec, delta_row + m * kBM, kVec, bar_full_do(s));
        }
      }
    }
  } else {
    // ------------------------------- consumers -------------------------------
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
    const int c = wg - 1;  // which 64 kv rows of the tile
    const int t = tid & 127;
    const int w = t >> 5, lane = t & 31;
    const int g = lane >> 2, tq = lane & 3;
    const int kv_loc = c * 64 + w * 16 + g;  // this thread's kv rows (in the tile): kv_loc and kv_loc + 8
    const int kv_row = n * kBN + kv_loc;
    const float sl2 = p.sl2;
    const bool kv_tail = (n + 1) * kBN > p.s;  // kv rows past s in this tile: mask them

    const uint64_t da_k = make_desc(sK + c * 64 * 128, 16, 1024);   // A of S^T: K rows 64c.., K-major
    const uint64_t da_v = make_desc(sV + c * 64 * 128, 16, 1024);   // A of dP^T
    const uint64_t db_kh = make_desc(sK + c * kKVHalf, kKVHalf, 1024);  // B of dQ_c: K[:, 64c..], MN-major

    float dv[64], dk[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) {
      dv[i] = 0.f;
      dk[i] = 0.f;
    }

    mbar_wait(bar_kv, 0);

    int it = 0;
    for (int gi = 0; gi < p.group; ++gi) {
      const int hq = kvh * p.group + gi;
      for (int m = m_start; m < p.n_qtiles; ++m, ++it) {
        const int s = it % ST;
        const uint32_t ph = (it / ST) & 1;
        const int b = it & 1;  // dS^T buffer
        const uint64_t db_qk = make_desc(sQ + s * kQT, 16, 1024);        // B of S^T (K-major)
        const uint64_t db_dok = make_desc(sdO + s * kQT, 16, 1024);      // B of dP^T
        const uint64_t db_qmn = make_desc(sQ + s * kQT, kQHalf, 1024);   // B of dK (MN-major)
        const uint64_t db_domn = make_desc(sdO + s * kQT, kQHalf, 1024); // B of dV
        const uint64_t da_ds = make_desc(sDS + b * kDS, 8192, 1024);     // A of dQ (MN-major; LBO unused)

        float sacc[32], dpacc[32];
        uint32_t pa[4][4], dsa[4][4];

        // Both waits before the first wgmma (a spin loop between wgmma batches made ptxas inject a
        // warpgroup.arrive in the forward: C7519).
        mbar_wait(bar_full_q(s), ph);
        mbar_wait(bar_full_do(s), ph);
        __syncwarp();
        wg_fence();
        gemm_t(sacc, da_k, db_qk);  // S^T = K_c Q^T
        wg_commit();
        gemm_t(dpacc, da_v, db_dok);  // dP^T = V_c dO^T
        wg_commit();
        wg_wait<1>();  // S^T done; dP^T may still run
        reg_fence(sacc);

        // P^T = exp2(S^T * sl2 - lse2[q]); masked entries (kv > q causal, kv >= s) are 0.
        const bool need_mask = kv_tail || (p.causal && m * kBM < (n + 1) * kBN);
        if (need_mask) {
#pragma unroll
          for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int qcol = m * kBM + 8 * j + 2 * tq + (e & 1);
              const int kv = kv_row + ((e & 2) ? 8 : 0);
              if (kv >= p.s || (p.causal && kv > qcol)) sacc[4 * j + e] = -INFINITY;
            }
          }
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const float2 l2 = ld_shared_f2(sLse + s * kVec + (8 * j + 2 * tq) * 4);
          sacc[4 * j + 0] = ex2(fmaf(sacc[4 * j + 0], sl2, -l2.x));
          sacc[4 * j + 1] = ex2(fmaf(sacc[4 * j + 1], sl2, -l2.y));
          sacc[4 * j + 2] = ex2(fmaf(sacc[4 * j + 2], sl2, -l2.x));
          sacc[4 * j + 3] = ex2(fmaf(sacc[4 * j + 3], sl2, -l2.y));
        }
        pack_x(sacc, pa);
        reg_fence(pa);
        wg_fence();
        gemm_acc(dv, pa, db_domn);  // dV += P^T dO
        wg_commit();
        wg_wait<1>();  // dP^T done (groups complete in order); dV may still run
        reg_fence(dpacc);

        // dS^T = P^T * (dP^T - delta[q])
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const float2 d2 = ld_shared_f2(sDelta + s * kVec + (8 * j + 2 * tq) * 4);
          dpacc[4 * j + 0] = sacc[4 * j + 0] * (dpacc[4 * j + 0] - d2.x);
          dpacc[4 * j + 1] = sacc[4 * j + 1] * (dpacc[4 * j + 1] - d2.y);
          dpacc[4 * j + 2] = sacc[4 * j + 2] * (dpacc[4 * j + 2] - d2.x);
          dpacc[4 * j + 3] = sacc[4 * j + 3] * (dpacc[4 * j + 3] - d2.y);
        }
        pack_x(dpacc, dsa);
        // dS^T to shared memory: [128 kv rows][64 q] bf16, 128-byte rows, 16-byte chunk ch of row r
        // at chunk ch ^ (r % 8); r % 8 == g for both of this thread's rows.
        {
          const uint32_t row_a = sDS + b * kDS + kv_loc * 128;
#pragma unroll
          for (int kk = 0; kk < 4; ++kk) {
            const uint32_t c0 = static_cast<uint32_t>(((2 * kk) ^ g) * 16 + tq * 4);      // q = 16kk + 2t
            const uint32_t c1 = static_cast<uint32_t>(((2 * kk + 1) ^ g) * 16 + tq * 4);  // q = 16kk + 8 + 2t
            st_shared_b32(row_a + c0, dsa[kk][0]);
            st_shared_b32(row_a + 8 * 128 + c0, dsa[kk][1]);
            st_shared_b32(row_a + c1, dsa[kk][2]);
            st_shared_b32(row_a + 8 * 128 + c1, dsa[kk][3]);
          }
        }
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // st.shared -> wgmma reads
        reg_fence(dsa);
        wg_fence();
        gemm_acc(dk, dsa, db_qmn);  // dK += dS^T Q
        wg_commit();
        consumer_sync();  // both warpgroups' dS^T rows are in shared memory
        float dqacc[32];
        wg_fence();
        gemm_dq(dqacc, da_ds, db_kh);  // dQ_c = dS K[:, 64c..64c+63]
        wg_commit();
        wg_wait<0>();
        reg_fence(dqacc);
        reg_fence(pa);
        reg_fence(dsa);
        mbar_arrive(bar_empty_q(s));
        mbar_arrive(bar_empty_do(s));

        // dQ_acc[q, hq, 64c + col] += dQ_c (rows past s are not stored)
        const int q0 = m * kBM + w * 16 + g;
        float* dst0 = p.dq_acc + (static_cast<size_t>(q0) * p.h + hq) * kD + c * 64 + 2 * tq;
        const size_t row8 = static_cast<size_t>(8) * p.h * kD;
        if (q0 < p.s) {
#pragma unroll
          for (int j = 0; j < 8; ++j) red_add_f2(dst0 + 8 * j, dqacc[4 * j + 0], dqacc[4 * j + 1]);
        }
        if (q0 + 8 < p.s) {
#pragma unroll
          for (int j = 0; j < 8; ++j) red_add_f2(dst0 + row8 + 8 * j, dqacc[4 * j + 2], dqacc[4 * j + 3]);
        }
      }
    }

    // ---- epilogue: dV and scale * dK to bf16 ----
    const size_t kstride = static_cast<size_t>(p.h_kv) * kD;
    const float sc = p.scale;
    if (kv_row < p.s) {
      uint32_t* dvp = reinterpret_cast<uint32_t*>(p.dv + static_cast<size_t>(kv_row) * kstride + kvh * kD + 2 * tq);
      uint32_t* dkp = reinterpret_cast<uint32_t*>(p.dk + static_cast<size_t>(kv_row) * kstride + kvh * kD + 2 * tq);
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        dvp[4 * j] = pack_bf16(dv[4 * j + 0], dv[4 * j + 1]);
        dkp[4 * j] = pack_bf16(dk[4 * j + 0] * sc, dk[4 * j + 1] * sc);
      }
    }
    if (kv_row + 8 < p.s) {
      uint32_t* dvp =
          reinterpret_cast<uint32_t*>(p.dv + static_cast<size_t>(kv_row + 8) * kstride + kvh * kD + 2 * tq);
      uint32_t* dkp =
          reinterpret_cast<uint32_t*>(p.dk + static_cast<size_t>(kv_row + 8) * kstride + kvh * kD + 2 * tq);
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        dvp[4 * j] = pack_bf16(dv[4 * j + 2], dv[4 * j + 3]);
        dkp[4 * j] = pack_bf16(dk[4 * j + 2] * sc, dk[4 * j + 3] * sc);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------
typedef CUresult (*EncodeTiledFn)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                  const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                  CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

static EncodeTiledFn get_encode_fn() {
  static EncodeTiledFn fn = nullptr;
  if (!fn) {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault, &q) !=
            cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      return nullptr;
    fn = reinterpret_cast<EncodeTiledFn>(ptr);
  }
  return fn;
}

// 3-D view [seq, heads, 128] (d innermost) with a {64, 1, rows} box and 128-byte swizzle.
static int make_map(CUtensorMap* map, const void* ptr, int seq, int heads, int rows) {
  EncodeTiledFn enc = get_encode_fn();
  if (!enc) return static_cast<int>(cudaErrorNotSupported);
  cuuint64_t dims[3] = {static_cast<cuuint64_t>(kD), static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(seq)};
  cuuint64_t strides[2] = {static_cast<cuuint64_t>(kD) * 2, static_cast<cuuint64_t>(heads) * kD * 2};
  cuuint32_t box[3] = {64, 1, static_cast<cuuint32_t>(rows)};
  cuuint32_t estr[3] = {1, 1, 1};
  CUresult r = enc(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(ptr), dims, strides, box, estr,
                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? 0 : static_cast<int>(cudaErrorInvalidValue);
}

constexpr int kStages = 2;

static size_t align256(size_t x) { return (x + 255) & ~static_cast<size_t>(255); }
static int pad64(int s) { return (s + kBM - 1) / kBM * kBM; }
static size_t ws_dq_bytes(int s, int h) { return align256(static_cast<size_t>(s) * h * kD * 4); }
static size_t ws_vec_bytes(int s, int h) { return align256(static_cast<size_t>(h) * pad64(s) * 4); }

}  // namespace fa90b

extern "C" {

// Bytes of the fp32 workspace fa_bwd_sm90 needs: dQ accumulator [s, h, 128] + lse2, delta [h, s_pad].
size_t fa_bwd_sm90_workspace_bytes(int s, int h, int h_kv) {
  (void)h_kv;
  using namespace fa90b;
  if (s <= 0 || h <= 0) return 0;
  return ws_dq_bytes(s, h) + 2 * ws_vec_bytes(s, h);
}

// dq (bf16 [s, h, 128]), dk, dv (bf16 [s, h_kv, 128]) from q, k, v, o, dout and the forward's lse
// ([h, s] fp32, natural log). workspace: fa_bwd_sm90_workspace_bytes(s, h, h_kv) bytes, 256-aligned.
// Returns 0 or a cudaError.
int fa_bwd_sm90(const void* q, const void* k, const void* v, const void* o, const void* dout, const float* lse,
                void* dq, void* dk, void* dv, float* workspace, int s, int h, int h_kv, int causal,
                cudaStream_t stream) {
  using namespace fa90b;
  if (!q || !k || !v || !o || !dout || !lse || !dq || !dk || !dv || !workspace || s <= 0 || h <= 0 || h_kv <= 0 ||
      h % h_kv != 0)
    return static_cast<int>(cudaErrorInvalidValue);
  if (((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k) | reinterpret_cast<uintptr_t>(v) |
        reinterpret_cast<uintptr_t>(o) | reinterpret_cast<uintptr_t>(dout) | reinterpret_cast<uintptr_t>(dq) |
        reinterpret_cast<uintptr_t>(dk) | reinterpret_cast<uintptr_t>(dv)) & 15) != 0 ||
      (reinterpret_cast<uintptr_t>(workspace) & 255) != 0)
    return static_cast<int>(cudaErrorMisalignedAddress);
  const int n_kv = (s + kBN - 1) / kBN;
  if (n_kv > 65535 || h_kv > 65535) return static_cast<int>(cudaErrorInvalidValue);
  const int s_pad = pad64(s);

  float* dq_acc = workspace;
  float* lse2 = reinterpret_cast<float*>(reinterpret_cast<char*>(workspace) + ws_dq_bytes(s, h));
  float* delta = reinterpret_cast<float*>(reinterpret_cast<char*>(lse2) + ws_vec_bytes(s, h));

  cudaError_t e = cudaMemsetAsync(dq_acc, 0, static_cast<size_t>(s) * h * kD * 4, stream);
  if (e != cudaSuccess) return static_cast<int>(e);
  {
    const long long threads = static_cast<long long>(h) * s_pad * 16;
    const long long blocks = (threads + 255) / 256;
    if (blocks > 0x7fffffffLL) return static_cast<int>(cudaErrorInvalidValue);
    fa_bwd_prep_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(o), static_cast<const __nv_bfloat16*>(dout), lse, lse2, delta, s, h, s_pad);
    if ((e = cudaGetLastError()) != cudaSuccess) return static_cast<int>(e);
  }

  CUtensorMap mq, mdo, mk, mv;
  int r;
  if ((r = make_map(&mq, q, s, h, kBM)) != 0) return r;
  if ((r = make_map(&mdo, dout, s, h, kBM)) != 0) return r;
  if ((r = make_map(&mk, k, s, h_kv, kBN)) != 0) return r;
  if ((r = make_map(&mv, v, s, h_kv, kBN)) != 0) return r;
  Params p;
  p.dk = static_cast<__nv_bfloat16*>(dk);
  p.dv = static_cast<__nv_bfloat16*>(dv);
  p.dq_acc = dq_acc;
  p.lse2 = lse2;
  p.delta = delta;
  p.s = s;
  p.h = h;
  p.h_kv = h_kv;
  p.group = h / h_kv;
  p.causal = causal ? 1 : 0;
  p.n_qtiles = s_pad / kBM;
  p.s_pad = s_pad;
  p.scale = 1.0f / sqrtf(static_cast<float>(kD));
  p.sl2 = 1.4426950408889634f * p.scale;

  constexpr int smem = SmemLayout<kStages>::alloc;
  static bool attr_set = false;
  if (!attr_set) {
    e = cudaFuncSetAttribute(fa_bwd_kernel<kStages>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return static_cast<int>(e);
    attr_set = true;
  }
  dim3 grid(h_kv, n_kv, 1);
  fa_bwd_kernel<kStages><<<grid, kThreads, smem, stream>>>(mq, mdo, mk, mv, p);
  if ((e = cudaGetLastError()) != cudaSuccess) return static_cast<int>(e);

  {
    const long long n4 = static_cast<long long>(s) * h * kD / 4;
    long long blocks = (n4 + 255) / 256;
    if (blocks > 132 * 16) blocks = 132 * 16;
    fa_bwd_dq_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(reinterpret_cast<const float4*>(dq_acc),
                                                                        static_cast<uint2*>(dq), n4, p.scale);
    if ((e = cudaGetLastError()) != cudaSuccess) return static_cast<int>(e);
  }
  return 0;
}

// Number of mbarrier waits that gave up since the last call (0 when all is well); clears it.
int fa_bwd_sm90_timeouts(void) {
  int n = 0;
  if (cudaMemcpyFromSymbol(&n, fa90b::g_timeouts, sizeof(int)) != cudaSuccess) return -1;
  const int zero = 0;
  if (cudaMemcpyToSymbol(fa90b::g_timeouts, &zero, sizeof(int)) != cudaSuccess) return -1;
  return n;
}

int fa_bwd_sm90_smem_bytes(void) { return fa90b::SmemLayout<fa90b::kStages>::alloc; }

}  // extern "C"
