"""CPU emulation of the sm_90a attention forward's data movement and fragment math (no GPU needed).

  python3 test/gpu/kernels/sm90/emulate.py

Replays the compiler's codegen-templates/kernels/attention_fwd_sm90.cu.njk for head dim 128 (2-stage ring) and head dim 64 (4-stage ring), step by step with numpy, and
compares with a float64 reference:
- TMA: each [128 rows x D] bf16 tile lands as D/64 column blocks of 64 bf16 (128-byte rows; two blocks
  16 KB apart at D = 128, one at D = 64), the 16-byte chunk c of row r at chunk c ^ (r % 8)
  (SWIZZLE_128B), 1024-byte aligned; rows past the end are 0.
- wgmma operands are fetched through the kernel's descriptors (start, LBO, SBO, 128B swizzle),
  read as the canonical GMMA layouts that CUTLASS documents (cute/atom/mma_traits_sm90_gmma.hpp):
    K-major SW128  (mn, k) -> start + (mn%8)*128 + (mn//8)*SBO + 2k
    MN-major SW128 (mn, k) -> start + 2*(mn%64) + (mn//64)*LBO + (k%8)*128 + (k//8)*SBO
  then the swizzle: byte address bits [4,7) ^= bits [7,10).
- accumulators live in per-thread registers by the wgmma D layout (CUTLASS CLayout_64xN), the
  softmax runs per thread with 4-lane (quad) reductions, P is packed exactly as pack_p does, and the
  RS A operand is rebuilt from those registers by the CUTLASS ALayout_64x16 mapping.
- S = Q K^T takes D/16 k-steps (4 inside each 64-column block, then the next block); O = P V is
  m64n128 (64 registers) at D = 128 and m64n64 (32 registers) at D = 64; V's MN-major descriptor
  has LBO = 16 KB (the next 64 d columns, read only at D = 128).
- the epilogue writes O and LSE by the kernel's index math.
The constants below are the kernel's; keep them in sync when the kernel changes."""
import math
import sys

import numpy as np

BM, BN, HALF = 128, 128, 16384  # query rows per CTA, kv rows per tile, bytes of one 64-column block
STAGES = {128: 2, 64: 4}          # K/V ring depth by head dim (kernels.ts sm90ForwardStages)


