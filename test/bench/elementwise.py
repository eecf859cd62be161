"""Times the memory-bound kernels (element-wise, RoPE, SwiGLU / GeLU, norms, the cross-entropy) against a device-to-device
copy of the same bytes, timed in the same run on the same GPU.

  npx tsx test/bench/render-elementwise.ts .carry/kernels-ew      # where Node is (the GPU host needs none)
  python3 test/bench/elementwise.py [kernels=.carry/kernels-ew] [out_dir=$OUT or /tmp]

Sizes are llama1b's at 16384 rows: hidden 2048, ffn 8192, 32 q heads over 8 kv heads of 64 (spec l1b) and of
128 (l1b_d128); GeLU, LayerNorm and partial rotary (32 of 64 dims) come from spec gelu at the same sizes.
Bytes are what a kernel must read plus write; the copy of the same bytes is torch dst.copy_(src) with src
half of them. Every sample starts with the L2 flushed (a 256 MiB memset), for the kernels and the copies
alike; the median of 15 samples is kept. The target is a ratio (kernel rate / copy rate) of at least 0.70.
Each kernel's output is checked once against torch (relative error, bf16 inputs; the norms' backward
unchecked), so a broken kernel cannot post a rate: such a line says WRONG and counts as a miss.
Prints one line a kernel (' <' after a ratio under the target) and writes <out_dir>/elementwise.json;
exits 1 only when a kernel's result is wrong.
FPDT_COMMIT names the commit the kernels were rendered at (the GPU host's copy may have no git)."""
import ctypes as C
import datetime
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpu", "kernels"))
from build import build  # noqa: E402
from calibrate import commit, machine, sig  # noqa: E402  (calibrate's top level only reads argv)

KROOT = sys.argv[1] if len(sys.argv) > 1 else ".carry/kernels-ew"
OUT = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("OUT", "/tmp")
R, D, FF, HQ, HKV = 16384, 2048, 8192, 32, 8
TARGET, SAMPLES = 0.70, 15
dev = torch.device("cuda")
bf, f32, f64 = torch.bfloat16, torch.float32, torch.float64
I, F, LL = C.c_int, C.c_float, C.c_longlong
P = lambda t: C.c_void_p(t.data_ptr())  # noqa: E731
flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)


def seconds(fn):
    """Median seconds of fn over SAMPLES runs, each after an L2 flush, between CUDA events on the stream."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(SAMPLES):
        flush.zero_()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return sorted(times)[len(times) // 2]


_copies = {}


def copy_seconds(nbytes):
    """A device-to-device copy moving nbytes (reads + writes), timed like the kernels."""
    if nbytes not in _copies:
        src = torch.empty(nbytes // 2, dtype=torch.uint8, device=dev)
        dst = torch.empty_like(src)
        _copies[nbytes] = seconds(lambda: dst.copy_(src))
        del src, dst
    return _copies[nbytes]


def launcher(lib, name):
    fn = getattr(lib, name)
    fn.restype = C.c_int

    def call(*args):
        err = fn(*args, C.c_void_p(torch.cuda.current_stream().cuda_stream))
        if err != 0:
            raise RuntimeError(f"{name}: cudaError {err}")
    return call


def rel(out, ref):
    out, ref = out.double(), ref.double()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30)) if torch.isfinite(out).all() else float("nan")


def rnd(*shape, dtype=bf):
    return torch.randn(*shape, device=dev, dtype=f32).to(dtype)


def inv_freq(kdir):
    """The rope kernel's own frequency table (llama3 scaling included), read from the rendered source."""
    text = open(os.path.join(kdir, "rope.cu")).read()
    m = re.search(r"inv_freq\[HALF\] = \{ ([^}]*) \}", text)
    return torch.tensor([float(v) for v in m.group(1).split(",")], dtype=f64, device=dev)


def rope_ref(x, pos, inv, rd, sign):
    half = rd // 2
    ang = pos.double()[:, None] * inv[None, :]
    cos, sin = ang.cos()[:, None, :], sign * ang.sin()[:, None, :]
    t = x.double()
    x1, x2 = t[..., :half], t[..., half:rd]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, t[..., rd:]], -1)


