"""CPU emulation of the sm_90a attention backward's data movement and fragment math (no GPU needed).

  python3 test/gpu/kernels/sm90/emulate_bwd.py

Mirrors the backward's main loop at head dim 128 step by step with numpy (as the first, standalone
version of the kernel had it, commit 6399948: its prep pass and bf16 epilogue are not the template's,
whose FPDT form takes lse and delta as given and adds fp32 dq/dk/dv; the loop's layouts are the same) (the layout rules are emulate.py's, imported
from there: TMA SWIZZLE_128B placement, CUTLASS's canonical GMMA K-major / MN-major SW128 layouts
read through the kernel's descriptors, the wgmma accumulator layout and the RS A-fragment layout):
- prep: delta = rowsum(dO * O) from bf16 O (as the forward gives it), lse2 = lse * log2(e), padded
  rows lse2 = +inf, delta = 0;
- per CTA (kv head, 128 kv rows): K/V tiles of 128 rows, Q/dO tiles of 64 rows in a 2-stage ring,
  lse2/delta rows read by the consumers' index math;
- per consumer warpgroup c and q tile: S^T and dP^T through the descriptors (A = 64 kv rows at
  +c*8 KB, B = the 64-row tile with halves 8 KB apart), the mask and exp2 on per-thread registers,
  P^T / dS^T packed to bf16 pairs and rebuilt as RS A operands, dV/dK += through MN-major B
  descriptors (LBO 8 KB); dS^T stored to shared memory by the kernel's swizzled st.shared addresses,
  then dQ_c through the trans-A descriptor of that buffer and the trans-B descriptor of K's half c;
  fp32 adds into dQ_acc by the kernel's atomic index math;
- epilogue: dV, scale*dK to bf16 by the kernel's store index math; dQ = bf16(scale * dQ_acc).
Compares dQ, dK, dV with a float64 reference. The constants are the kernel's: keep them in sync."""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulate import a_layout, bf16, c_layout, read_kmajor, read_mnmajor, swz  # noqa: E402

D, BN, BM = 128, 128, 64
KV, KVHALF, QT, QHALF, DS = 32768, 16384, 16384, 8192, 16384
ST = 2
SK, SV = 0, KV
SQ = 2 * KV
SDO = SQ + ST * QT
SDS = SDO + ST * QT
SMEM_SLOTS = (SDS + 2 * DS) // 2


