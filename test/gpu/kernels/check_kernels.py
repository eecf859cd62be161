"""Checks every rendered fpdtc kernel against a float64 torch reference, on the GPU machine.

  python3 test/gpu/kernels/check_kernels.py [kernels_dir=.carry/kernels] [out_dir=$OUT or /tmp/fpdt_check]

Random (never zero) inputs, several sizes each (tile-size non-multiples included), gradients included.
Passes when ||out - ref|| / ||ref|| <= tolerance; failing outputs are saved to <out_dir>/failures.pt."""
import ctypes as C
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build import build  # noqa: E402

KDIR = sys.argv[1] if len(sys.argv) > 1 else ".carry/kernels"
OUT = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("OUT", "/tmp/fpdt_check")
dev = torch.device("cuda")
f64, f32, bf = torch.float64, torch.float32, torch.bfloat16
results, failures = [], {}
P = lambda t: C.c_void_p(t.data_ptr()) if t is not None else C.c_void_p(0)  # noqa: E731
I, LL, F = C.c_int, C.c_longlong, C.c_float


def stream():
    return C.c_void_p(torch.cuda.current_stream().cuda_stream)


def call(lib, name, *args):
    fn = getattr(lib, name)
    fn.restype = C.c_int
    err = fn(*args, stream())
    torch.cuda.synchronize()
    if err != 0:
        raise RuntimeError(f"{name} returned cudaError {err}")


def rel(out, ref):
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("nan")
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def check(name, pairs, tol):
    """pairs: {label: (out, ref)}"""
    errs = {k: rel(o, r) for k, (o, r) in pairs.items()}
    ok = all(e <= tol for e in errs.values())  # NaN fails
    results.append((name, ok, errs))
    if not ok:
        failures[name] = {k: (o.detach().cpu(), r.detach().cpu()) for k, (o, r) in pairs.items()}
    print(f"{'PASS' if ok else 'FAIL'} {name}: " + ", ".join(f"{k}={e:.2e}" for k, e in errs.items()), flush=True)


def rnd(*shape, dtype=bf, scale=1.0):
    t = torch.randn(*shape, device=dev, dtype=f32) * scale
    return t.to(dtype)


def poison(*shape, dtype=f32):
    return torch.full(shape, float("nan"), device=dev, dtype=dtype)


def at_offset(buf, off, *shape):
    """A view of buf starting `off` elements in: off = 1 or 3 leaves a bf16 base 2 or 6 bytes past 16-byte alignment."""
    n = math.prod(shape)
    return buf[off:off + n].view(*shape)


def untouched(name, buf, off, n):
    """buf (poisoned with NaN) kept its NaNs outside [off, off + n): the kernel wrote nothing beyond its elements."""
    outside = torch.cat([buf[:off], buf[off + n:]])
    ok = bool(torch.isnan(outside.float()).all())
    results.append((name, ok, {}))
    if not ok:
        print(f"FAIL {name}", flush=True)


def exact(name, out, ref):
    ok = torch.equal(out, ref)
    results.append((name, ok, {}))
    print(f"{'PASS' if ok else 'FAIL'} {name}", flush=True)