def tile_bytes(d):
    return (d // 64) * HALF


def bf16(x):
    """Round float32 to bf16 (round to nearest even), returned as float32."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def tma_tile(mat, row0):
    """mat [rows, D] float32 (bf16 values) -> the tile's float32 'slots' (one per 2 bytes): the D/64 boxes
    {64 d, 1 head, 128 rows} the producer issues, box b at b * HALF."""
    D = mat.shape[1]
    sm = np.zeros(tile_bytes(D) // 2, dtype=np.float32)
    for r in range(BM):
        g = row0 + r
        if g < 0 or g >= mat.shape[0]:
            continue
        for d in range(D):
            half, c, w = d // 64, (d % 64) // 8, d % 8
            byte = half * HALF + r * 128 + ((c ^ (r % 8)) * 16) + w * 2
            sm[byte // 2] = mat[g, d]
    return sm


def swz(addr):
    return addr ^ (((addr >> 7) & 7) << 4)


def make_desc(start, lbo, sbo):
    return dict(start=start, lbo=(lbo >> 4) << 4, sbo=(sbo >> 4) << 4)


def read_kmajor(smem, desc, mn_count):
    out = np.empty((mn_count, 16), dtype=np.float32)
    for mn in range(mn_count):
        for k in range(16):
            a = desc["start"] + (mn % 8) * 128 + (mn // 8) * desc["sbo"] + 2 * k
            out[mn, k] = smem[swz(a) // 2]
    return out


def read_mnmajor(smem, desc, mn_count):
    out = np.empty((mn_count, 16), dtype=np.float32)
    for mn in range(mn_count):
        for k in range(16):
            a = desc["start"] + 2 * (mn % 64) + (mn // 64) * desc["lbo"] + (k % 8) * 128 + (k // 8) * desc["sbo"]
            out[mn, k] = smem[swz(a) // 2]
    return out


def c_layout(t, i):
    """wgmma m64nN f32 accumulator: thread t (0..127), register i -> (row, col)."""
    w, lane = t // 32, t % 32
    return 16 * w + lane // 4 + 8 * ((i % 4) // 2), 8 * (i // 4) + 2 * (lane % 4) + (i % 2)


def a_layout(t, v):
    """CUTLASS ALayout_64x16: thread t, value v (0..7) -> (m, k). Value v is half (v % 2) of register v // 2."""
    # Shape ((4,8,4),(2,2,2)) : Stride ((128,1,16),(64,8,512)) over a column-major 64x16 (m + 64 k)
    t0, t1, t2 = t % 4, (t // 4) % 8, t // 32
    v0, v1, v2 = v % 2, (v // 2) % 2, v // 4
    idx = 128 * t0 + 1 * t1 + 16 * t2 + 64 * v0 + 8 * v1 + 512 * v2
    return idx % 64, idx // 64


def emulate(q, k, v, causal):
    """q [S_q, H, D], k/v [S_k, H_kv, D] float32 holding bf16 values, D 64 or 128. Returns O [S_q, H, D], LSE [H, S_q]."""
    s_q, h, D = q.shape
    assert D in STAGES
    TILE, NO = tile_bytes(D), D // 2  # tile bytes, O accumulator registers per thread
    s_k, h_kv, _ = k.shape
    grp = h // h_kv
    sl2 = 1.4426950408889634 / math.sqrt(D)
    o_out = np.full((s_q, h, D), np.nan, dtype=np.float32)
    lse_out = np.full((h, s_q), np.nan, dtype=np.float32)
    n_mblocks = (s_q + BM - 1) // BM
    n_kv = (s_k + BN - 1) // BN
    ST = STAGES[D]
    sQ, sK, sV = 0, TILE, TILE * (1 + ST)
    for hh in range(h):
        kvh = hh // grp
        for mb in range(n_mblocks):
            n_tiles = min(mb + 1, n_kv) if causal else n_kv
            smem = np.zeros(TILE * (1 + 2 * ST) // 2, dtype=np.float32)
            smem[sQ // 2:(sQ + TILE) // 2] = tma_tile(q[:, hh], mb * BM)
            for c in range(2):
                dq = make_desc(sQ + c * 64 * 128, 16, 1024)
                o = np.zeros((128, NO), dtype=np.float32)  # per thread registers
                m = np.full((128, 2), -np.inf, dtype=np.float32)
                l = np.zeros((128, 2), dtype=np.float32)
                for it in range(n_tiles):
                    n = n_tiles - 1 - it
                    s = it % ST
                    smem[(sK + s * TILE) // 2:(sK + (s + 1) * TILE) // 2] = tma_tile(k[:, kvh], n * BN)
                    smem[(sV + s * TILE) // 2:(sV + (s + 1) * TILE) // 2] = tma_tile(v[:, kvh], n * BN)
                    dk = make_desc(sK + s * TILE, 16, 1024)
                    dv = make_desc(sV + s * TILE, HALF, 1024)
                    # S = Q K^T, D/16 k-steps (gemm_qk)
                    S = np.zeros((64, 128), dtype=np.float32)
                    for kk in range(D // 16):
                        off = (kk >> 2) * HALF + (kk & 3) * 32
                        A = read_kmajor(smem, dict(dq, start=dq["start"] + off), 64)
                        B = read_kmajor(smem, dict(dk, start=dk["start"] + off), 128)
                        S += A @ B.T
                    sacc = np.empty((128, 64), dtype=np.float32)
                    for t in range(128):
                        for i in range(64):
                            r, col = c_layout(t, i)
                            sacc[t, i] = S[r, col]
                    row0 = mb * BM + c * 64 + (np.arange(128) // 32) * 16 + (np.arange(128) % 32) // 4
                    tq = np.arange(128) % 4
                    if it == 0 and (causal or s_k % BN != 0):  # apply_mask
                        for t in range(128):
                            for j in range(16):
                                for e in range(4):
                                    col = n * BN + 8 * j + 2 * tq[t] + (e & 1)
                                    row = row0[t] + (8 if e & 2 else 0)
                                    if col >= s_k or (causal and col > row):
                                        sacc[t, 4 * j + e] = -np.inf
                    # softmax_tile: rowmax over own values, then quad (xor 1, 2) reduction
                    mx = np.stack([sacc[:, [4 * j + e for j in range(16) for e in (0, 1)]].max(1),
                                   sacc[:, [4 * j + e for j in range(16) for e in (2, 3)]].max(1)], 1)
                    mx = mx.reshape(32, 4, 2).max(1).repeat(4, 0)
                    mn = mx if it == 0 else np.maximum(m, mx)
                    ms = np.where(mn == -np.inf, 0, mn * sl2).astype(np.float32)
                    alpha = np.zeros_like(ms) if it == 0 else np.exp2(m * sl2 - ms)
                    m = mn
                    ssum = np.zeros((128, 2), dtype=np.float32)
                    for j in range(16):
                        for e in range(4):
                            r = e >> 1
                            p = np.exp2(sacc[:, 4 * j + e] * sl2 - ms[:, r])
                            sacc[:, 4 * j + e] = p
                            ssum[:, r] += p
                    l = ssum if it == 0 else l * alpha + ssum
                    if it > 0:  # rescale_o
                        for j in range(D // 8):
                            o[:, 4 * j:4 * j + 2] *= alpha[:, 0:1]
                            o[:, 4 * j + 2:4 * j + 4] *= alpha[:, 1:2]
                    # pack_p: pa[kk][j] holds (lo, hi) = sacc[8kk + 2j], sacc[8kk + 2j + 1]
                    pa = bf16(sacc).reshape(128, 8, 4, 2)
                    # O += P V (gemm_pv): rebuild A from registers by ALayout, B through the V descriptor
                    O = np.zeros((64, D), dtype=np.float32)
                    for kk in range(8):
                        A = np.full((64, 16), np.nan, dtype=np.float32)
                        for t in range(128):
                            for vv in range(8):
                                mm, kx = a_layout(t, vv)
                                A[mm, kx] = pa[t, kk, vv // 2, vv % 2]
                        assert not np.isnan(A).any()
                        B = read_mnmajor(smem, dict(dv, start=dv["start"] + kk * 16 * 128), D)  # [n=d, k=kv]
                        O += A @ B.T
                    for t in range(128):
                        for i in range(NO):
                            r, col = c_layout(t, i)
                            o[t, i] += O[r, col]
                # epilogue
                lq = l.reshape(32, 4, 2).sum(1).repeat(4, 0)
                inv = np.where(lq > 0, 1 / lq, 0)
                for t in range(128):
                    for r in range(2):
                        row = row0[t] + 8 * r
                        if row >= s_q:
                            continue
                        for j in range(D // 8):
                            col = 8 * j + 2 * tq[t]
                            o_out[row, hh, col] = bf16(o[t, 4 * j + 2 * r] * inv[t, r])
                            o_out[row, hh, col + 1] = bf16(o[t, 4 * j + 2 * r + 1] * inv[t, r])
                        if tq[t] == 0:
                            msc = 0 if m[t, r] == -np.inf else m[t, r] * sl2
                            lse_out[hh, row] = (msc + math.log2(lq[t, r])) * math.log(2)
    return o_out, lse_out


def reference(q, k, v, causal):
    s_q, h, D = q.shape
    s_k, h_kv, _ = k.shape
    grp = h // h_kv
    o = np.empty((s_q, h, D))
    lse = np.empty((h, s_q))
    for hh in range(h):
        s = q[:, hh].astype(np.float64) @ k[:, hh // grp].astype(np.float64).T / math.sqrt(D)
        if causal:
            s[np.triu_indices(s_q, 1, s_k)] = -np.inf
        mx = s.max(1, keepdims=True)
        e = np.exp(s - mx)
        lse[hh] = (mx[:, 0] + np.log(e.sum(1)))
        o[:, hh] = (e / e.sum(1, keepdims=True)) @ v[:, hh // grp].astype(np.float64)
    return o, lse


def main():
    rng = np.random.default_rng(0)
    fails = 0
    cases = [(128, 200, 200, 2, 1, 1), (128, 130, 300, 2, 2, 0), (128, 128, 128, 1, 1, 0),
             # head dim 64: causal GQA over 4 kv tiles (the 4-stage ring wraps once), a partial last kv tile
             # in both forms, one full tile
             (64, 520, 520, 2, 1, 1), (64, 200, 200, 4, 2, 1), (64, 130, 300, 2, 2, 0), (64, 128, 128, 1, 1, 0)]
    for (D, s_q, s_k, h, h_kv, causal) in cases:
        q = bf16(rng.standard_normal((s_q, h, D)).astype(np.float32))
        k = bf16(rng.standard_normal((s_k, h_kv, D)).astype(np.float32))
        v = bf16(rng.standard_normal((s_k, h_kv, D)).astype(np.float32))
        o, lse = emulate(q, k, v, causal)
        o_ref, lse_ref = reference(q, k, v, causal)
        e_o = np.linalg.norm(o - o_ref) / np.linalg.norm(o_ref)
        e_l = np.linalg.norm(lse - lse_ref) / np.linalg.norm(lse_ref)
        ok = np.isfinite(o).all() and np.isfinite(lse).all() and e_o < 1e-2 and e_l < 1e-4
        fails += not ok
        print(f"D={D} S_q={s_q} S_k={s_k} H={h}/{h_kv} causal={causal}: O err {e_o:.2e} LSE err {e_l:.2e} "
              f"{'ok' if ok else 'FAIL'}", flush=True)
    print(f"{len(cases) - fails} passed, {fails} failed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
