// fa_fwd_sm90.cu: FlashAttention-style forward for Hopper (sm_90a), head dim 128, bf16 in/out.
//
// Standalone; our own code. One CTA = 128 query rows of one head:
//   warpgroup 0  producer: one thread issues TMA (cp.async.bulk.tensor) loads of Q and of the K/V
//                tiles into a STAGES-deep ring, completing on mbarriers (full_*); it waits on the
//                consumers' empty_* mbarriers before reusing a stage. setmaxnreg.dec to 24 registers.
//   warpgroups 1, 2  consumers, 64 query rows each: S = Q K^T with wgmma m64n128k16 SS (Q and K in
//                shared memory, 128B swizzle, K-major), online softmax in registers (exp2, scale folded
//                into log2 e), P -> bf16 in registers and O += P V with wgmma m64n128k16 RS (A = P from
//                registers, B = V in shared memory, MN-major: V is [kv, d] with d contiguous, so the
//                transpose-B flag is set). setmaxnreg.inc to 240 registers.
// Variants (fa_fwd_sm90_variant): 0 = plain order (S, softmax, PV, each waited), 2 stages;
//   1 = intra-warpgroup overlap (issue S_j and PV_{j-1}, softmax of S_j runs while PV_{j-1} is in
//   flight), 2 stages; 2 = variant 1 with 3 stages.
//
// Layouts (global): Q [s_q, h, 128], K/V [s_k, h_kv, 128], O [s_q, h, 128] bf16; LSE [h, s_q] fp32,
// natural log of sum_j exp(scale * q.k_j); scale = 1/sqrt(128). GQA: head hh reads kv head hh/(h/h_kv).
// Causal: query i sees keys j <= i (requires s_q == s_k). Rows/keys past the end are zero-filled by
// TMA; keys past s_k are masked to -inf; rows past s_q are not stored.
//
// Shared-memory tiles (each 128 rows x 128 bf16 = 32 KB, 1024-byte aligned): two column halves
// [2][128 rows][64 elems], each row 128 bytes, 16-byte chunk c of row r stored at chunk c ^ (r % 8)
// (the TMA SWIZZLE_128B pattern, which is also the wgmma 128B-swizzle canonical layout).
#include <cuda.h>  // CUtensorMap and its enums only: the driver entry point comes via cudart
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#ifndef FA_SM90_HANG_TRAP
#define FA_SM90_HANG_TRAP 1  // give up (and count it) instead of hanging if an mbarrier never completes
#endif

namespace fa90 {

constexpr int kD = 128;           // head dim
constexpr int kBM = 128;          // query rows per CTA (2 consumer warpgroups x 64)
constexpr int kBN = 128;          // kv rows per tile
constexpr int kThreads = 384;     // 3 warpgroups
constexpr int kTile = 128 * 128 * 2;  // bytes of one Q, K or V tile (32768)
constexpr int kHalf = 128 * 128;      // bytes of one 64-column half of a tile (16384)
constexpr int kConsumerThreads = 256;

template <int ST>
struct SmemLayout {
  static constexpr int q = 0;
  static constexpr int k = kTile;                  // ST K tiles
  static constexpr int v = kTile * (1 + ST);       // ST V tiles
  static constexpr int bar = kTile * (1 + 2 * ST);  // mbarriers
  static constexpr int nbar = 1 + 4 * ST;          // full_q, full_k[ST], full_v[ST], empty_k[ST], empty_v[ST]
  static constexpr int bytes = bar + 8 * nbar;
  static constexpr int alloc = bytes + 1024;       // slack for aligning the base to 1024
};

struct Params {
  __nv_bfloat16* o;
  float* lse;
  int s_q, s_k, h, h_kv, group, causal, n_mblocks;
  float sl2;  // softmax scale * log2(e)
};

// ---------------------------------------------------------------------------------------------
// PTX wrappers
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

// Set when an mbarrier wait gave up (see mbar_wait); read and cleared by fa_fwd_sm90_timeouts().
__device__ int g_timeouts;

// Waits until the phase of parity `parity` of the mbarrier has completed. With FA_SM90_HANG_TRAP, a
// wait longer than ~2 s (a pipeline bug: real waits are microseconds) gives up, counts itself in
// g_timeouts and returns, so a broken kernel finishes with wrong results instead of hanging the GPU.
// (A __trap() here made ptxas cap the consumer registers near 184 and spill; a plain return does not.)
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
__device__ __forceinline__ void reg_fence(uint32_t (&r)[8][4]) {
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) reg_fence(r[i][j]);
}