def rope_cases(lib, kdir, spec, tag):
    d, rd = spec["headDim"], spec["rotaryDim"]
    inv = inv_freq(kdir)
    fwd, bwd, fwd_pos = launcher(lib, "fpdt_rope_fwd"), launcher(lib, "fpdt_rope_bwd"), launcher(lib, "fpdt_rope_fwd_pos")
    cases = []
    for H, what in [(HQ, "q"), (HKV, "k")]:
        x, y = rnd(R, H, d), torch.empty(R, H, d, device=dev, dtype=bf)
        pos0 = 3_000_000  # a far chunk: the angle reduction at work
        pos = torch.arange(R, device=dev) + pos0
        nbytes = 4 * R * H * d
        cases.append((f"rope fwd {what} [{R},{H},{d}]{tag}", nbytes, lambda x=x, y=y, H=H: fwd(P(x), P(y), I(R), I(H), LL(pos0)),
                      lambda x=x, y=y, pos=pos: rel(y, rope_ref(x, pos, inv, rd, 1))))
        if H == HQ:
            xin = x.clone()
            cases.append((f"rope fwd {what} in place [{R},{H},{d}]{tag}", nbytes,
                          lambda xin=xin, H=H: fwd(P(xin), P(xin), I(R), I(H), LL(pos0)), None))
            cases.append((f"rope bwd {what} [{R},{H},{d}]{tag}", nbytes, lambda x=x, y=y, H=H: bwd(P(x), P(y), I(R), I(H), LL(pos0)),
                          lambda x=x, y=y, pos=pos: rel(y, rope_ref(x, pos, inv, rd, -1))))
            # packed documents: positions restart every 4096 rows
            p32 = (torch.arange(R, device=dev) % 4096).to(torch.int32)
            cases.append((f"rope_pos fwd {what} [{R},{H},{d}]{tag}", nbytes + 4 * R,
                          lambda x=x, y=y, H=H, p32=p32: fwd_pos(P(x), P(y), I(R), I(H), P(p32)),
                          lambda x=x, y=y, p32=p32: rel(y, rope_ref(x, p32, inv, rd, 1))))
    return cases


def elementwise_cases(lib):
    a, b, y = rnd(R, D), rnd(R, D), torch.empty(R, D, device=dev, dtype=bf)
    y32, acc = torch.empty(R, D, device=dev), torch.zeros(R, D, device=dev)
    ain = a.clone()
    add, acc_f = launcher(lib, "fpdt_add_bf16"), launcher(lib, "fpdt_acc_f32_bf16")
    to32, to16 = launcher(lib, "fpdt_cast_bf16_f32"), launcher(lib, "fpdt_cast_f32_bf16")
    fill16, fill32 = launcher(lib, "fpdt_fill_bf16"), launcher(lib, "fpdt_fill_f32")
    n = R * D
    shape = f"[{R},{D}]"
    return [
        (f"add {shape}", 6 * n, lambda: add(P(a), P(b), P(y), LL(n)), lambda: rel(y, a.double() + b.double())),
        (f"add in place (y = a) {shape}", 6 * n, lambda: add(P(ain), P(b), P(ain), LL(n)), None),
        (f"cast bf16->f32 {shape}", 6 * n, lambda: to32(P(a), P(y32), LL(n)), lambda: rel(y32, a)),
        (f"cast f32->bf16 {shape}", 6 * n, lambda: to16(P(y32), P(y), LL(n)), lambda: rel(y, y32)),
        (f"acc f32 += bf16 {shape}", 10 * n, lambda: acc_f(P(acc), P(b), LL(n)), None),
        (f"fill bf16 {shape}", 2 * n, lambda: fill16(P(y), F(0.5), LL(n)), lambda: rel(y, torch.full_like(y32, 0.5))),
        (f"fill f32 {shape}", 4 * n, lambda: fill32(P(y32), F(0.5), LL(n)), lambda: rel(y32, torch.full_like(y32, 0.5))),
    ]