# ---------------------------------------------------------------- attention
def ref_attention(q, k, v, causal, scale, q_pos0=0, k_pos0=0):
    """float64; q [Lq,Hq,d], k/v [Lk,Hkv,d] -> o [Lq,Hq,d], lse [Hq,Lq]"""
    Hq, Hkv = q.shape[1], k.shape[1]
    qd, kd, vd = q.double(), k.double().repeat_interleave(Hq // Hkv, 1), v.double().repeat_interleave(Hq // Hkv, 1)
    s = torch.einsum("qhd,khd->hqk", qd, kd) * scale
    if causal:
        qi = torch.arange(q.shape[0], device=dev)[:, None] + q_pos0
        ki = torch.arange(k.shape[0], device=dev)[None, :] + k_pos0
        s = s.masked_fill(ki > qi, float("-inf"))
    lse = torch.logsumexp(s, -1)
    o = torch.einsum("hqk,khd->qhd", torch.softmax(s, -1), vd)
    return o, lse


def attn_fwd(lib, q, k, v, causal, mode, o_acc=None, lse=None, suffix="", q_head_base=0, group=None):
    Lq, Hq, d = q.shape
    Lk, Hkv = k.shape[0], k.shape[1]
    o_out = poison(Lq, Hq, d, dtype=bf) if mode == 2 else None
    if o_acc is None:
        o_acc = poison(Lq, Hq, d) if mode == 0 else None
    if lse is None:
        lse = poison(Hq, Lq)
    call(lib, "fpdt_attn_fwd" + suffix, P(q), P(k), P(v), P(o_acc), P(lse), P(o_out), I(Lq), I(Lk), I(Hq), I(Hkv),
         I(q_head_base), I(group or Hq // Hkv), F(1 / math.sqrt(d)), I(int(causal)), I(mode))
    return (o_out if mode == 2 else o_acc), lse


def check_attention(lib, tag, Hq, Hkv, d, suffixes):
    scale = 1 / math.sqrt(d)
    # 1500 causal and 200 x 1100 visit 12 and 9 kv tiles of 128: the wgmma kernel's K/V ring (4 stages at
    # head dim 64, 2 at 128) is reused three times or more, so each slot's mbarrier phase goes 0, 1, 0;
    # 384 x 1024: a full block of whole kv tiles
    for Lq, Lk, causal in [(1, 1, True), (64, 64, True), (100, 100, True), (333, 333, True), (1000, 1000, True),
                           (1500, 1500, True), (128, 200, False), (77, 300, False), (129, 1, False), (200, 1100, False),
                           (384, 1024, False)]:
        q, k, v = rnd(Lq, Hq, d), rnd(Lk, Hkv, d), rnd(Lk, Hkv, d)
        o_r, lse_r = ref_attention(q, k, v, causal, scale)
        for sfx in suffixes:
            o, lse = attn_fwd(lib, q, k, v, causal, 2, suffix=sfx)
            o0, lse0 = attn_fwd(lib, q, k, v, causal, 0, suffix=sfx)
            check(f"{tag} attn_fwd{sfx} Lq={Lq} Lk={Lk} causal={causal}",
                  {"o_bf16": (o, o_r), "lse": (lse, lse_r), "o_acc": (o0, o_r), "lse_acc": (lse0, lse_r)}, 1e-2)
    # GQA head base: a rank's slice of query heads [qb, qb + hq) and the kv heads they read
    group = Hq // Hkv
    if group > 1:
        qb, hq = group + 2, 2 * group  # straddles three kv heads
        kb, hk = qb // group, (qb + hq - 1) // group - qb // group + 1
        for Lq, Lk, causal in [(300, 300, True), (200, 333, False)]:
            q, k, v = rnd(Lq, Hq, d), rnd(Lk, Hkv, d), rnd(Lk, Hkv, d)
            o_r, lse_r = ref_attention(q, k, v, causal, scale)
            ql, kl, vl = q[:, qb:qb + hq].contiguous(), k[:, kb:kb + hk].contiguous(), v[:, kb:kb + hk].contiguous()
            for sfx in suffixes:
                o, lse = attn_fwd(lib, ql, kl, vl, causal, 2, suffix=sfx, q_head_base=qb, group=group)
                check(f"{tag} attn_fwd{sfx} head base {qb} heads {hq} Lq={Lq} Lk={Lk} causal={causal}",
                      {"o_bf16": (o, o_r[:, qb:qb + hq]), "lse": (lse, lse_r[qb:qb + hq])}, 1e-2)
    # FPDT pattern: q chunk i against kv chunks 0..i, causal on the diagonal; fused (mode 1) and merge kernel
    for sfx, L, C_ in [(sfx, L, C_) for sfx in suffixes for L, C_ in [(450, 150), (1024, 256)]]:
        q, k, v = rnd(L, Hq, d), rnd(L, Hkv, d), rnd(L, Hkv, d)
        o_r, lse_r = ref_attention(q, k, v, True, scale)
        o_f, lse_f, o_m = poison(L, Hq, d, dtype=bf), poison(Hq, L), poison(L, Hq, d, dtype=bf)
        for i in range(0, L, C_):
            qi = q[i:i + C_].contiguous()
            acc, ls = poison(C_, Hq, d), poison(Hq, C_)
            call(lib, "fpdt_attn_acc_init", P(acc), P(ls), I(C_), I(Hq))
            acc2, ls2 = acc.clone(), ls.clone()
            for j in range(0, i + 1, C_):
                kj, vj = k[j:j + C_].contiguous(), v[j:j + C_].contiguous()
                attn_fwd(lib, qi, kj, vj, i == j, 1, acc, ls, suffix=sfx)
                ob, lb = attn_fwd(lib, qi, kj, vj, i == j, 0, suffix=sfx)
                call(lib, "fpdt_attn_merge", P(acc2), P(ls2), P(ob), P(lb), I(C_), I(Hq))
            oi = poison(C_, Hq, d, dtype=bf)
            call(lib, "fpdt_attn_finalize", P(acc), P(oi), I(C_), I(Hq))
            o_f[i:i + C_] = oi
            lse_f[:, i:i + C_] = ls
            call(lib, "fpdt_attn_finalize", P(acc2), P(oi), I(C_), I(Hq))
            o_m[i:i + C_] = oi
        check(f"{tag} attn{sfx} chunked fused+merge L={L} chunk={C_}",
              {"o_fused": (o_f, o_r), "lse_fused": (lse_f, lse_r), "o_merge": (o_m, o_r)}, 1e-2)


def ref_attention_grads(q, k, v, do, causal, scale):
    qd, kd, vd = (t.double().requires_grad_() for t in (q, k, v))
    o, _ = ref_attention(qd, kd, vd, causal, scale)
    o.backward(do.double())
    return qd.grad, kd.grad, vd.grad


def check_attention_bwd(lib, tag, Hq, Hkv, d, suffixes):
    scale = 1 / math.sqrt(d)
    # the wgmma backward (_sm90) takes Lq a multiple of 64 and refuses the rest (cudaErrorNotSupported: its
    # callers fall back); Lk is free (a kv tile past Lk is masked)
    # full blocks run in bands of q tiles (32 MiB of rows per kv head: one band here); the _band copy's size is
    # FPDT_BAND_MIB: at 1/2 MiB a few q tiles each, so 1024 x 384 runs several, each walked from an offset per kv tile
    os.environ["FPDT_BAND_MIB"] = "0.5"
    sizes = [(64, 64, True), (100, 100, True), (333, 333, True), (77, 300, False), (200, 130, False),
             (128, 128, True), (640, 640, True), (192, 333, False), (256, 200, False), (64, 3, False),
             (1024, 384, False)]
    for Lq, Lk, causal in sizes:
        q, k, v, do = rnd(Lq, Hq, d), rnd(Lk, Hkv, d), rnd(Lk, Hkv, d), rnd(Lq, Hq, d)
        o, lse = attn_fwd(lib, q, k, v, causal, 2)
        delta = poison(Hq, Lq)
        call(lib, "fpdt_attn_bwd_delta", P(o), P(do), P(delta), I(Lq), I(Hq))
        delta_r = (o.double() * do.double()).sum(-1).transpose(0, 1)
        gq, gk, gv = ref_attention_grads(q, k, v, do, causal, scale)
        for sfx in [x for x in suffixes if Lq % 64 == 0 or not x.endswith("_sm90")]:
            b_q, b_k, b_v = rnd(Lq, Hq, d, dtype=f32), rnd(Lk, Hkv, d, dtype=f32), rnd(Lk, Hkv, d, dtype=f32)
            dq, dk, dv = b_q.clone(), b_k.clone(), b_v.clone()
            call(lib, "fpdt_attn_bwd" + sfx, P(q), P(k), P(v), P(do), P(lse), P(delta), P(dq), P(dk), P(dv), I(Lq),
                 I(Lk), I(Hq), I(Hkv), I(0), I(Hq // Hkv), F(scale), I(int(causal)))
            check(f"{tag} attn_bwd{sfx} Lq={Lq} Lk={Lk} causal={causal}",
                  {"delta": (delta, delta_r), "dq": (dq - b_q, gq), "dk": (dk - b_k, gk), "dv": (dv - b_v, gv)}, 1e-2)
            # a second run on the same inputs: dq within float atomics' order; dk/dv bit-identical, except where
            # the wgmma launcher may split a full block over its q tiles (dk/dv then added with atomics too)
            dq2, dk2, dv2 = b_q.clone(), b_k.clone(), b_v.clone()
            call(lib, "fpdt_attn_bwd" + sfx, P(q), P(k), P(v), P(do), P(lse), P(delta), P(dq2), P(dk2), P(dv2), I(Lq),
                 I(Lk), I(Hq), I(Hkv), I(0), I(Hq // Hkv), F(scale), I(int(causal)))
            rerun = lambda x2, x, b: ((x2 - x).abs().max() / (x - b).abs().max().clamp_min(1e-30)).item()  # noqa: E731
            same = torch.equal(dk, dk2) and torch.equal(dv, dv2)
            dq_rerun, dkv_rerun = rerun(dq2, dq, b_q), max(rerun(dk2, dk, b_k), rerun(dv2, dv, b_v))
            may_split = not causal and sfx.removesuffix("_sm90") in ("", "_band", "_heads", "_dqpartial") and hasattr(lib, "fpdt_attn_bwd_sm90")
            ok = (same or (may_split and dkv_rerun <= 1e-3)) and dq_rerun <= 1e-3
            results.append((f"{tag} attn_bwd{sfx} rerun Lq={Lq} Lk={Lk}", ok,
                            {"dk_dv_identical": same, "dk_dv": dkv_rerun, "dq": dq_rerun}))
            print(f"{'PASS' if ok else 'FAIL'} {tag} attn_bwd{sfx} rerun Lq={Lq} Lk={Lk}: dk/dv identical {same}"
                  f"{'' if same else f' ({dkv_rerun:.1e}, split full block)' if may_split else ''}, dq {dq_rerun:.1e}", flush=True)
    # GQA head base: a rank's slice of query heads [qb, qb + hq) and the kv heads they read; dk/dv get only
    # the local q heads' contributions
    group = Hq // Hkv
    if group > 1:
        qb, hq = group + 2, 2 * group  # straddles three kv heads
        kb, hk = qb // group, (qb + hq - 1) // group - qb // group + 1
        for Lq, Lk, causal in [(320, 320, True), (100, 100, True), (256, 333, False)]:
            ql, kl, vl, dol = rnd(Lq, hq, d), rnd(Lk, hk, d), rnd(Lk, hk, d), rnd(Lq, hq, d)
            idx = torch.tensor([(qb + h) // group - kb for h in range(hq)], device=dev)
            kx, vx = kl[:, idx].contiguous(), vl[:, idx].contiguous()  # each local q head's own kv head
            o, lse = attn_fwd(lib, ql, kl, vl, causal, 2, q_head_base=qb, group=group)
            delta = poison(hq, Lq)
            call(lib, "fpdt_attn_bwd_delta", P(o), P(dol), P(delta), I(Lq), I(hq))
            gq, gkx, gvx = ref_attention_grads(ql, kx, vx, dol, causal, scale)
            gk = torch.zeros(Lk, hk, d, device=dev, dtype=f64).index_add_(1, idx, gkx)
            gv = torch.zeros(Lk, hk, d, device=dev, dtype=f64).index_add_(1, idx, gvx)
            for sfx in [x for x in suffixes if Lq % 64 == 0 or not x.endswith("_sm90")]:
                dq, dk, dv = torch.zeros(Lq, hq, d, device=dev), torch.zeros(Lk, hk, d, device=dev), torch.zeros(Lk, hk, d, device=dev)
                call(lib, "fpdt_attn_bwd" + sfx, P(ql), P(kl), P(vl), P(dol), P(lse), P(delta), P(dq), P(dk), P(dv),
                     I(Lq), I(Lk), I(hq), I(hk), I(qb), I(group), F(scale), I(int(causal)))
                check(f"{tag} attn_bwd{sfx} head base {qb} heads {hq} Lq={Lq} Lk={Lk} causal={causal}",
                      {"dq": (dq, gq), "dk": (dk, gk), "dv": (dv, gv)}, 1e-2)
    # FPDT backward: kv chunk j outer, q chunks i >= j inner, lse/delta of the full forward (450/150: the
    # mma.sync path; 1024/256: chunks the wgmma kernel takes)
    for L, C_ in [(450, 150), (1024, 256)]:
        check_attention_bwd_chunked(lib, tag, Hq, Hkv, d, L, C_)


def check_attention_bwd_chunked(lib, tag, Hq, Hkv, d, L, C_):
    scale = 1 / math.sqrt(d)
    q, k, v, do = rnd(L, Hq, d), rnd(L, Hkv, d), rnd(L, Hkv, d), rnd(L, Hq, d)
    o, lse = attn_fwd(lib, q, k, v, True, 2)
    delta = poison(Hq, L)
    call(lib, "fpdt_attn_bwd_delta", P(o), P(do), P(delta), I(L), I(Hq))
    dq = torch.zeros(L, Hq, d, device=dev)
    dk, dv = torch.zeros(L, Hkv, d, device=dev), torch.zeros(L, Hkv, d, device=dev)
    for j in range(0, L, C_):
        kj, vj = k[j:j + C_].contiguous(), v[j:j + C_].contiguous()
        dkj, dvj = torch.zeros(C_, Hkv, d, device=dev), torch.zeros(C_, Hkv, d, device=dev)
        for i in range(j, L, C_):
            # keep every temporary alive across the call: a freed one's memory can be handed to the next
            dqi, qi, doi = dq[i:i + C_].contiguous(), q[i:i + C_].contiguous(), do[i:i + C_].contiguous()
            lsei, deltai = lse[:, i:i + C_].contiguous(), delta[:, i:i + C_].contiguous()
            call(lib, "fpdt_attn_bwd", P(qi), P(kj), P(vj), P(doi), P(lsei), P(deltai), P(dqi), P(dkj), P(dvj), I(C_),
                 I(C_), I(Hq), I(Hkv), I(0), I(Hq // Hkv), F(scale), I(int(i == j)))
            dq[i:i + C_] = dqi
        dk[j:j + C_], dv[j:j + C_] = dkj, dvj
    gq, gk, gv = ref_attention_grads(q, k, v, do, True, scale)
    check(f"{tag} attn_bwd chunked L={L} chunk={C_}", {"dq": (dq, gq), "dk": (dk, gk), "dv": (dv, gv)}, 1e-2)


# ---------------------------------------------------------------- the rest
def check_norm(lib, tag, spec):
    """The backward takes 256 / threads rows at a time a CTA (1, 7 and 4099 rows leave slots idle or short) over
    the CTAs that fit at once (5000 and 4099 rows give each slot several rows: the next row's prefetch); at base
    offsets of 1 and 2 elements (x, w, dy, dx) it takes one and two bf16 an access instead of 8 (the forward is
    called on aligned copies: its bf16x2 accesses need 4-byte bases)."""
    H, eps = spec["hidden"], spec["eps"]
    for rows, mis in [(1, 0), (7, 0), (300, 0), (5000, 0), (4099, 0), (37, 1), (37, 2), (1001, 1)]:
        x, dy = rnd(rows, H, scale=2.0), rnd(rows, H)
        w = (1 + 0.3 * torch.randn(H, device=dev)).to(bf)
        b = (0.3 * torch.randn(H, device=dev)).to(bf)
        xd, wd, bd = x.double().requires_grad_(), w.double().requires_grad_(), b.double().requires_grad_()
        y, dx, dw0, db0 = poison(rows, H, dtype=bf), poison(rows, H, dtype=bf), rnd(H, dtype=f32), rnd(H, dtype=f32)
        dw, db = dw0.clone(), db0.clone()
        rstd, mean = poison(rows), poison(rows)
        # the backward's operands, at element offset `mis` (copies of x, w, dy; dx in a poisoned buffer)
        n = rows * H
        dxb = poison(n + 8, dtype=bf)
        pad = lambda t: at_offset(torch.cat([torch.zeros(mis, dtype=bf, device=dev), t.reshape(-1),  # noqa: E731
                                             torch.zeros(8, dtype=bf, device=dev)]), mis, *t.shape)
        xm, dym, wm, dx = pad(x), pad(dy), pad(w), at_offset(dxb, mis, rows, H)
        name = f"{tag} {spec['norm']}norm rows={rows}" + (f" offset={mis}" if mis else "")
        if spec["norm"] == "rms":
            rstd_r = torch.rsqrt(xd.pow(2).mean(-1) + eps)
            y_r = xd * rstd_r[:, None] * wd
            y_r.backward(dy.double())
            call(lib, "fpdt_rmsnorm_fwd", P(x), P(w), P(y), P(rstd), I(rows))
            call(lib, "fpdt_rmsnorm_bwd", P(xm), P(wm), P(dym), P(rstd), P(dx), P(dw), I(rows))
            check(name, {"y": (y, y_r), "rstd": (rstd, rstd_r), "dx": (dx, xd.grad), "dw": (dw - dw0, wd.grad)}, 1e-2)
        else:
            mean_r = xd.mean(-1)
            rstd_r = torch.rsqrt(((xd - mean_r[:, None]) ** 2).mean(-1) + eps)
            y_r = (xd - mean_r[:, None]) * rstd_r[:, None] * wd + bd
            y_r.backward(dy.double())
            call(lib, "fpdt_layernorm_fwd", P(x), P(w), P(b), P(y), P(mean), P(rstd), I(rows))
            call(lib, "fpdt_layernorm_bwd", P(xm), P(wm), P(dym), P(mean), P(rstd), P(dx), P(dw), P(db), I(rows))
            check(name, {"y": (y, y_r), "mean": (mean, mean_r), "rstd": (rstd, rstd_r), "dx": (dx, xd.grad),
                         "dw": (dw - dw0, wd.grad), "db": (db - db0, bd.grad)}, 1e-2)
        untouched(f"{name}: nothing written outside dx", dxb, mis, n)


def check_rope(lib, tag, spec):
    d, rd, theta = spec["headDim"], spec["rotaryDim"], spec["ropeTheta"]
    half = rd // 2
    inv = theta ** (-2.0 * torch.arange(half, device=dev, dtype=f64) / rd)
    # (L, H, position offset, base misalignment in elements): aligned bases take 16-byte accesses, misaligned
    # ones (1, 3) the one-pair fallback; a block takes 256 / (rotary_dim / 2) rows a pass, and 40000 rows
    # make several passes of every block (grid-stride, at most 16 blocks an SM), 3000 rows partial ones;
    # one head and 33 heads leave threads of a pass idle; positions up to 6.7e7 test the angle reduction
    for L, H, off, mis in [(37, 8, 0, 0), (200, 3, 1_000_000, 0), (65, 4, 3_999_937, 0), (37, 8, 5, 1),
                           (45, 5, 2_000_003, 3), (1, 1, 0, 0), (33, 1, 7, 0), (3000, 32, 123_456, 0),
                           (17, 33, 4_194_301, 0), (9, 2, 67_108_859, 0), (40_003, 3, 11, 0), (40_003, 3, 11, 1)]:
        n = L * H * d
        xb, dyb = rnd(n + 8), rnd(n + 8)
        x, dy = at_offset(xb, mis, L, H, d), at_offset(dyb, mis, L, H, d)
        ang = (torch.arange(L, device=dev, dtype=f64) + off)[:, None] * inv[None, :]
        cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]

        def rope_ref(t, sgn):
            t = t.double()
            x1, x2 = t[..., :half], t[..., half:rd]
            return torch.cat([x1 * cos - sgn * x2 * sin, x2 * cos + sgn * x1 * sin, t[..., rd:]], -1)

        yb, dxb = poison(n + 8, dtype=bf), poison(n + 8, dtype=bf)
        y, dx = at_offset(yb, mis, L, H, d), at_offset(dxb, mis, L, H, d)
        call(lib, "fpdt_rope_fwd", P(x), P(y), I(L), I(H), LL(off))
        call(lib, "fpdt_rope_bwd", P(dy), P(dx), I(L), I(H), LL(off))
        xinb = xb.clone()
        xin = at_offset(xinb, mis, L, H, d)
        call(lib, "fpdt_rope_fwd", P(xin), P(xin), I(L), I(H), LL(off))
        name = f"{tag} rope L={L} H={H} offset={off} misaligned={mis}"
        check(name, {"y": (y, rope_ref(x, 1)), "dx": (dx, rope_ref(dy, -1)), "inplace": (xin, rope_ref(x, 1))}, 1e-2)
        untouched(f"{name}: nothing written outside y", yb, mis, n)
        if rd < d:  # the dims past rotary_dim are copied bit for bit (or left alone in place)
            exact(f"{name}: pass-through", torch.cat([y[..., rd:], dx[..., rd:], xin[..., rd:]]),
                  torch.cat([x[..., rd:], dy[..., rd:], x[..., rd:]]))


def swiglu_case(lib, tag, rows, Fn, ld, up_at, mis, separate=False, inplace=False):
    """gate/up: rows of ld elements in one buffer (gate at `mis`, up `up_at` further), or two buffers (separate)."""
    span = (rows - 1) * ld + Fn
    if separate:
        gb, ub = rnd(span + 8, scale=2.0), rnd(span + 8, scale=2.0)
        gate, up = gb[mis:], ub[mis:]
    else:
        buf = rnd(up_at + span + 8, scale=2.0)
        gate, up = buf[mis:], buf[mis + up_at:]
    rows_of = lambda t: t.as_strided((rows, Fn), (ld, 1))  # noqa: E731
    g = rows_of(gate).double().requires_grad_()
    u = rows_of(up).double().requires_grad_()
    doutb, outb = rnd(rows * Fn + 8), poison(rows * Fn + 8, dtype=bf)
    dout, out = at_offset(doutb, mis, rows, Fn), at_offset(outb, mis, rows, Fn)
    ref = torch.nn.functional.silu(g) * u
    ref.backward(dout.double())
    call(lib, "fpdt_swiglu_fwd", P(gate), P(up), P(out), I(rows), LL(ld))
    if inplace:  # dgate, dup over gate, up
        dgate, dup = gate, up
    else:
        dgate = poison(gate.numel(), dtype=bf)
        dup = poison(up.numel(), dtype=bf) if separate else dgate[up_at:]
    call(lib, "fpdt_swiglu_bwd", P(gate), P(up), P(dout), P(dgate), P(dup), I(rows), LL(ld))
    name = f"{tag} swiglu rows={rows} ld={ld} up at +{up_at}{' separate' if separate else ''} misaligned={mis}{' in place' if inplace else ''}"
    check(name, {"out": (out, ref), "dgate": (rows_of(dgate), g.grad), "dup": (rows_of(dup), u.grad)}, 1e-2)
    untouched(f"{name}: nothing written outside out", outb, mis, rows * Fn)


def check_mlp(lib, tag, spec):
    Fn = spec["ffn"]
    if spec["mlp"] == "swiglu":
        # a fused [rows, 2F] projection (16-byte accesses), gate and up in buffers of their own (the programs'
        # call), bases off 16-byte alignment and a row stride not a multiple of 8 (one element at a time)
        for rows in [1, 5, 64]:
            swiglu_case(lib, tag, rows, Fn, 2 * Fn, Fn, 0)
        swiglu_case(lib, tag, 7, Fn, Fn, 0, 0, separate=True)
        swiglu_case(lib, tag, 3, Fn, 2 * Fn, Fn, 1)
        swiglu_case(lib, tag, 3, Fn, 2 * Fn + 1, Fn, 0)
        swiglu_case(lib, tag, 6, Fn, 2 * Fn, Fn, 0, inplace=True)
    else:
        # n a multiple of 8 and not; x, dy, dx and y off 16-byte alignment by the same element count (the first
        # ones one by one, then vectors) and by different counts (all one by one); dx over dy
        for n, mis, mis_y, inplace in [(Fn, 0, 0, False), (5 * Fn, 0, 0, False), (64 * Fn, 0, 0, False),
                                       (3 * Fn + 5, 1, 1, False), (1001, 3, 0, False), (7 * Fn + 3, 0, 0, True),
                                       (2 * Fn, 5, 5, True)]:
            xb, dyb, yb = rnd(n + 8, scale=2.0), rnd(n + 8), poison(n + 8, dtype=bf)
            x, dy, y = at_offset(xb, mis, n), at_offset(dyb, mis, n), at_offset(yb, mis_y, n)
            dx = dy if inplace else at_offset(poison(n + 8, dtype=bf), mis, n)
            xd = x.double().requires_grad_()
            ref = torch.nn.functional.gelu(xd, approximate="tanh")
            ref.backward(dy.double())
            call(lib, "fpdt_gelu_fwd", P(x), P(y), LL(n))
            call(lib, "fpdt_gelu_bwd", P(x), P(dy), P(dx), LL(n))
            name = f"{tag} gelu n={n} misaligned x={mis} y={mis_y}{' in place' if inplace else ''}"
            check(name, {"y": (y, ref), "dx": (dx, xd.grad)}, 1e-2)
            untouched(f"{name}: nothing written outside y", yb, mis_y, n)


def check_embedding_loss(lib, tag, spec):
    H, V = spec["hidden"], spec["vocab"]
    for rows in [3, 257]:
        ids = torch.randint(0, V, (rows,), device=dev, dtype=torch.int32)
        ids[rows // 2] = ids[0]  # repeated id: atomics must add both
        table, dout = rnd(V, H), rnd(rows, H)
        out = poison(rows, H, dtype=bf)
        dt0 = rnd(V, H, dtype=f32, scale=0.1)
        dt = dt0.clone()
        call(lib, "fpdt_embedding_fwd", P(ids), P(table), P(out), I(rows))
        call(lib, "fpdt_embedding_bwd", P(ids), P(dout), P(dt), I(rows))
        dref = torch.zeros(V, H, device=dev, dtype=f64).index_add_(0, ids.long(), dout.double())
        check(f"{tag} embedding rows={rows}", {"out": (out, table[ids.long()]), "dtable": (dt - dt0, dref)}, 1e-5)
    # in place: dlogits over the bf16 logits, as the programs run it; offset: logits 2 bytes past 16-byte
    # alignment (the one-element-a-thread path at a vocab the 16-byte vectors would take)
    for rows, dtype, name, how in [(13, bf, "fpdt_xent_bf16", ""), (13, f32, "fpdt_xent_f32", ""),
                                   (2, bf, "fpdt_xent_bf16", ""), (13, bf, "fpdt_xent_bf16", "in place"),
                                   (5, bf, "fpdt_xent_bf16", "offset")]:
        logits = rnd(rows, V, dtype=dtype, scale=3.0)
        if how == "offset":
            logits = at_offset(torch.empty(rows * V + 8, device=dev, dtype=bf), 1, rows, V).copy_(logits)
        labels = torch.randint(0, V, (rows,), device=dev, dtype=torch.int32)
        labels[-1] = -1
        nvalid = int((labels >= 0).sum())
        loss = torch.full((1,), 0.5, device=dev)
        ld = logits.double().requires_grad_()
        dl = logits if how == "in place" else poison(rows, V, dtype=bf)
        call(lib, name, P(logits), P(labels), P(loss), P(dl), I(rows), F(1.0 / nvalid))
        ref = torch.nn.functional.cross_entropy(ld, labels.long(), ignore_index=-1, reduction="sum")
        (ref / nvalid).backward()
        check(f"{tag} {name} rows={rows}{' ' + how if how else ''}",
              {"loss": (loss - 0.5, ref.detach().reshape(1)), "dlogits": (dl, ld.grad)}, 1e-2)


def check_optimizer_elementwise(lib, tag):
    for n, step in [(1, 1), (10007, 1), (300000, 7)]:
        # its own seed: at n = 1 the update can be small beside the fp32 spacing of p, so the inputs must not
        # depend on how many checks ran before (bench copies of kernels add checks)
        torch.manual_seed(n)
        p, g, m, v = rnd(n, dtype=f32), rnd(n, dtype=f32), rnd(n, dtype=f32, scale=0.1), rnd(n, dtype=f32).abs()
        lr, b1, b2, eps, wd, gs = 1e-3, 0.9, 0.95, 1e-8, 0.1, 0.5
        pd, gd, md, vd = p.double(), g.double() * gs, m.double(), v.double()
        md = b1 * md + (1 - b1) * gd
        vd = b2 * vd + (1 - b2) * gd * gd
        pr = pd * (1 - lr * wd) - lr * (md / (1 - b1 ** step)) / ((vd / (1 - b2 ** step)).sqrt() + eps)
        out = poison(n, dtype=bf)
        p0 = p.clone()
        # clipping: a global norm of 2 - 1e-6 against a maximum of 1 scales the gradients by gs = 0.5
        sq = torch.full((1,), (2.0 - 1e-6) ** 2, dtype=f32, device=dev)
        call(lib, "fpdt_adamw", P(p), P(g), P(m), P(v), P(out), LL(n), F(lr), F(b1), F(b2), F(eps), F(wd), P(sq),
             F(1.0), I(step))
        # the update against the exact one rounded as the kernel stores p (fp32)
        check(f"{tag} adamw n={n} step={step}", {"dp": (p - p0, pr.float().double() - p0.double()), "m": (m, md), "v": (v, vd)}, 1e-3)
        check(f"{tag} adamw bf16 copy n={n} step={step}", {"bf16": (out, pr)}, 1e-2)
    for n in [1, 1001, 1 << 20]:
        x, acc = rnd(n, dtype=f32), torch.full((1,), 0.25, dtype=f32, device=dev)
        call(lib, "fpdt_sqnorm_acc", P(x), LL(n), P(acc))
        check(f"{tag} sqnorm_acc n={n}", {"acc": (acc - 0.25, (x.double() ** 2).sum().reshape(1))}, 1e-5)
    # n below, at and past a multiple of 8; element offsets of a, b and y: all aligned, all 2 bytes past,
    # a and y aligned at different elements (head taken one by one), none able to align together (all scalar)
    # the fp32 ops move 4 elements a vector, 4 vectors in flight; 2^24 + 5 fills the grid (every thread runs
    # the unrolled loop several times)
    for n in [1, 7, 9, 1001, 1 << 20, (1 << 20) + 3, (1 << 24) + 5]:
        for oa, ob, oy in [(0, 0, 0), (1, 1, 1), (3, 3, 3), (1, 0, 2), (0, 5, 0)]:
            ab, bb = rnd(n + 8), rnd(n + 8)
            a, b = at_offset(ab, oa, n), at_offset(bb, ob, n)
            y32b, y16b, ysumb = poison(n + 8), poison(n + 8, dtype=bf), poison(n + 8, dtype=bf)
            y32, y16, ysum = at_offset(y32b, oy, n), at_offset(y16b, ob, n), at_offset(ysumb, oy, n)
            acc0 = rnd(n + 8, dtype=f32)
            accb = acc0.clone()
            acc = at_offset(accb, oy, n)
            call(lib, "fpdt_cast_bf16_f32", P(a), P(y32), LL(n))
            call(lib, "fpdt_cast_f32_bf16", P(y32), P(y16), LL(n))
            call(lib, "fpdt_add_bf16", P(a), P(b), P(ysum), LL(n))
            call(lib, "fpdt_acc_f32_bf16", P(acc), P(b), LL(n))
            f1b, f2b = poison(n + 8), poison(n + 8, dtype=bf)
            f1, f2 = at_offset(f1b, oa, n), at_offset(f2b, oa, n)
            call(lib, "fpdt_fill_f32", P(f1), F(1.25), LL(n))
            call(lib, "fpdt_fill_bf16", P(f2), F(-2.5), LL(n))
            z = rnd(n, dtype=f32)
            call(lib, "fpdt_zero", P(z), LL(4 * n))
            # in place: y over a, then y over b
            a_in, b_in = ab.clone(), bb.clone()
            ya, yb_ = at_offset(a_in, oa, n), at_offset(b_in, ob, n)
            call(lib, "fpdt_add_bf16", P(ya), P(b), P(ya), LL(n))
            call(lib, "fpdt_add_bf16", P(a), P(yb_), P(yb_), LL(n))
            ab_ref = a.double() + b.double()
            name = f"{tag} elementwise n={n} offsets a={oa} b={ob} y={oy}"
            check(name, {
                "cast": (y32, a), "cast_back": (y16, a), "add": (ysum, ab_ref), "add_y_is_a": (ya, ab_ref),
                "add_y_is_b": (yb_, ab_ref), "acc": (acc, acc0[oy:oy + n].double() + b.double()),
                "fill32": (f1, torch.full_like(f1, 1.25)), "fill16": (f2, torch.full_like(f1, -2.5)),
                "zero": (z + 1, torch.ones_like(z))}, 1e-2)
            exact(f"{name}: casts exact", y16, a)
            for what, buf, off in [("cast", y32b, oy), ("cast back", y16b, ob), ("add", ysumb, oy), ("fill32", f1b, oa),
                                   ("fill16", f2b, oa)]:
                untouched(f"{name}: nothing written outside {what}", buf, off, n)
            exact(f"{name}: acc leaves the rest alone", torch.cat([accb[:oy], accb[oy + n:]]),
                  torch.cat([acc0[:oy], acc0[oy + n:]]))


def check_errors(lib, tag):
    q = rnd(10, 4, 128)
    for name in [n for n in ("fpdt_attn_fwd", "fpdt_attn_fwd_sm90", "fpdt_attn_fwd_mma") if hasattr(lib, n)]:
        fn = getattr(lib, name)
        fn.restype = C.c_int
        # causal with Lq != Lk, and q_head_base 4 / group 1 needs kv head 7 of 3
        for args in [(I(10), I(12), I(4), I(3), I(0), I(1)), (I(10), I(10), I(4), I(3), I(4), I(1))]:
            err = fn(P(q), P(q), P(q), P(None), P(None), P(None), *args, F(1.0), I(1), I(2), stream())
            results.append((f"{tag} {name} rejects bad shapes", err != 0, {"err": err}))
            print(f"{'PASS' if err != 0 else 'FAIL'} {tag} {name} rejects bad shapes (err {err})")
    for name in [n for n in ("fpdt_attn_bwd", "fpdt_attn_bwd_sm90", "fpdt_attn_bwd_mma") if hasattr(lib, n)]:
        fn = getattr(lib, name)
        fn.restype = C.c_int
        for args in [(I(64), I(128), I(4), I(4), I(0), I(1)), (I(64), I(64), I(4), I(3), I(4), I(1))]:
            err = fn(P(q), P(q), P(q), P(q), P(None), P(None), P(None), P(None), P(None), *args, F(1.0), I(1), stream())
            results.append((f"{tag} {name} rejects bad shapes", err != 0, {"err": err}))
            print(f"{'PASS' if err != 0 else 'FAIL'} {tag} {name} rejects bad shapes (err {err})")


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    t0 = time.time()
    for tag in sorted(os.listdir(KDIR)):
        sdir = os.path.join(KDIR, tag)
        spec = json.load(open(os.path.join(sdir, "spec.json")))
        print(f"== {tag}: build", flush=True)
        lib = C.CDLL(build(sdir, os.path.join("/tmp/fpdt_build")))
        Hq, Hkv, d = spec["qHeads"], spec["kvHeads"], spec["headDim"]
        # _v1.._v3: mma.sync tile variants; _st2.._st4: the wgmma forward with another K/V ring depth;
        # _dqpartial: the head-dim-64 wgmma backward with partial dQ tiles (backward only); _heads: the wgmma
        # forward and backward with the heads fastest in full blocks; _band: the backward's band from FPDT_BAND_MIB
        # VARIANTS=_a,_b: also these suffixes, where the library has them (bench copies built beside the kernels)
        extra = [v for v in os.environ.get("VARIANTS", "").split(",") if v.startswith("_")]
        suffixes = [""] + [s for s in dict.fromkeys(("_v1", "_v2", "_v3", "_st2", "_st3", "_st4", "_wg2", "_dqpartial", "_heads", "_band", *extra))
                           if hasattr(lib, "fpdt_attn_fwd" + s) or hasattr(lib, "fpdt_attn_bwd" + s)]
        # the forward also has, where rendered for sm_90a (attention_fwd_sm90.cu), the wgmma kernel on its own
        # (fpdt_attn_fwd_sm90: fails with cudaErrorNotSupported instead of falling back) and the mma.sync one
        fwd_suffixes = [s + x for s in suffixes for x in ("", "_sm90", "_mma") if hasattr(lib, "fpdt_attn_fwd" + s + x)]
        print(f"   forward launchers: {', '.join('fpdt_attn_fwd' + s for s in fwd_suffixes)}", flush=True)
        # likewise the backward (attention_bwd_sm90.cu): fpdt_attn_bwd_sm90 alone and fpdt_attn_bwd_mma
        bwd_suffixes = [s + x for s in suffixes for x in ("", "_sm90", "_mma") if hasattr(lib, "fpdt_attn_bwd" + s + x)]
        print(f"   backward launchers: {', '.join('fpdt_attn_bwd' + s for s in bwd_suffixes)}", flush=True)
        for fn in (lambda: check_attention(lib, tag, Hq, Hkv, d, fwd_suffixes),
                   lambda: check_attention_bwd(lib, tag, Hq, Hkv, d, bwd_suffixes),
                   lambda: check_norm(lib, tag, spec), lambda: check_rope(lib, tag, spec),
                   lambda: check_mlp(lib, tag, spec), lambda: check_embedding_loss(lib, tag, spec),
                   lambda: check_optimizer_elementwise(lib, tag), lambda: check_errors(lib, tag)):
            try:
                fn()
            except Exception as e:  # keep going: one broken family must not hide the others
                results.append((f"{tag} {getattr(e, '__class__').__name__}", False, {}))
                print(f"FAIL {tag}: exception {e!r}", flush=True)
                torch.cuda.synchronize()
    if failures:
        torch.save(failures, os.path.join(OUT, "failures.pt"))
    npass = sum(1 for _, ok, _ in results if ok)
    with open(os.path.join(OUT, "check_summary.txt"), "w") as f:
        for name, ok, errs in results:
            f.write(f"{'PASS' if ok else 'FAIL'} {name} {errs}\n")
    print(f"== {npass}/{len(results)} checks passed in {time.time() - t0:.0f} s")
    return 0 if npass == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