// wgmma shared-memory matrix descriptor (sm_90):
//   bits  0-13 start address >> 4, bits 16-29 leading byte offset >> 4, bits 32-45 stride byte
//   offset >> 4, bits 49-51 base offset (0: tiles are 1024-aligned), bits 62-63 swizzle (1 = 128B).
// K-major, 128B swizzle: rows of 128 bytes, 8-row groups SBO = 1024 bytes apart; LBO unused (1).
//   Stepping K by 16 elements inside the 64-element swizzle span = start address + 32 bytes.
// MN-major, 128B swizzle (V): 64 MN-elements (128 bytes) per row, one row per K index; K rows 128
//   bytes apart, 8-K-row groups SBO = 1024 bytes apart, the next 64-wide MN block LBO bytes away.
__device__ __forceinline__ uint64_t make_desc(uint32_t saddr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  return static_cast<uint64_t>((saddr & 0x3FFFFu) >> 4) | (static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFFu) << 16) |
         (static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}

#define FA90_D64                                                                                                  \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "  \
  "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define FA90_D64_OPS(d)                                                                                            \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),      \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),       \
      "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),      \
      "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),      \
      "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),      \
      "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),      \
      "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),      \
      "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

// D[64x128] (+)= A[64x16] * B[16x128]; A and B from shared memory, both K-major (no transpose).
// scale_d == 0: D = A*B (the old D is ignored).
__device__ __forceinline__ void wgmma_ss_m64n128k16(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %66, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " FA90_D64 ", %64, %65, p, 1, 1, 0, 0;\n\t}"
      : FA90_D64_OPS(d)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// D[64x128] += A[64x16] * B[16x128]; A from registers (4 x bf16x2 per thread), B from shared memory,
// MN-major (imm-trans-b = 1).
__device__ __forceinline__ void wgmma_rs_m64n128k16_tb(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "setp.ne.b32 p, %69, 0;\n\t"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " FA90_D64 ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n\t}"
      : FA90_D64_OPS(d)
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

// ---------------------------------------------------------------------------------------------
// Consumer pieces. Fragment ownership (wgmma m64nN accumulator, f32): warp w of the warpgroup owns
// rows 16w..16w+15; lane = 4*g + t: acc[4j+0], acc[4j+1] are (row 16w+g, cols 8j+2t, 8j+2t+1) and
// acc[4j+2], acc[4j+3] are (row 16w+g+8, same cols), j = 0..N/8-1.
// The RS A fragment of m64k16 (bf16) has the same pattern over 16 columns: a[0] = (g, 2t..2t+1),
// a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8, 2t+8..), so P for kv slice kk (16 columns)
// is acc[8kk .. 8kk+7] packed in pairs, with no data movement.
// ---------------------------------------------------------------------------------------------

// S = Q K^T for the warpgroup's 64 rows against one 128-row K tile.
__device__ __forceinline__ void gemm_qk(float (&s)[64], uint64_t dq, uint64_t dk) {
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    const uint32_t off = static_cast<uint32_t>((kk >> 2) * kHalf + (kk & 3) * 32) >> 4;
    wgmma_ss_m64n128k16(s, dq + off, dk + off, kk > 0 ? 1 : 0);
  }
}

// O += P V for one 128-row V tile.
__device__ __forceinline__ void gemm_pv(float (&o)[64], const uint32_t (&pa)[8][4], uint64_t dv) {
#pragma unroll
  for (int kk = 0; kk < kBN / 16; ++kk) {
    const uint32_t off = static_cast<uint32_t>(kk * 16 * 128) >> 4;  // 16 kv rows of 128 bytes
    wgmma_rs_m64n128k16_tb(o, pa[kk], dv + off);
  }
}

// Masks keys past s_k and (causal) keys after the query. n0: first kv index of the tile.
__device__ __forceinline__ void apply_mask(float (&s)[64], int n0, int row0, int tq, int s_k, int causal) {
#pragma unroll
  for (int j = 0; j < 16; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int col = n0 + 8 * j + 2 * tq + (e & 1);
      const int row = row0 + ((e & 2) ? 8 : 0);
      if (col >= s_k || (causal && col > row)) s[4 * j + e] = -INFINITY;
    }
  }
}