def swiglu_cases(lib):
    fwd, bwd = launcher(lib, "fpdt_swiglu_fwd"), launcher(lib, "fpdt_swiglu_bwd")
    gu, dgu = rnd(R, 2 * FF), torch.empty(R, 2 * FF, device=dev, dtype=bf)
    g, u = rnd(R, FF), rnd(R, FF)
    out, dout = torch.empty(R, FF, device=dev, dtype=bf), rnd(R, FF)
    dg, du = torch.empty_like(out), torch.empty_like(out)
    ref = lambda gg, uu: torch.nn.functional.silu(gg.double()) * uu.double()  # noqa: E731

    def bwd_check():
        gd, ud = gu[:, :FF].double().requires_grad_(), gu[:, FF:].double().requires_grad_()
        (torch.nn.functional.silu(gd) * ud).backward(dout.double())
        return max(rel(dgu[:, :FF], gd.grad), rel(dgu[:, FF:], ud.grad))

    n = R * FF
    return [
        (f"swiglu fwd fused [{R},2x{FF}]", 6 * n, lambda: fwd(P(gu), P(gu[:, FF:]), P(out), I(R), LL(2 * FF)),
         lambda: rel(out, ref(gu[:, :FF], gu[:, FF:]))),
        (f"swiglu fwd separate [{R},{FF}]", 6 * n, lambda: fwd(P(g), P(u), P(out), I(R), LL(FF)), lambda: rel(out, ref(g, u))),
        (f"swiglu bwd fused [{R},2x{FF}]", 10 * n,
         lambda: bwd(P(gu), P(gu[:, FF:]), P(dout), P(dgu), P(dgu[:, FF:]), I(R), LL(2 * FF)), bwd_check),
        (f"swiglu bwd separate [{R},{FF}]", 10 * n, lambda: bwd(P(g), P(u), P(dout), P(dg), P(du), I(R), LL(FF)), None),
    ]


def gelu_cases(lib):
    fwd, bwd = launcher(lib, "fpdt_gelu_fwd"), launcher(lib, "fpdt_gelu_bwd")
    x, dy = rnd(R, FF), rnd(R, FF)
    y, dx = torch.empty_like(x), torch.empty_like(x)

    def bwd_check():
        xd = x.double().requires_grad_()
        torch.nn.functional.gelu(xd, approximate="tanh").backward(dy.double())
        return rel(dx, xd.grad)

    n = R * FF
    return [
        (f"gelu fwd [{R},{FF}]", 4 * n, lambda: fwd(P(x), P(y), LL(n)),
         lambda: rel(y, torch.nn.functional.gelu(x.double(), approximate="tanh"))),
        (f"gelu bwd [{R},{FF}]", 6 * n, lambda: bwd(P(x), P(dy), P(dx), LL(n)), bwd_check),
    ]


def norm_cases(lib, spec):
    x, dy, w, b = rnd(R, D), rnd(R, D), rnd(D), rnd(D)
    y, dx = torch.empty_like(x), torch.empty_like(x)
    mean, rstd, dw, db = (torch.zeros(R if i < 2 else D, device=dev) for i in range(4))
    if spec["norm"] == "rms":
        fwd, bwd = launcher(lib, "fpdt_rmsnorm_fwd"), launcher(lib, "fpdt_rmsnorm_bwd")
        ref = lambda: x.double() * torch.rsqrt(x.double().pow(2).mean(-1, keepdim=True) + spec["eps"]) * w.double()  # noqa: E731
        return [(f"rmsnorm fwd [{R},{D}]", 4 * R * D + 2 * D, lambda: fwd(P(x), P(w), P(y), P(rstd), I(R)), lambda: rel(y, ref())),
                (f"rmsnorm bwd [{R},{D}]", 6 * R * D + 6 * D, lambda: bwd(P(x), P(w), P(dy), P(rstd), P(dx), P(dw), I(R)), None)]
    fwd, bwd = launcher(lib, "fpdt_layernorm_fwd"), launcher(lib, "fpdt_layernorm_bwd")
    ref = lambda: torch.nn.functional.layer_norm(x.double(), (D,), w.double(), b.double(), spec["eps"])  # noqa: E731
    return [(f"layernorm fwd [{R},{D}]", 4 * R * D + 4 * D, lambda: fwd(P(x), P(w), P(b), P(y), P(mean), P(rstd), I(R)),
             lambda: rel(y, ref())),
            (f"layernorm bwd [{R},{D}]", 6 * R * D + 12 * D,
             lambda: bwd(P(x), P(w), P(dy), P(mean), P(rstd), P(dx), P(dw), P(db), I(R)), None)]


