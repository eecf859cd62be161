"""Times the sm_90a wgmma attention forward (libfa_sm90.so) against torch SDPA (cuDNN and flash).

  python3 test/gpu/kernels/sm90/bench.py [seqs=32768,131072] [--noncausal]

H 32, H_kv 8, head dim 128, bf16, batch 1, causal unless --noncausal. Each kernel: 2 warm-up runs,
then the median of 10 (S <= 32K) or 5 timed runs (CUDA events). TFLOP/s counts the causal FLOPs
2*2*S*S*H*128/2 (non-causal: without the /2). SDPA gets our [S, H, D] tensors as [1, H, S, D]
strided views; GQA through enable_gqa=True where the backend takes it, else K/V repeated to H heads
(said in the output). Prints ours/cuDNN for each of our variants."""
import ctypes as C
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check import load, ptr, stream  # noqa: E402

H, H_KV, D = 32, 8, 128
VARIANTS = {0: "ours v0 (plain, 2 stages)", 1: "ours v1 (overlap, 2 stages) [default]",
            2: "ours v2 (overlap, 3 stages)"}


def bench(fn, reps, warm=2):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    seqs = [int(s) for s in (args[0] if args else "32768,131072").split(",")]
    causal = "--noncausal" not in sys.argv
    lib = load()
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  H {H}/{H_KV} d {D}  "
          f"{'causal' if causal else 'non-causal'}")
    torch.manual_seed(0)
    for S in seqs:
        reps = 10 if S <= 32768 else 5
        flops = 4 * S * S * H * D / (2 if causal else 1)
        q = torch.randn(S, H, D, device=dev, dtype=torch.bfloat16)
        k = torch.randn(S, H_KV, D, device=dev, dtype=torch.bfloat16)
        v = torch.randn(S, H_KV, D, device=dev, dtype=torch.bfloat16)
        o = torch.empty_like(q)
        lse = torch.empty(H, S, device=dev, dtype=torch.float32)
        res = {}

        for var, name in VARIANTS.items():
            def ours(var=var):
                err = lib.fa_fwd_sm90_variant(ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse), S, S, H, H_KV, int(causal),
                                              var, stream())
                if err != 0:
                    raise RuntimeError(f"cudaError {err}")
            try:
                res[name] = bench(ours, reps)
            except Exception as e:  # noqa: BLE001
                print(f"S={S} {name}: failed: {e}")
        nto = lib.fa_fwd_sm90_timeouts()
        if nto:
            print(f"WARNING: mbarrier watchdog fired {nto} times: our timings are of a broken kernel")

        q4 = q.unsqueeze(0).transpose(1, 2)
        k4, v4 = k.unsqueeze(0).transpose(1, 2), v.unsqueeze(0).transpose(1, 2)
        kr4 = vr4 = None
        for backend, name in ((SDPBackend.CUDNN_ATTENTION, "SDPA cuDNN"), (SDPBackend.FLASH_ATTENTION, "SDPA flash")):
            how = None
            for gqa in (True, False):
                if not gqa and kr4 is None:
                    kr = k.repeat_interleave(H // H_KV, dim=1)
                    vr = v.repeat_interleave(H // H_KV, dim=1)
                    kr4, vr4 = kr.unsqueeze(0).transpose(1, 2), vr.unsqueeze(0).transpose(1, 2)

                def sd(gqa=gqa, backend=backend):
                    with sdpa_kernel([backend]):
                        if gqa:
                            F.scaled_dot_product_attention(q4, k4, v4, is_causal=causal, enable_gqa=True)
                        else:
                            F.scaled_dot_product_attention(q4, kr4, vr4, is_causal=causal)
                try:
                    t = bench(sd, reps)
                    how = "enable_gqa" if gqa else "K/V repeated"
                    res[f"{name} ({how})"] = t
                    break
                except Exception as e:  # noqa: BLE001
                    if not gqa:
                        print(f"S={S} {name}: failed: {str(e).splitlines()[0][:200]}")

        print(f"\nS = {S}: median of {reps}")
        cudnn = next((t for n, t in res.items() if n.startswith("SDPA cuDNN")), None)
        for name, t in res.items():
            line = f"  {name:42s} {t * 1e3:9.2f} ms  {flops / t / 1e12:7.1f} TFLOP/s"
            if cudnn and name.startswith("ours"):
                line += f"   ours/cuDNN {cudnn / t:5.3f}"
            print(line, flush=True)
        del q, k, v, o, lse, q4, k4, v4, kr4, vr4
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
