"""Times our sm_90a forward + backward (libfa_sm90.so + libfa_bwd_sm90.so) against torch SDPA
(cuDNN and flash backends), forward, backward and both.

  python3 test/gpu/kernels/sm90/bench_bwd.py [seqs=32768,131072] [--noncausal]

H 32, H_kv 8, head dim 128, bf16, batch 1, causal unless --noncausal. Each: 2 warm-up runs, then the
median of 10 (S <= 32K) or 5 timed runs (CUDA events). TFLOP/s with the causal count:
fwd F = 2*2*S*S*H*128/2 (non-causal without the /2), bwd 2.5 F, fwd+bwd 3.5 F. SDPA: forward alone,
then forward + backward through autograd (backward = the difference); our [S, H, D] tensors as
[1, H, S, D] strided views; GQA through enable_gqa=True where the backend takes it, else K/V
repeated to H heads as leaf tensors (said in the output). Ours: fa_fwd_sm90 (default variant) and
fa_bwd_sm90 (its own workspace, allocated once). Prints ours/cuDNN for bwd and fwd+bwd."""
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import bench  # noqa: E402
from check import load as load_fwd  # noqa: E402
from check_bwd import load as load_bwd, ptr, stream, workspace  # noqa: E402

H, H_KV, D = 32, 8, 128


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    seqs = [int(s) for s in (args[0] if args else "32768,131072").split(",")]
    causal = "--noncausal" not in sys.argv
    fwd, bwd = load_fwd(), load_bwd()
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  H {H}/{H_KV} d {D}  "
          f"{'causal' if causal else 'non-causal'}")
    torch.manual_seed(0)
    for S in seqs:
        reps = 10 if S <= 32768 else 5
        F1 = 4 * S * S * H * D / (2 if causal else 1)
        q = torch.randn(S, H, D, device=dev, dtype=torch.bfloat16)
        k = torch.randn(S, H_KV, D, device=dev, dtype=torch.bfloat16)
        v = torch.randn(S, H_KV, D, device=dev, dtype=torch.bfloat16)
        do = torch.randn(S, H, D, device=dev, dtype=torch.bfloat16)
        o = torch.empty_like(q)
        lse = torch.empty(H, S, device=dev, dtype=torch.float32)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        ws = workspace(bwd, S, H, H_KV, dev)
        res = {}  # name -> (fwd s, bwd s, total s)

        def ours_f():
            err = fwd.fa_fwd_sm90(ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse), S, S, H, H_KV, int(causal), stream())
            if err != 0:
                raise RuntimeError(f"fwd cudaError {err}")

        def ours_b():
            err = bwd.fa_bwd_sm90(ptr(q), ptr(k), ptr(v), ptr(o), ptr(do), ptr(lse), ptr(dq), ptr(dk), ptr(dv),
                                  ptr(ws), S, H, H_KV, int(causal), stream())
            if err != 0:
                raise RuntimeError(f"bwd cudaError {err}")

        def ours_fb():
            ours_f()
            ours_b()

        try:
            ours_f()
            torch.cuda.synchronize()
            res["ours (sm90 wgmma)"] = (bench(ours_f, reps), bench(ours_b, reps), bench(ours_fb, reps))
        except Exception as e:  # noqa: BLE001
            print(f"S={S} ours: failed: {e}")
        nto_f, nto_b = fwd.fa_fwd_sm90_timeouts(), bwd.fa_bwd_sm90_timeouts()
        if nto_f or nto_b:
            print(f"WARNING: mbarrier watchdog fired (fwd {nto_f}, bwd {nto_b}): our timings are of a broken kernel")

        q4 = q.unsqueeze(0).transpose(1, 2).detach().requires_grad_()
        do4 = do.unsqueeze(0).transpose(1, 2)
        for backend, name in ((SDPBackend.CUDNN_ATTENTION, "SDPA cuDNN"), (SDPBackend.FLASH_ATTENTION, "SDPA flash")):
            for gqa in (True, False):
                if gqa:
                    k4 = k.unsqueeze(0).transpose(1, 2).detach().requires_grad_()
                    v4 = v.unsqueeze(0).transpose(1, 2).detach().requires_grad_()
                else:
                    k4 = k.repeat_interleave(H // H_KV, dim=1).unsqueeze(0).transpose(1, 2).detach().requires_grad_()
                    v4 = v.repeat_interleave(H // H_KV, dim=1).unsqueeze(0).transpose(1, 2).detach().requires_grad_()
                kw = {"enable_gqa": True} if gqa else {}

                def sf(backend=backend, k4=k4, v4=v4, kw=kw):
                    with sdpa_kernel([backend]), torch.no_grad():
                        F.scaled_dot_product_attention(q4, k4, v4, is_causal=causal, **kw)

                def sfb(backend=backend, k4=k4, v4=v4, kw=kw):
                    with sdpa_kernel([backend]):
                        out = F.scaled_dot_product_attention(q4, k4, v4, is_causal=causal, **kw)
                    out.backward(do4)
                    q4.grad = k4.grad = v4.grad = None

                try:
                    tf = bench(sf, reps)
                    tfb = bench(sfb, reps)
                    res[f"{name} ({'enable_gqa' if gqa else 'K/V repeated'})"] = (tf, tfb - tf, tfb)
                    break
                except Exception as e:  # noqa: BLE001
                    if not gqa:
                        print(f"S={S} {name}: failed: {str(e).splitlines()[0][:200]}")
                finally:
                    del k4, v4

        print(f"\nS = {S}: median of {reps}; TFLOP/s fwd F, bwd 2.5F, fwd+bwd 3.5F")
        cudnn = next((x for n, x in res.items() if n.startswith("SDPA cuDNN")), None)
        for name, (tf, tb, tt) in res.items():
            line = (f"  {name:34s} fwd {tf * 1e3:8.2f} ms {F1 / tf / 1e12:6.1f}  bwd {tb * 1e3:8.2f} ms "
                    f"{2.5 * F1 / tb / 1e12:6.1f}  fwd+bwd {tt * 1e3:8.2f} ms {3.5 * F1 / tt / 1e12:6.1f}")
            if cudnn and name.startswith("ours"):
                line += f"   ours/cuDNN bwd {cudnn[1] / tb:5.3f} fwd+bwd {cudnn[2] / tt:5.3f}"
            print(line, flush=True)
        del q, k, v, do, o, lse, dq, dk, dv, ws, q4, do4
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