def xent_cases(lib, spec):
    """The cross-entropy over llama1b's vocab, logits overwritten by dlogits as the programs run it. Its two
    passes read the logits twice: its bytes are two reads and one write of them."""
    V, rows = spec["vocab"], R // 4
    x0 = rnd(rows, V) * 3
    x = x0.clone()
    labels = torch.randint(0, V, (rows,), device=dev, dtype=torch.int32)
    loss = torch.zeros(1, device=dev)
    fn = launcher(lib, "fpdt_xent_bf16")
    run = lambda: fn(P(x), P(labels), P(loss), P(x), I(rows), F(1.0 / rows))  # noqa: E731

    def check():  # one call on fresh logits against torch (the timed calls run on what earlier calls left)
        x.copy_(x0)
        loss.zero_()
        run()
        torch.cuda.synchronize()
        ld = x0[:256].double().requires_grad_()
        torch.nn.functional.cross_entropy(ld, labels[:256].long(), reduction="sum").backward()
        return rel(x[:256], ld.grad / rows)
    return [(f"cross-entropy in place [{rows},{V}]", 3 * 2 * rows * V + 4 * rows, run, check)]


def family(name):
    return name.split(" ")[0].replace("_pos", "")


def main():
    torch.manual_seed(0)
    names = [n for n in ("l1b", "l1b_d128", "gelu") if os.path.isdir(os.path.join(KROOT, n))]
    if not names:
        sys.exit(f"no rendered kernels under {KROOT}: run `npx tsx test/bench/render-elementwise.ts {KROOT}` where Node is")
    big = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
    big2 = torch.empty_like(big)
    copy_1g = 2 * big.numel() / seconds(lambda: big2.copy_(big))
    del big, big2
    torch.cuda.empty_cache()
    print(f"{machine()}\ndevice copy, 1 GiB: {copy_1g / 1e12:.2f} TB/s; target: each kernel >= {TARGET:.2f} of a copy of its bytes "
          f"(median of {SAMPLES}, L2 flushed before each)\n", flush=True)
    print(f"{'kernel':<44} {'MB':>8} {'us':>8} {'TB/s':>6} {'copy':>6} {'ratio':>6}  check", flush=True)
    rows = []
    for name in names:
        kdir = os.path.join(KROOT, name)
        spec = json.load(open(os.path.join(kdir, "spec.json")))
        lib = C.CDLL(build(kdir, f"/tmp/fpdt_build_ew_{name}", log=lambda *_: None))
        tag = f" ({name})"
        cases = rope_cases(lib, kdir, spec, tag)
        if name == "l1b":
            cases = elementwise_cases(lib) + cases + swiglu_cases(lib) + norm_cases(lib, spec) + xent_cases(lib, spec)
        elif name == "gelu":
            cases = cases + gelu_cases(lib) + norm_cases(lib, spec)
        for label, nbytes, fn, checker in cases:
            fn()
            torch.cuda.synchronize()
            err = checker() if checker else None
            wrong = err is not None and not err <= 1e-2  # NaN counts as wrong
            t, tc = seconds(fn), copy_seconds(nbytes)
            ratio = tc / t
            meets = ratio >= TARGET and not wrong
            check = "unchecked" if err is None else f"{'WRONG' if wrong else 'ok'} {err:.1e}"
            print(f"{label:<44} {nbytes / 1e6:8.1f} {t * 1e6:8.1f} {nbytes / t / 1e12:6.2f} {nbytes / tc / 1e12:6.2f} "
                  f"{ratio:6.2f}{'' if meets else ' <'}  {check}", flush=True)
            rows.append({"spec": name, "kernel": label, "family": family(label), "bytes": nbytes, "seconds": sig(t),
                         "Bps": sig(nbytes / t), "copyBps": sig(nbytes / tc), "ratio": round(ratio, 3),
                         "relError": None if err is None else sig(err), "meetsTarget": meets})
        del lib
        torch.cuda.empty_cache()
    misses = [r["kernel"] for r in rows if not r["meetsTarget"]]
    wrong = [r["kernel"] for r in rows if r["relError"] is not None and not r["relError"] <= 1e-2]
    print(f"\n{len(rows) - len(misses)}/{len(rows)} kernels at >= {TARGET:.2f} of the copy rate" +
          ("" if not misses else "; below (or wrong): " + ", ".join(misses)))
    doc = {
        "format": "fpdtc elementwise bench", "version": 1,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "commit": commit(), "command": f"python3 test/bench/elementwise.py {KROOT} {OUT}",
        "rows": R, "hidden": D, "ffn": FF, "heads": [HQ, HKV], "samples": SAMPLES, "l2Flushed": True,
        "copy1GiBBps": sig(copy_1g), "target": TARGET, "results": rows,
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "elementwise.json")
    with open(path, "w") as f:
        f.write(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")
    if wrong:
        print("WRONG results: " + ", ".join(wrong))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
