"""Accuracy check of the sm_90a wgmma attention forward (libfa_sm90.so) on an H100/H200.

  python3 test/gpu/kernels/sm90/check.py [--quick] [--variants 0,1,2]

Loads test/gpu/kernels/sm90/libfa_sm90.so (FA_SM90_LIB overrides; built with build.sh if missing),
runs random bf16 inputs (Q [S_q, H, 128], K/V [S_k, H_kv, 128]) through every kernel variant with
the outputs poisoned with NaN first, and compares O and LSE with a float64 torch reference: all rows
up to S = 4096, a sample of rows (tile edges included) above. At S >= 4096 the whole O is also
compared with torch SDPA (cuDNN/flash/efficient backends, never math). Also checks that a second run
gives bit-identical outputs (a pipeline race would show up as nondeterminism), that the mbarrier
watchdog never fired, and that bad arguments are refused.
Exit status 1 if any O error > 1e-2 or LSE error > 1e-3 (relative norm) or any other check fails."""
import ctypes as C
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.environ.get("FA_SM90_LIB", os.path.join(HERE, "libfa_sm90.so"))
D = 128
O_TOL, LSE_TOL, SDPA_TOL = 1e-2, 1e-3, 1e-2


def load():
    if not os.path.exists(LIB):
        print(f"{LIB} missing: building it", flush=True)
        subprocess.run(["bash", os.path.join(HERE, "build.sh")], check=True)
    try:
        lib = C.CDLL(LIB)
    except OSError as e:  # a library built on another machine's image may not load here: rebuild
        print(f"loading {LIB} failed ({e}): rebuilding it", flush=True)
        subprocess.run(["bash", os.path.join(HERE, "build.sh")], check=True)
        lib = C.CDLL(LIB)
    vp, i = C.c_void_p, C.c_int
    lib.fa_fwd_sm90_variant.argtypes = [vp, vp, vp, vp, vp, i, i, i, i, i, i, vp]
    lib.fa_fwd_sm90_variant.restype = i
    lib.fa_fwd_sm90.argtypes = [vp, vp, vp, vp, vp, i, i, i, i, i, vp]
    lib.fa_fwd_sm90.restype = i
    lib.fa_fwd_sm90_timeouts.argtypes = []
    lib.fa_fwd_sm90_timeouts.restype = i
    lib.fa_fwd_sm90_smem_bytes.argtypes = [i]
    lib.fa_fwd_sm90_smem_bytes.restype = i
    return lib


def ptr(t):
    return C.c_void_p(t.data_ptr())


def stream():
    return C.c_void_p(torch.cuda.current_stream().cuda_stream)


def run(lib, q, k, v, causal, variant):
    """variant None = the default entry point fa_fwd_sm90."""
    s_q, h, _ = q.shape
    s_k, h_kv, _ = k.shape
    o = torch.full_like(q, float("nan"))
    lse = torch.full((h, s_q), float("nan"), device=q.device, dtype=torch.float32)
    if variant is None:
        err = lib.fa_fwd_sm90(ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse), s_q, s_k, h, h_kv, int(causal), stream())
    else:
        err = lib.fa_fwd_sm90_variant(ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse), s_q, s_k, h, h_kv, int(causal),
                                      variant, stream())
    if err != 0:
        raise RuntimeError(f"launcher returned cudaError {err}")
    torch.cuda.synchronize()
    return o, lse


def sample_rows(s_q, full_limit=4096, n=512, seed=1):
    if s_q <= full_limit:
        return torch.arange(s_q)
    g = torch.Generator().manual_seed(seed)
    edges = [0, 1, 63, 64, 65, 127, 128, 129, 255, 256, s_q // 2, s_q - 129, s_q - 128, s_q - 65, s_q - 64, s_q - 2,
             s_q - 1]
    rnd = torch.randint(0, s_q, (n,), generator=g).tolist()
    return torch.tensor(sorted(set([r for r in edges if 0 <= r < s_q] + rnd)))