// Online softmax over one tile: updates the running max m (raw score units) and the thread-partial
// row sums l; turns s into p = exp(scale * (s - m_new)) in place; returns the rescale factors.
template <bool kFirst>
__device__ __forceinline__ void softmax_tile(float (&s)[64], float (&m)[2], float (&l)[2], float (&alpha)[2],
                                             float sl2) {
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    mx[0] = fmaxf(mx[0], fmaxf(s[4 * j + 0], s[4 * j + 1]));
    mx[1] = fmaxf(mx[1], fmaxf(s[4 * j + 2], s[4 * j + 3]));
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
  }
  float ms[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float mn = kFirst ? mx[r] : fmaxf(m[r], mx[r]);
    ms[r] = (mn == -INFINITY) ? 0.f : mn * sl2;  // a row with nothing visible yet stays all-zero
    alpha[r] = kFirst ? 0.f : ex2(m[r] * sl2 - ms[r]);
    m[r] = mn;
  }
  float sum[2] = {0.f, 0.f};
#pragma unroll
  for (int j = 0; j < 16; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e >> 1;
      const float pv = ex2(fmaf(s[4 * j + e], sl2, -ms[r]));
      s[4 * j + e] = pv;
      sum[r] += pv;
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) l[r] = kFirst ? sum[r] : fmaf(l[r], alpha[r], sum[r]);
}

__device__ __forceinline__ void pack_p(const float (&s)[64], uint32_t (&pa)[8][4]) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    pa[kk][0] = pack_bf16(s[8 * kk + 0], s[8 * kk + 1]);  // row g,   cols 16kk+2t, +1
    pa[kk][1] = pack_bf16(s[8 * kk + 2], s[8 * kk + 3]);  // row g+8, cols 16kk+2t, +1
    pa[kk][2] = pack_bf16(s[8 * kk + 4], s[8 * kk + 5]);  // row g,   cols 16kk+8+2t, +1
    pa[kk][3] = pack_bf16(s[8 * kk + 6], s[8 * kk + 7]);  // row g+8, cols 16kk+8+2t, +1
  }
}

__device__ __forceinline__ void rescale_o(float (&o)[64], const float (&alpha)[2]) {
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    o[4 * j + 0] *= alpha[0];
    o[4 * j + 1] *= alpha[0];
    o[4 * j + 2] *= alpha[1];
    o[4 * j + 3] *= alpha[1];
  }
}