def tma_tile(mat, row0, rows):
    """mat [S, 128] -> slots of a [rows x 128] tile: two 64-column halves of rows*128 bytes, swizzled."""
    half = rows * 128
    out = np.zeros(rows * 128, dtype=np.float32)
    r = np.arange(rows)[:, None]
    d = np.arange(D)[None, :]
    byte = (d // 64) * half + r * 128 + (((d % 64) // 8) ^ (r % 8)) * 16 + (d % 8) * 2
    g = row0 + np.arange(rows)
    ok = (g >= 0) & (g < mat.shape[0])
    vals = np.zeros((rows, D), dtype=np.float32)
    vals[ok] = mat[g[ok]]
    out[(byte // 2).ravel()] = vals.ravel()
    return out


def desc(start, lbo, sbo):
    return dict(start=start, lbo=(lbo >> 4) << 4, sbo=(sbo >> 4) << 4)


def adv(dsc, off):
    return dict(dsc, start=dsc["start"] + off)


def kmaj(smem, dsc, n):
    """Vectorized read_kmajor (emulate.py): (mn, k) -> start + (mn%8)*128 + (mn//8)*SBO + 2k, swizzled."""
    mn = np.arange(n)[:, None]
    k = np.arange(16)[None, :]
    a = dsc["start"] + (mn % 8) * 128 + (mn // 8) * dsc["sbo"] + 2 * k
    return smem[swz(a) // 2]


def mnmaj(smem, dsc, n):
    """Vectorized read_mnmajor: (mn, k) -> start + 2(mn%64) + (mn//64)LBO + (k%8)128 + (k//8)SBO, swizzled."""
    mn = np.arange(n)[:, None]
    k = np.arange(16)[None, :]
    a = dsc["start"] + 2 * (mn % 64) + (mn // 64) * dsc["lbo"] + (k % 8) * 128 + (k // 8) * dsc["sbo"]
    return smem[swz(a) // 2]


T = np.arange(128)
# accumulator layout index arrays: register i of thread t -> (row, col)
C_ROW = np.array([[c_layout(t, i)[0] for i in range(64)] for t in range(128)])
C_COL = np.array([[c_layout(t, i)[1] for i in range(64)] for t in range(128)])
A_M = np.array([[a_layout(t, v)[0] for v in range(8)] for t in range(128)])
A_K = np.array([[a_layout(t, v)[1] for v in range(8)] for t in range(128)])


def to_regs(mat, nregs):
    return mat[C_ROW[:, :nregs], C_COL[:, :nregs]].astype(np.float32)


def from_regs(regs, ncols):
    out = np.full((64, ncols), np.nan, dtype=np.float32)
    n = regs.shape[1]
    out[C_ROW[:, :n], C_COL[:, :n]] = regs
    return out


def rs_a(xa, kk):
    """A[64 x 16] of the RS wgmma from the packed registers xa[t, kk, reg, half] (ALayout_64x16)."""
    a = np.full((64, 16), np.nan, dtype=np.float32)
    vals = xa[:, kk].reshape(128, 8)  # value v = half (v % 2) of register v // 2
    a[A_M, A_K] = vals
    assert not np.isnan(a).any()
    return a


def pack_x(x):
    """pack_x: xa[kk][r] = (lo, hi) = x[8kk + 2r], x[8kk + 2r + 1], rounded to bf16."""
    return bf16(x).reshape(128, 4, 4, 2)


def emulate(q, k, v, o, do, lse, causal):
    s, h, _ = q.shape
    h_kv = k.shape[1]
    grp = h // h_kv
    scale = 1.0 / math.sqrt(D)
    sl2 = np.float32(1.4426950408889634 * scale)
    s_pad = (s + BM - 1) // BM * BM
    n_q = s_pad // BM
    n_kv = (s + BN - 1) // BN
    # prep
    delta = np.zeros((h, s_pad), dtype=np.float32)
    lse2 = np.full((h, s_pad), np.inf, dtype=np.float32)
    delta[:, :s] = np.einsum("shd,shd->hs", o.astype(np.float32), do.astype(np.float32))
    lse2[:, :s] = lse * np.float32(1.4426950408889634)
    dq_acc = np.zeros((s, h, D), dtype=np.float32)
    dk_out = np.full((s, h_kv, D), np.nan, dtype=np.float32)
    dv_out = np.full((s, h_kv, D), np.nan, dtype=np.float32)
    w, lane = T // 32, T % 32
    g, tq = lane // 4, lane % 4
    for kvh in range(h_kv):
        for n in range(n_kv):
            smem = np.zeros(SMEM_SLOTS, dtype=np.float32)
            smem[SK // 2:(SK + KV) // 2] = tma_tile(k[:, kvh], n * BN, BN)
            smem[SV // 2:(SV + KV) // 2] = tma_tile(v[:, kvh], n * BN, BN)
            m_start = (n * BN) // BM if causal else 0
            kv_tail = (n + 1) * BN > s
            dv = [np.zeros((128, 64), np.float32) for _ in range(2)]
            dk = [np.zeros((128, 64), np.float32) for _ in range(2)]
            it = 0
            for gi in range(grp):
                hq = kvh * grp + gi
                for m in range(m_start, n_q):
                    st = it % ST
                    b = it & 1
                    smem[(SQ + st * QT) // 2:(SQ + (st + 1) * QT) // 2] = tma_tile(q[:, hq], m * BM, BM)
                    smem[(SDO + st * QT) // 2:(SDO + (st + 1) * QT) // 2] = tma_tile(do[:, hq], m * BM, BM)
                    lse_s = lse2[hq, m * BM:(m + 1) * BM]
                    delta_s = delta[hq, m * BM:(m + 1) * BM]
                    db_qk = desc(SQ + st * QT, 16, 1024)
                    db_dok = desc(SDO + st * QT, 16, 1024)
                    db_qmn = desc(SQ + st * QT, QHALF, 1024)
                    db_domn = desc(SDO + st * QT, QHALF, 1024)
                    da_ds = desc(SDS + b * DS, 8192, 1024)
                    for c in range(2):
                        kv_loc = c * 64 + w * 16 + g
                        kv_row = n * BN + kv_loc
                        da_k = desc(SK + c * 64 * 128, 16, 1024)
                        da_v = desc(SV + c * 64 * 128, 16, 1024)
                        S = np.zeros((64, 64), np.float32)
                        dP = np.zeros((64, 64), np.float32)
                        for kk in range(8):
                            oa = (kk >> 2) * KVHALF + (kk & 3) * 32
                            ob = (kk >> 2) * QHALF + (kk & 3) * 32
                            S += kmaj(smem, adv(da_k, oa), 64) @ kmaj(smem, adv(db_qk, ob), 64).T
                            dP += kmaj(smem, adv(da_v, oa), 64) @ kmaj(smem, adv(db_dok, ob), 64).T
                        sacc = to_regs(S, 32)
                        dpacc = to_regs(dP, 32)
                        need_mask = kv_tail or (causal and m * BM < (n + 1) * BN)
                        for j in range(8):
                            for e in range(4):
                                i = 4 * j + e
                                if need_mask:
                                    qcol = m * BM + 8 * j + 2 * tq + (e & 1)
                                    kv = kv_row + (8 if e & 2 else 0)
                                    msk = (kv >= s) | ((kv > qcol) if causal else False)
                                    sacc[:, i] = np.where(msk, -np.inf, sacc[:, i])
                                l2 = lse_s[8 * j + 2 * tq + (e & 1)]
                                with np.errstate(invalid="ignore"):
                                    sacc[:, i] = np.exp2((sacc[:, i] * sl2 - l2).astype(np.float32))
                        pa = pack_x(sacc)
                        dVp = np.zeros((64, 128), np.float32)
                        for kk in range(4):
                            dVp += rs_a(pa, kk) @ mnmaj(smem, adv(db_domn, kk * 2048), 128).T
                        dv[c] += to_regs(dVp, 64)
                        for j in range(8):
                            for e in range(4):
                                i = 4 * j + e
                                d2 = delta_s[8 * j + 2 * tq + (e & 1)]
                                dpacc[:, i] = sacc[:, i] * (dpacc[:, i] - d2)
                        dsa = pack_x(dpacc)
                        # st.shared of dS^T (4-byte stores of bf16 pairs, lo at the lower address)
                        row_a = SDS + b * DS + kv_loc * 128
                        for kk in range(4):
                            c0 = ((2 * kk) ^ g) * 16 + tq * 4
                            c1 = ((2 * kk + 1) ^ g) * 16 + tq * 4
                            for reg, addr in ((0, row_a + c0), (1, row_a + 8 * 128 + c0), (2, row_a + c1),
                                              (3, row_a + 8 * 128 + c1)):
                                smem[addr // 2] = dsa[:, kk, reg, 0]
                                smem[addr // 2 + 1] = dsa[:, kk, reg, 1]
                        dKp = np.zeros((64, 128), np.float32)
                        for kk in range(4):
                            dKp += rs_a(dsa, kk) @ mnmaj(smem, adv(db_qmn, kk * 2048), 128).T
                        dk[c] += to_regs(dKp, 64)
                    # consumer_sync: both halves of dS^T are in shared memory
                    for c in range(2):
                        db_kh = desc(SK + c * KVHALF, KVHALF, 1024)
                        dQp = np.zeros((64, 64), np.float32)
                        for kk in range(8):
                            dQp += mnmaj(smem, adv(da_ds, kk * 2048), 64) @ mnmaj(smem, adv(db_kh, kk * 2048), 64).T
                        dqacc = to_regs(dQp, 32)
                        q0 = m * BM + w * 16 + g
                        for j in range(8):
                            for e in range(4):
                                row = q0 + (8 if e & 2 else 0)
                                col = c * 64 + 8 * j + 2 * tq + (e & 1)
                                ok = row < s
                                np.add.at(dq_acc, (row[ok], hq, col[ok]), dqacc[ok, 4 * j + e])
                    it += 1
            # epilogue
            for c in range(2):
                kv_row = n * BN + c * 64 + w * 16 + g
                for r in range(2):
                    row = kv_row + 8 * r
                    ok = row < s
                    for j in range(16):
                        for e in range(2):
                            col = 8 * j + 2 * tq + e
                            dv_out[row[ok], kvh, col[ok]] = bf16(dv[c][ok, 4 * j + 2 * r + e])
                            dk_out[row[ok], kvh, col[ok]] = bf16(dk[c][ok, 4 * j + 2 * r + e] * np.float32(scale))
    dq_out = bf16(dq_acc * np.float32(scale))
    return dq_out, dk_out, dv_out


def reference(q, k, v, do, causal):
    """float64 O, LSE and dQ, dK, dV (the same formulas autograd gives)."""
    s, h, _ = q.shape
    h_kv = k.shape[1]
    grp = h // h_kv
    scale = 1.0 / math.sqrt(D)
    o = np.empty((s, h, D))
    lse = np.empty((h, s))
    dq = np.zeros((s, h, D))
    dk = np.zeros((s, h_kv, D))
    dv = np.zeros((s, h_kv, D))
    for hh in range(h):
        kh, vh = k[:, hh // grp].astype(np.float64), v[:, hh // grp].astype(np.float64)
        qh, doh = q[:, hh].astype(np.float64), do[:, hh].astype(np.float64)
        sc = qh @ kh.T * scale
        if causal:
            sc[np.triu_indices(s, 1, s)] = -np.inf
        mx = sc.max(1, keepdims=True)
        e = np.exp(sc - mx)
        lse[hh] = mx[:, 0] + np.log(e.sum(1))
        p = np.exp(sc - lse[hh][:, None])
        o[:, hh] = p @ vh
        dp = doh @ vh.T
        ds = p * (dp - (doh * o[:, hh]).sum(1, keepdims=True))
        dq[:, hh] = ds @ kh * scale
        dk[:, hh // grp] += ds.T @ qh * scale
        dv[:, hh // grp] += p.T @ doh
    return o, lse, dq, dk, dv


def main():
    rng = np.random.default_rng(0)
    fails = 0
    cases = ((200, 2, 1, 1), (200, 2, 2, 0), (128, 1, 1, 1), (77, 2, 1, 0))
    for (s, h, h_kv, causal) in cases:
        q = bf16(rng.standard_normal((s, h, D)).astype(np.float32))
        k = bf16(rng.standard_normal((s, h_kv, D)).astype(np.float32))
        v = bf16(rng.standard_normal((s, h_kv, D)).astype(np.float32))
        do = bf16(rng.standard_normal((s, h, D)).astype(np.float32))
        o, lse, dq_r, dk_r, dv_r = reference(q, k, v, do, causal)
        dq, dk, dv = emulate(q, k, v, bf16(o.astype(np.float32)), do, lse.astype(np.float32), causal)
        errs = []
        for x, r in ((dq, dq_r), (dk, dk_r), (dv, dv_r)):
            errs.append(np.linalg.norm(x - r) / np.linalg.norm(r) if np.isfinite(x).all() else float("nan"))
        ok = all(e < 1e-2 for e in errs)
        fails += not ok
        print(f"S={s} H={h}/{h_kv} causal={causal}: dQ err {errs[0]:.2e} dK err {errs[1]:.2e} dV err {errs[2]:.2e} "
              f"{'ok' if ok else 'FAIL'}", flush=True)
    print(f"{len(cases) - fails} passed, {fails} failed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