def reference(q, k, v, causal, rows):
    """float64 O [len(rows), H, D] and LSE [H, len(rows)] for the given query rows."""
    s_q, h, _ = q.shape
    s_k, h_kv, _ = k.shape
    grp = h // h_kv
    scale = 1.0 / math.sqrt(D)
    rows_d = rows.to(q.device)
    o_ref = torch.empty(len(rows), h, D, dtype=torch.float64, device=q.device)
    lse_ref = torch.empty(h, len(rows), dtype=torch.float64, device=q.device)
    cols = torch.arange(s_k, device=q.device)
    mask = cols[None, :] > rows_d[:, None] if causal else None
    for hh in range(h):
        qh = q[rows_d, hh].double()
        kh = k[:, hh // grp].double()
        vh = v[:, hh // grp].double()
        s = (qh @ kh.T) * scale
        if mask is not None:
            s = s.masked_fill(mask, float("-inf"))
        lse = torch.logsumexp(s, dim=-1)
        o_ref[:, hh] = torch.exp(s - lse[:, None]) @ vh
        lse_ref[hh] = lse
    return o_ref, lse_ref


def rel(a, b):
    a, b = a.double(), b.double()
    if not torch.isfinite(a).all():
        return float("nan")
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def sdpa(q, k, v, causal):
    """torch SDPA on our [S, H, D] layout (as [1, H, S, D] strided views), never the math backend."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    h, h_kv = q.shape[1], k.shape[1]
    if h != h_kv:
        k = k.repeat_interleave(h // h_kv, dim=1)
        v = v.repeat_interleave(h // h_kv, dim=1)
    q4, k4, v4 = (t.unsqueeze(0).transpose(1, 2) for t in (q, k, v))
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        o = F.scaled_dot_product_attention(q4, k4, v4, is_causal=bool(causal))
    return o.transpose(1, 2)[0]


def main():
    quick = "--quick" in sys.argv
    variants = [0, 1, 2]
    if "--variants" in sys.argv:
        variants = [int(x) for x in sys.argv[sys.argv.index("--variants") + 1].split(",")]
    torch.manual_seed(0)
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  lib {LIB}")
    lib = load()
    print("dynamic smem bytes: " + ", ".join(f"v{x} {lib.fa_fwd_sm90_smem_bytes(x)}" for x in variants))
    if lib.fa_fwd_sm90_timeouts() != 0:
        print("note: watchdog counter was nonzero before the first run")
    fails = []

    # (s_q, s_k, H, H_kv, causal)
    cases = [(1, 1, 4, 4, 1), (77, 77, 4, 2, 1), (200, 333, 4, 1, 0), (300, 1000, 8, 8, 0), (129, 129, 2, 1, 1)]
    for s in (128, 1000, 4096) + (() if quick else (32768,)):
        for causal in (0, 1):
            cases.append((s, s, 32, 8, causal))

    for (s_q, s_k, h, h_kv, causal) in cases:
        q = torch.randn(s_q, h, D, device=dev, dtype=torch.bfloat16)
        k = torch.randn(s_k, h_kv, D, device=dev, dtype=torch.bfloat16)
        v = torch.randn(s_k, h_kv, D, device=dev, dtype=torch.bfloat16)
        rows = sample_rows(s_q)
        t0 = time.time()
        o_ref, lse_ref = reference(q, k, v, causal, rows)
        t_ref = time.time() - t0
        o_sd = sdpa(q, k, v, causal) if s_q >= 4096 else None
        for var in variants + [None]:
            name = f"S_q={s_q:6d} S_k={s_k:6d} H={h:2d}/{h_kv:<2d} causal={causal} " + (
                f"v{var}" if var is not None else "default")
            try:
                o, lse = run(lib, q, k, v, causal, var)
                o2, lse2 = run(lib, q, k, v, causal, var)
            except Exception as e:  # noqa: BLE001
                fails.append(f"{name}: {e}")
                print(f"{name}: FAILED {e}", flush=True)
                if "launcher" not in str(e):
                    print("CUDA error: the context is probably broken, stopping here", flush=True)
                    print(f"{len(fails)} FAILED")
                    sys.exit(1)
                continue
            nto = lib.fa_fwd_sm90_timeouts()
            rows_d = rows.to(dev)
            finite = bool(torch.isfinite(o).all()) and bool(torch.isfinite(lse).all())
            e_o = rel(o[rows_d].double(), o_ref)
            e_l = rel(lse[:, rows_d].double(), lse_ref)
            same = torch.equal(o, o2) and torch.equal(lse, lse2)
            line = f"{name}: O err {e_o:.2e}  LSE err {e_l:.2e}"
            bad = []
            if not finite:
                bad.append("NaN/Inf left in outputs")
            if not (e_o <= O_TOL):
                bad.append(f"O err > {O_TOL}")
            if not (e_l <= LSE_TOL):
                bad.append(f"LSE err > {LSE_TOL}")
            if not same:
                bad.append("second run differs (race?)")
            if nto != 0:
                bad.append(f"mbarrier watchdog fired {nto} times")
            if o_sd is not None:
                e_s = rel(o, o_sd)
                line += f"  vs SDPA {e_s:.2e}"
                if not (e_s <= SDPA_TOL):
                    bad.append(f"SDPA err > {SDPA_TOL}")
            if var == variants[0]:
                line += f"  (ref {len(rows)} rows, {t_ref:.1f}s)"
            print(line + ("  FAIL: " + "; ".join(bad) if bad else "  ok"), flush=True)
            if bad:
                fails.append(f"{name}: " + "; ".join(bad))
        del q, k, v
        torch.cuda.empty_cache()

    # argument checks: causal needs s_q == s_k; h % h_kv == 0
    q = torch.randn(64, 4, D, device=dev, dtype=torch.bfloat16)
    k = torch.randn(96, 4, D, device=dev, dtype=torch.bfloat16)
    o = torch.empty_like(q)
    lse = torch.empty(4, 64, device=dev)
    for args, what in (((64, 96, 4, 4, 1), "causal with s_q != s_k"), ((64, 96, 4, 3, 0), "h % h_kv != 0")):
        err = lib.fa_fwd_sm90_variant(ptr(q), ptr(k), ptr(k), ptr(o), ptr(lse), *args, 1, stream())
        print(f"refuses {what}: {'ok' if err != 0 else 'FAIL (returned 0)'}")
        if err == 0:
            fails.append(f"accepted {what}")

    print()
    if fails:
        print(f"{len(fails)} FAILED:")
        for f in fails:
            print("  " + f)
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