// ---------------------------------------------------------------------------------------------
// The kernel
// ---------------------------------------------------------------------------------------------
template <int ST, bool kOverlap>
__global__ void __launch_bounds__(kThreads, 1)
    fa_fwd_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                  const __grid_constant__ CUtensorMap tm_v, const Params p) {
  using L = SmemLayout<ST>;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t sQ = base + L::q, sK = base + L::k, sV = base + L::v, sB = base + L::bar;
  const uint32_t bar_q = sB;
  auto bar_full_k = [&](int s) { return sB + 8u * (1 + s); };
  auto bar_full_v = [&](int s) { return sB + 8u * (1 + ST + s); };
  auto bar_empty_k = [&](int s) { return sB + 8u * (1 + 2 * ST + s); };
  auto bar_empty_v = [&](int s) { return sB + 8u * (1 + 3 * ST + s); };

  const int hh = blockIdx.x;                          // query head
  const int mb = p.n_mblocks - 1 - (int)blockIdx.y;   // heaviest (causal) query blocks first
  const int kvh = hh / p.group;
  const int n_kv = (p.s_k + kBN - 1) / kBN;
  const int n_tiles = p.causal ? min(mb + 1, n_kv) : n_kv;  // kv tiles n_tiles-1 .. 0 are visited in that order
  const int tid = threadIdx.x;
  const int wg = tid >> 7;

  if (tid == 0) {
    mbar_init(bar_q, 1);
#pragma unroll
    for (int s = 0; s < ST; ++s) {
      mbar_init(bar_full_k(s), 1);
      mbar_init(bar_full_v(s), 1);
      mbar_init(bar_empty_k(s), kConsumerThreads);
      mbar_init(bar_empty_v(s), kConsumerThreads);
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
      prefetch_tmap(&tm_k);
      prefetch_tmap(&tm_v);
      mbar_arrive_expect_tx(bar_q, kTile);
      tma_load_3d(sQ, &tm_q, bar_q, 0, hh, mb * kBM);
      tma_load_3d(sQ + kHalf, &tm_q, bar_q, 64, hh, mb * kBM);
      for (int it = 0; it < n_tiles; ++it) {
        const int n = n_tiles - 1 - it;
        const int s = it % ST;
        const int use = it / ST;
        if (use > 0) mbar_wait(bar_empty_k(s), (use - 1) & 1);
        mbar_arrive_expect_tx(bar_full_k(s), kTile);
        tma_load_3d(sK + s * kTile, &tm_k, bar_full_k(s), 0, kvh, n * kBN);
        tma_load_3d(sK + s * kTile + kHalf, &tm_k, bar_full_k(s), 64, kvh, n * kBN);
        if (use > 0) mbar_wait(bar_empty_v(s), (use - 1) & 1);
        mbar_arrive_expect_tx(bar_full_v(s), kTile);
        tma_load_3d(sV + s * kTile, &tm_v, bar_full_v(s), 0, kvh, n * kBN);
        tma_load_3d(sV + s * kTile + kHalf, &tm_v, bar_full_v(s), 64, kvh, n * kBN);
      }
    }
  } else {
    // ------------------------------- consumers -------------------------------
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
    const int c = wg - 1;  // which 64-row half of the query tile
    const int t = tid & 127;
    const int w = t >> 5, lane = t & 31;
    const int g = lane >> 2, tq = lane & 3;
    const int row0 = mb * kBM + c * 64 + w * 16 + g;  // this thread's rows: row0 and row0 + 8
    const float sl2 = p.sl2;
    const bool need_mask = p.causal || (p.s_k % kBN) != 0;  // only the first visited tile needs it

    const uint64_t dq = make_desc(sQ + c * 64 * 128, 16, 1024);
    auto desc_k = [&](int s) { return make_desc(sK + s * kTile, 16, 1024); };
    auto desc_v = [&](int s) { return make_desc(sV + s * kTile, kHalf, 1024); };

    float o[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) o[i] = 0.f;
    float sacc[64];
    uint32_t pa[8][4];
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, alpha[2];

    mbar_wait(bar_q, 0);

    // ---- first tile (n = n_tiles-1): the only one that can need a mask ----
    mbar_wait(bar_full_k(0), 0);
    __syncwarp();
    wg_fence();
    gemm_qk(sacc, dq, desc_k(0));
    wg_commit();
    wg_wait<0>();
    reg_fence(sacc);
    mbar_arrive(bar_empty_k(0));
    if (need_mask) apply_mask(sacc, (n_tiles - 1) * kBN, row0, tq, p.s_k, p.causal);
    softmax_tile<true>(sacc, m, l, alpha, sl2);
    pack_p(sacc, pa);

    if constexpr (!kOverlap) {
      for (int it = 0; it < n_tiles; ++it) {
        const int s = it % ST;
        const uint32_t ph = (it / ST) & 1;
        if (it > 0) {
          mbar_wait(bar_full_k(s), ph);
          __syncwarp();
          wg_fence();
          gemm_qk(sacc, dq, desc_k(s));
          wg_commit();
          wg_wait<0>();
          reg_fence(sacc);
          mbar_arrive(bar_empty_k(s));
          softmax_tile<false>(sacc, m, l, alpha, sl2);
          rescale_o(o, alpha);
          pack_p(sacc, pa);
        }
        mbar_wait(bar_full_v(s), ph);
        __syncwarp();
        reg_fence(o);
        reg_fence(pa);
        wg_fence();
        gemm_pv(o, pa, desc_v(s));
        wg_commit();
        wg_wait<0>();
        reg_fence(o);
        reg_fence(pa);
        mbar_arrive(bar_empty_v(s));
      }
    } else {
      for (int it = 1; it < n_tiles; ++it) {
        const int s = it % ST;
        const uint32_t ph = (it / ST) & 1;
        const int sp = (it - 1) % ST;
        const uint32_t php = ((it - 1) / ST) & 1;
        // Both waits before the first wgmma: a spin loop between the two batches made ptxas inject
        // an extra warpgroup.arrive (C7519). V_{it-1} was requested before K_it, so it is ready.
        mbar_wait(bar_full_k(s), ph);
        mbar_wait(bar_full_v(sp), php);
        __syncwarp();
        reg_fence(o);  // keep the rescale of o and the packing of pa above the fence
        reg_fence(pa);
        wg_fence();    // orders those register writes before the wgmmas below
        gemm_qk(sacc, dq, desc_k(s));
        wg_commit();
        gemm_pv(o, pa, desc_v(sp));
        wg_commit();
        wg_wait<1>();  // S_it is done; PV_{it-1} may still run
        reg_fence(sacc);
        mbar_arrive(bar_empty_k(s));
        softmax_tile<false>(sacc, m, l, alpha, sl2);  // overlaps PV_{it-1}
        reg_fence(sacc);  // pins the softmax above the wait (volatile asm keeps its order)
        reg_fence(alpha[0]);
        reg_fence(alpha[1]);
        // Never taken (l is a finite positive sum); the branch is a basic-block boundary that keeps
        // ptxas from hoisting the wait below above the exp2s (it did, serializing softmax and PV).
        if (__float_as_int(l[0]) == 0x7fffffff) atomicAdd(&g_timeouts, 0);
        wg_wait<0>();
        reg_fence(o);
        reg_fence(pa);    // old P stays live until PV_{it-1} is done
        reg_fence(sacc);  // new P is packed only after that
        mbar_arrive(bar_empty_v(sp));
        rescale_o(o, alpha);
        pack_p(sacc, pa);
      }
      const int sl = (n_tiles - 1) % ST;
      mbar_wait(bar_full_v(sl), ((n_tiles - 1) / ST) & 1);
      __syncwarp();
      reg_fence(o);
      reg_fence(pa);
      wg_fence();
      gemm_pv(o, pa, desc_v(sl));
      wg_commit();
      wg_wait<0>();
      reg_fence(o);
      reg_fence(pa);
      mbar_arrive(bar_empty_v(sl));
    }

    // ---- epilogue: normalize, store O (bf16) and LSE ----
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    const float inv0 = l[0] > 0.f ? 1.f / l[0] : 0.f;
    const float inv1 = l[1] > 0.f ? 1.f / l[1] : 0.f;
    const size_t ostride = static_cast<size_t>(p.h) * kD;
    if (row0 < p.s_q) {
      uint32_t* dst = reinterpret_cast<uint32_t*>(p.o + static_cast<size_t>(row0) * ostride + hh * kD + 2 * tq);
#pragma unroll
      for (int j = 0; j < 16; ++j) dst[4 * j] = pack_bf16(o[4 * j + 0] * inv0, o[4 * j + 1] * inv0);
      if (tq == 0) {
        const float ms = (m[0] == -INFINITY) ? 0.f : m[0] * sl2;
        p.lse[static_cast<size_t>(hh) * p.s_q + row0] =
            l[0] > 0.f ? (ms + log2f(l[0])) * 0.69314718055994531f : -INFINITY;
      }
    }
    if (row0 + 8 < p.s_q) {
      uint32_t* dst =
          reinterpret_cast<uint32_t*>(p.o + static_cast<size_t>(row0 + 8) * ostride + hh * kD + 2 * tq);
#pragma unroll
      for (int j = 0; j < 16; ++j) dst[4 * j] = pack_bf16(o[4 * j + 2] * inv1, o[4 * j + 3] * inv1);
      if (tq == 0) {
        const float ms = (m[1] == -INFINITY) ? 0.f : m[1] * sl2;
        p.lse[static_cast<size_t>(hh) * p.s_q + row0 + 8] =
            l[1] > 0.f ? (ms + log2f(l[1])) * 0.69314718055994531f : -INFINITY;
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

// 3-D view [seq, heads, 128] (d innermost) with a {64, 1, 128} box and 128-byte swizzle.
static int make_map(CUtensorMap* map, const void* ptr, int seq, int heads) {
  EncodeTiledFn enc = get_encode_fn();
  if (!enc) return static_cast<int>(cudaErrorNotSupported);
  cuuint64_t dims[3] = {static_cast<cuuint64_t>(kD), static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(seq)};
  cuuint64_t strides[2] = {static_cast<cuuint64_t>(kD) * 2, static_cast<cuuint64_t>(heads) * kD * 2};
  cuuint32_t box[3] = {64, 1, 128};
  cuuint32_t estr[3] = {1, 1, 1};
  CUresult r = enc(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(ptr), dims, strides, box, estr,
                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? 0 : static_cast<int>(cudaErrorInvalidValue);
}

template <int ST, bool kOverlap>
static int launch(const CUtensorMap& mq, const CUtensorMap& mk, const CUtensorMap& mv, const Params& p,
                  cudaStream_t stream) {
  constexpr int smem = SmemLayout<ST>::alloc;
  static bool attr_set = false;  // per instantiation
  if (!attr_set) {
    cudaError_t e = cudaFuncSetAttribute(fa_fwd_kernel<ST, kOverlap>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return static_cast<int>(e);
    attr_set = true;
  }
  dim3 grid(p.h, p.n_mblocks, 1);
  fa_fwd_kernel<ST, kOverlap><<<grid, kThreads, smem, stream>>>(mq, mk, mv, p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace fa90

extern "C" {

// variant: 0 = plain (2 stages), 1 = intra-warpgroup overlap (2 stages), 2 = overlap with 3 stages.
int fa_fwd_sm90_variant(const void* q, const void* k, const void* v, void* o, float* lse, int s_q, int s_k, int h,
                        int h_kv, int causal, int variant, cudaStream_t stream) {
  using namespace fa90;
  if (!q || !k || !v || !o || !lse || s_q <= 0 || s_k <= 0 || h <= 0 || h_kv <= 0 || h % h_kv != 0)
    return static_cast<int>(cudaErrorInvalidValue);
  if (causal && s_q != s_k) return static_cast<int>(cudaErrorInvalidValue);  // aligned causal only
  if (((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k) | reinterpret_cast<uintptr_t>(v) |
        reinterpret_cast<uintptr_t>(o)) & 15) != 0)
    return static_cast<int>(cudaErrorMisalignedAddress);
  const int n_mblocks = (s_q + kBM - 1) / kBM;
  if (n_mblocks > 65535) return static_cast<int>(cudaErrorInvalidValue);
  CUtensorMap mq, mk, mv;
  int e;
  if ((e = make_map(&mq, q, s_q, h)) != 0) return e;
  if ((e = make_map(&mk, k, s_k, h_kv)) != 0) return e;
  if ((e = make_map(&mv, v, s_k, h_kv)) != 0) return e;
  Params p;
  p.o = static_cast<__nv_bfloat16*>(o);
  p.lse = lse;
  p.s_q = s_q;
  p.s_k = s_k;
  p.h = h;
  p.h_kv = h_kv;
  p.group = h / h_kv;
  p.causal = causal ? 1 : 0;
  p.n_mblocks = n_mblocks;
  p.sl2 = 1.4426950408889634f / sqrtf(static_cast<float>(kD));
  switch (variant) {
    case 0: return launch<2, false>(mq, mk, mv, p, stream);
    case 1: return launch<2, true>(mq, mk, mv, p, stream);
    case 2: return launch<3, true>(mq, mk, mv, p, stream);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

int fa_fwd_sm90(const void* q, const void* k, const void* v, void* o, float* lse, int s_q, int s_k, int h, int h_kv,
                int causal, cudaStream_t stream) {
  return fa_fwd_sm90_variant(q, k, v, o, lse, s_q, s_k, h, h_kv, causal, 1, stream);
}

// Number of mbarrier waits that gave up since the last call (0 when all is well); clears it.
// Nonzero means a pipeline bug (a phase that never completed): the outputs are garbage.
int fa_fwd_sm90_timeouts(void) {
  int n = 0;
  if (cudaMemcpyFromSymbol(&n, fa90::g_timeouts, sizeof(int)) != cudaSuccess) return -1;
  const int zero = 0;
  if (cudaMemcpyToSymbol(fa90::g_timeouts, &zero, sizeof(int)) != cudaSuccess) return -1;
  return n;
}

// Dynamic shared memory bytes of a variant (for tests and reports).
int fa_fwd_sm90_smem_bytes(int variant) {
  return variant == 2 ? fa90::SmemLayout<3>::alloc : fa90::SmemLayout<2>::alloc;
}

}  // extern "C"
