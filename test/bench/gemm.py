"""Checks the runtime's GEMMs against cuBLASLt's best: every GEMM one training step of a compiled program
runs, timed as the program runs it (runtime/src/gemm_bf16.cc: the first algorithm cuBLASLt's heuristic
ranks), with each of the heuristic's top N algorithms, and with torch of the same layout.

Where Node is (the shapes file of llama1b at 64K, chunk 16K, is committed):
  npx fpdtc compile models/llama1b.ts --seq 65536 --chunk 16384 --out /tmp/x
  npx tsx test/bench/gemm-shapes.ts /tmp/x/llama1b test/bench/gemm-shapes-llama1b-64k.json
On the GPU machine, from the repository root (no Node there; nvcc and torch are), about a minute:
  python3 test/bench/gemm.py --out "$OUT"      # llama1b 64K; prints a table, writes $OUT/gemm.json
  python3 test/bench/gemm.py --shapes FILE --out DIR --top 16 --autotune --only 'm=16384 n=8192'
Exit status 1 when a result of ours (or auto) is wrong or a shape fails; FPDT_COMMIT names the commit.

What it does: builds runtime/src's gemm_bf16.cc, gemm_plan.cc, cublaslt_shim.cc, dl_library.cc and
cuda_errors.cc with test/bench/gemm_bench.cc into one library (nvcc; $NVCC overrides); cuBLASLt is
opened as the runtime opens it (FPDT_CUBLASLT, else libcublasLt.so.13; when neither opens, the one in
torch's packages). Per shape (m, n, k, transposes, leading dimensions, beta, output type as the program
passes them to fpdt_gemm_bf16), on buffers of that layout:
  ours   fpdt_gemm_bf16 through a handle of the program's workspace (FPDT_GEMM_WORKSPACE of the host
         template), timed as the programs call it;
  auto   with --autotune, the same with FPDT_GEMM_AUTOTUNE=1 (the runtime of branch gemm-autotune
         times the top 16 at first use; main's runtime takes the heuristic's first);
  #i     the heuristic's i-th algorithm (descriptors and workspace limit the runtime's own);
  torch  torch.mm / addmm with out_dtype float32 where the output is fp32, torch.matmul otherwise.
Every variant's output is checked once against an fp32 product of the same bf16 inputs (relative
Frobenius error at most 1e-2 for a bf16 output, 1e-3 for fp32); a candidate that fails is left out of
"best", and a wrong result of ours or auto makes the exit status 1. Times: CUDA events on the current
stream, back-to-back calls (the operands stay where the previous call left them: no L2 flush), each
sample at least --min-sample-ms long, median over --rounds x --samples samples, the variants taken in
turn within a round. Prints a line a shape and the step-weighted totals (sum of count x time): ours, the
best candidate of each shape, torch, and what picking the best would save of the predicted step."""
import argparse
import ctypes as C
import datetime
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "gpu", "kernels"))
sys.path.insert(0, HERE)
from calibrate import commit, machine, sig  # noqa: E402  (calibrate's top level only reads argv)
from cuda_timing import timed  # noqa: E402

SOURCES = ["runtime/src/gemm_bf16.cc", "runtime/src/gemm_plan.cc", "runtime/src/cublaslt_shim.cc",
           "runtime/src/dl_library.cc", "runtime/src/cuda_errors.cc", "test/bench/gemm_bench.cc"]
OUT_BF16, OUT_F32 = 0, 1
TOLERANCE = {"bf16": 1e-2, "fp32": 1e-3}
I, F, LL, SZ, VP = C.c_int, C.c_float, C.c_longlong, C.c_size_t, C.c_void_p
dev = torch.device("cuda")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default=os.path.join(HERE, "gemm-shapes-llama1b-64k.json"))
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp"))
    ap.add_argument("--top", type=int, default=16, help="heuristic candidates per shape")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--samples", type=int, default=5, help="samples per variant per round")
    ap.add_argument("--min-sample-ms", type=float, default=2.0)
    ap.add_argument("--autotune", action="store_true",
                    help="also time FPDT_GEMM_AUTOTUNE=1 (a runtime with it: branch gemm-autotune)")
    ap.add_argument("--only", default="", help="only shapes whose key contains this text")
    return ap.parse_args()


# ---- building and loading ----

def workspace_bytes():
    """FPDT_GEMM_WORKSPACE of the host program template (what every program's GEMM handle gets)."""
    try:
        text = open(os.path.join(ROOT, "codegen-templates", "host", "program.cu.njk")).read()
        m = re.search(r"#define FPDT_GEMM_WORKSPACE \((\d+)LL << (\d+)\)", text)
        if m:
            return int(m.group(1)) << int(m.group(2))
    except OSError:
        pass
    return 32 << 20


def find_cublaslt():
    """Leaves FPDT_CUBLASLT as set, or sets it to torch's copy when the runtime's names do not open."""
    if os.environ.get("FPDT_CUBLASLT"):
        return
    for name in ("libcublasLt.so.13", "libcublasLt.so"):
        try:
            C.CDLL(name)
            return
        except OSError:
            pass
    roots = [os.path.dirname(os.path.dirname(torch.__file__))]
    found = sorted(p for r in roots for p in glob.glob(os.path.join(r, "nvidia", "**", "libcublasLt.so*"), recursive=True))
    if found:
        os.environ["FPDT_CUBLASLT"] = found[0]  # read by the shim at its first load, below


def build_library():
    nvcc = os.environ.get("NVCC") or shutil.which("nvcc") or shutil.which("/usr/local/cuda/bin/nvcc")
    if not nvcc:
        sys.exit("gemm.py: no nvcc (set NVCC to its path)")
    out_dir = "/tmp/fpdt_build_gemm"
    os.makedirs(out_dir, exist_ok=True)
    lib = os.path.join(out_dir, "libfpdt_gemm_bench.so")
    cmd = [nvcc, "-O2", "-std=c++17", "-shared", "-Xcompiler", "-fPIC",
           f"-I{ROOT}/runtime/src", f"-I{ROOT}/runtime/include",
           *[os.path.join(ROOT, s) for s in SOURCES], "-o", lib, "-ldl"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"gemm.py: building {lib} failed:\n{' '.join(cmd)}\n{r.stderr}")
    return lib


def load_library(path):
    lib = C.CDLL(path)
    sigs = {
        "fpdt_gemm_create": ([C.POINTER(VP), SZ, C.c_char_p, SZ], I),
        "fpdt_gemm_destroy": ([VP], None),
        "fpdt_gemm_last_error": ([VP], C.c_char_p),
        "fpdt_gemm_bf16": ([VP, VP, I, I, LL, LL, LL, F, VP, LL, VP, LL, F, VP, LL, I], I),
        "fpdt_bench_candidates_create": ([C.POINTER(VP), I, I, LL, LL, LL, LL, LL, LL, I, I, VP, SZ, C.c_char_p, SZ], I),
        "fpdt_bench_candidates_destroy": ([VP], None),
        "fpdt_bench_candidates_count": ([VP], I),
        "fpdt_bench_candidates_top1": ([VP], I),
        "fpdt_bench_candidate_info": ([VP, I, C.POINTER(LL), C.POINTER(SZ), C.POINTER(F)], I),
        "fpdt_bench_candidate_run": ([VP, I, VP, F, VP, VP, F, VP], I),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    return lib


def loaded_cublaslt():
    """The libcublasLt files mapped into this process (ours and torch's may differ)."""
    try:
        return sorted({line.split()[-1] for line in open("/proc/self/maps") if "libcublasLt" in line})
    except OSError:
        return []


def gemm_handle(lib, ws, autotune):
    """An fpdt_gemm as a program creates it; FPDT_GEMM_AUTOTUNE is read at creation."""
    old = os.environ.pop("FPDT_GEMM_AUTOTUNE", None)
    if autotune:
        os.environ["FPDT_GEMM_AUTOTUNE"] = "1"
    h, msg = VP(), C.create_string_buffer(1024)
    status = lib.fpdt_gemm_create(C.byref(h), ws, msg, len(msg))
    os.environ.pop("FPDT_GEMM_AUTOTUNE", None)
    if old is not None:
        os.environ["FPDT_GEMM_AUTOTUNE"] = old
    if status != 0:
        sys.exit(f"gemm.py: fpdt_gemm_create failed ({status}): {msg.value.decode()}")
    return h


# ---- one shape ----

def stream():
    return VP(torch.cuda.current_stream().cuda_stream)


class Operands:
    """Buffers laid out as the program passes them: A is [m,k] (lda) or [k,m] with transA, B is [k,n] (ldb)
    or [n,k] with transB, C is [m,n] (ldc) of the output type."""

    def __init__(self, s):
        m, n, k = s["m"], s["n"], s["k"]
        a_rows, a_cols = (k, m) if s["transA"] else (m, k)
        b_rows, b_cols = (n, k) if s["transB"] else (k, n)
        self.a_buf = torch.randn(a_rows, s["lda"], device=dev).to(torch.bfloat16)
        self.b_buf = torch.randn(b_rows, s["ldb"], device=dev).to(torch.bfloat16)
        a, b = self.a_buf[:, :a_cols], self.b_buf[:, :b_cols]
        self.op_a = a.t() if s["transA"] else a
        self.op_b = b.t() if s["transB"] else b
        self.out_dtype = torch.float32 if s["out"] == "fp32" else torch.bfloat16
        self.c_buf = torch.zeros(m, s["ldc"], device=dev, dtype=self.out_dtype)
        self.c = self.c_buf[:, :n]
        self.alpha, self.beta = float(s["alpha"]), float(s["beta"])
        # what C holds before each checked call: random where the GEMM accumulates into it
        self.c0 = torch.randn(m, n, device=dev).to(self.out_dtype) if self.beta != 0 else None
        self.ref = None

    def reference(self):
        if self.ref is None:
            r = (self.op_a.float() @ self.op_b.float()) * self.alpha
            if self.c0 is not None:
                r += self.beta * self.c0.float()
            self.ref = r
        return self.ref

    def reset(self):
        if self.c0 is not None:
            self.c.copy_(self.c0)
        else:
            self.c.zero_()

    def rel_error(self, out):
        ref = self.reference()
        out = out.float()
        if not torch.isfinite(out).all():
            return float("nan")
        return float(torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-30))

    def free(self):
        self.a_buf = self.b_buf = self.c_buf = self.c = self.c0 = self.ref = self.op_a = self.op_b = None


def checked(fn, ops):
    """Runs fn once on C as it was before the step and returns its relative error (of the tensor fn
    returns, torch's calls, else of C)."""
    ops.reset()
    res = fn()
    torch.cuda.synchronize()
    return ops.rel_error(res if isinstance(res, torch.Tensor) else ops.c)


def sampler(fn, min_sample_s):
    """Per-call seconds of one sample: back-to-back calls between CUDA events, enough to last min_sample_s."""
    state = {"reps": None}

    def sample():
        if state["reps"] is None:
            fn()
            torch.cuda.synchronize()
            state["reps"] = 1
            t = timed(fn, 1)
            state["reps"] = max(1, math.ceil(min_sample_s / max(t, 1e-7)))
        return timed(fn, state["reps"])

    return sample


def torch_variant(ops):
    """The torch call of the same layout and output type, and its name; probed on the shape's operands."""
    a, b, c, beta = ops.op_a, ops.op_b, ops.c, ops.beta
    tries = []
    if ops.out_dtype == torch.float32:
        if beta != 0:
            tries.append(("torch.addmm(out_dtype=float32)", lambda: torch.addmm(c, a, b, beta=beta, out_dtype=torch.float32)))
        else:
            tries.append(("torch.mm(out_dtype=float32)", lambda: torch.mm(a, b, out_dtype=torch.float32)))
        tries.append(("torch.matmul (bf16 out, then added in fp32)" if beta != 0 else "torch.matmul (bf16 out)",
                      (lambda: c.add_(torch.matmul(a, b), alpha=beta)) if beta != 0 else (lambda: torch.matmul(a, b))))
    else:
        tries.append(("torch.matmul", lambda: torch.matmul(a, b)))
    for name, fn in tries:
        try:
            err = checked(fn, ops)
            return name, fn, err
        except (TypeError, RuntimeError):
            continue
    return None, None, None


def run_shape(s, lib, handles, ws_tensor, args):
    ops = Operands(s)
    st = stream()
    m, n, k = s["m"], s["n"], s["k"]
    out_type = OUT_F32 if s["out"] == "fp32" else OUT_BF16
    P = lambda t: VP(t.data_ptr())  # noqa: E731

    def ours_fn(h):
        def call():
            status = lib.fpdt_gemm_bf16(h, st, s["transA"], s["transB"], m, n, k, ops.alpha, P(ops.a_buf),
                                        s["lda"], P(ops.b_buf), s["ldb"], ops.beta, P(ops.c_buf), s["ldc"], out_type)
            if status != 0:
                raise RuntimeError(f"fpdt_gemm_bf16: {lib.fpdt_gemm_last_error(h).decode()}")
        return call

    cands, msg = VP(), C.create_string_buffer(1024)
    status = lib.fpdt_bench_candidates_create(C.byref(cands), s["transA"], s["transB"], m, n, k, s["lda"], s["ldb"], s["ldc"],
                                              out_type, args.top, P(ws_tensor), ws_tensor.numel(), msg, len(msg))
    if status != 0:
        raise RuntimeError(f"fpdt_bench_candidates_create ({status}): {msg.value.decode()}")
    try:
        count, top1 = lib.fpdt_bench_candidates_count(cands), lib.fpdt_bench_candidates_top1(cands)
        variants = {"ours": ours_fn(handles["ours"])}
        if "auto" in handles:
            variants["auto"] = ours_fn(handles["auto"])
        info = {}
        for i in range(count):
            def cand(i=i):
                status = lib.fpdt_bench_candidate_run(cands, i, st, ops.alpha, P(ops.a_buf), P(ops.b_buf), ops.beta, P(ops.c_buf))
                if status != 0:
                    raise RuntimeError(f"candidate {i}: cublasLtMatmul failed")
            variants[f"#{i}"] = cand
            vals, wsb, waves = (LL * 5)(), SZ(), F()
            lib.fpdt_bench_candidate_info(cands, i, vals, C.byref(wsb), C.byref(waves))
            info[f"#{i}"] = {"algoId": vals[0], "tile": vals[1], "splitK": vals[2], "stages": vals[3], "cluster": vals[4],
                             "workspaceBytes": wsb.value, "waves": round(waves.value, 3)}
        errors = {}
        for name, fn in list(variants.items()):
            try:
                errors[name] = checked(fn, ops)
            except RuntimeError as e:
                errors[name] = str(e)
        tname, tfn, terr = torch_variant(ops)
        if tfn:
            variants["torch"], errors["torch"] = tfn, terr
        ops.ref = ops.c0 = None  # the reference's memory back before timing
        torch.cuda.empty_cache()
        tol = TOLERANCE[s["out"]]
        good = lambda name: isinstance(errors.get(name), float) and errors[name] <= tol  # noqa: E731
        runnable = [name for name in variants if not isinstance(errors.get(name), str)]
        samples = {name: [] for name in runnable}
        samplers = {name: sampler(variants[name], args.min_sample_ms / 1e3) for name in runnable}
        for _ in range(args.rounds):
            for name in runnable:
                samples[name] += [samplers[name]() for _ in range(args.samples)]
        secs = {name: sorted(v)[len(v) // 2] for name, v in samples.items()}
        cand_names = [f"#{i}" for i in range(count) if good(f"#{i}") and f"#{i}" in secs]
        best = min(cand_names, key=lambda x: secs[x]) if cand_names else None
        return {"count": count, "top1": top1, "secs": secs, "errors": errors, "best": best, "info": info,
                "torch": tname, "tolerance": tol, "wrong": [x for x in ("ours", "auto") if x in errors and not good(x)]}
    finally:
        lib.fpdt_bench_candidates_destroy(cands)
        ops.free()
        torch.cuda.empty_cache()


# ---- report ----

def label(s):
    """e.g. 'NT 16384x8192x2048 bf16' or 'TN 2048x2048x16384 fp32 +=' (accumulating); lds when padded."""
    t = ("T" if s["transA"] else "N") + ("T" if s["transB"] else "N")
    lds = (s["k"] if not s["transA"] else s["m"], s["n"] if not s["transB"] else s["k"], s["n"])
    pad = "" if (s["lda"], s["ldb"], s["ldc"]) == lds else f" ld {s['lda']},{s['ldb']},{s['ldc']}"
    return f"{t} {s['m']}x{s['n']}x{s['k']} {s['out']}{' +=' if s['beta'] else ''}{pad}"


def uses(s):
    return ", ".join(f"{u['op']} {u['weight']} x{u['count']}" for u in s["uses"])


def main():
    args = parse_args()
    doc_in = json.load(open(args.shapes))
    if doc_in.get("format") != "fpdtc.gemm-shapes":
        sys.exit(f"gemm.py: {args.shapes} is not a shapes file of test/bench/gemm-shapes.ts")
    shapes = [s for s in doc_in["shapes"] if args.only in s["key"]]
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 reference products stay fp32
    find_cublaslt()
    lib = load_library(build_library())
    ws = workspace_bytes()
    handles = {"ours": gemm_handle(lib, ws, False)}
    if args.autotune:
        handles["auto"] = gemm_handle(lib, ws, True)
    ws_tensor = torch.empty(ws, dtype=torch.uint8, device=dev)
    step = doc_in.get("predictedStepSeconds")
    print(f"{machine()}\ncuBLASLt: {', '.join(loaded_cublaslt()) or 'unknown'}; workspace {ws >> 20} MiB; top {args.top} "
          f"heuristic candidates; {doc_in['model']} seq {doc_in['config']['seq']} chunk {doc_in['config']['chunk']}: "
          f"{len(shapes)} shapes, {sum(s['count'] for s in shapes)} GEMMs a step\n", flush=True)
    print("TFLOP/s of ours (the heuristic's first: 'is' says which candidate that is), auto (FPDT_GEMM_AUTOTUNE=1), "
          "the best candidate ('at' which), torch; o/b = ours / best", flush=True)
    print(f"{'shape':<36} {'x':>4} {'ours ms':>8} {'ours':>6} {'is':>4} {'auto':>6} {'best':>6} {'at':>4} {'torch':>6} "
          f"{'o/b':>5}  check  uses", flush=True)
    rows, wrong = [], []
    for s in shapes:
        try:
            r = run_shape(s, lib, handles, ws_tensor, args)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
            print(f"{label(s):<36} {s['count']:>4} FAILED: {str(e).splitlines()[0]}", flush=True)
            rows.append({"key": s["key"], "count": s["count"], "error": str(e)})
            wrong.append(s["key"])
            torch.cuda.empty_cache()
            continue
        secs, fl = r["secs"], s["flops"]
        tf = lambda name: fl / secs[name] / 1e12 if name in secs else float("nan")  # noqa: E731
        best = r["best"]
        ratio = secs[best] / secs["ours"] if best and "ours" in secs else float("nan")
        errs = r["errors"]
        bad_cands = [x for x in errs if x.startswith("#") and not (isinstance(errs[x], float) and errs[x] <= r["tolerance"])]
        check = "WRONG " + ",".join(r["wrong"]) if r["wrong"] else "ok"
        ours_err = errs.get("ours")
        check += f" {ours_err:.1e}" if isinstance(ours_err, float) else ""
        if bad_cands:
            check += f"; candidates off: {','.join(bad_cands)}"
        top1 = f"#{r['top1']}" if r["top1"] >= 0 else "?"
        print(f"{label(s):<36} {s['count']:>4} {secs.get('ours', float('nan')) * 1e3:8.3f} {tf('ours'):6.1f} {top1:>4} {tf('auto'):6.1f} "
              f"{tf(best) if best else float('nan'):6.1f} {best or '-':>4} {tf('torch'):6.1f} {ratio:5.2f}  {check}  {uses(s)}", flush=True)
        wrong += [f"{s['key']} ({x})" for x in r["wrong"]]
        rows.append({
            "key": s["key"], "label": label(s), "count": s["count"], "flops": fl,
            "shape": {x: s[x] for x in ("transA", "transB", "m", "n", "k", "lda", "ldb", "ldc", "alpha", "beta", "out")},
            "uses": s["uses"], "candidates": r["count"], "oursIs": f"#{r['top1']}" if r["top1"] >= 0 else None,
            "best": best, "torchCall": r["torch"], "tolerance": r["tolerance"],
            "seconds": {x: sig(v) for x, v in secs.items()},
            "tflops": {x: round(fl / v / 1e12, 1) for x, v in secs.items()},
            "relError": {x: (sig(v) if isinstance(v, float) and not math.isnan(v) else str(v)) for x, v in errs.items()},
            "candidateInfo": r["info"], "wrong": r["wrong"],
        })
    done = [x for x in rows if "seconds" in x and "ours" in x["seconds"]]
    total = lambda name: sum(x["count"] * x["seconds"][name] for x in done if name in x["seconds"])  # noqa: E731
    t_ours = total("ours")
    t_best = sum(x["count"] * (x["seconds"][x["best"]] if x["best"] else x["seconds"]["ours"]) for x in done)
    t_auto, t_torch = total("auto"), total("torch")
    flops = sum(x["count"] * x["flops"] for x in done)
    saved = t_ours - t_best
    print(f"\nstep-weighted (sum of count x time over {len(done)} shapes, {flops / 1e12:.0f} TFLOP a step):")
    for name, t in [("ours", t_ours), ("auto (FPDT_GEMM_AUTOTUNE=1)", t_auto), ("best candidate of each shape", t_best),
                    ("torch", t_torch)]:
        if t > 0:
            print(f"  {name:<30} {t * 1e3:9.1f} ms  {flops / t / 1e12:6.1f} TFLOP/s")
    of_step = f", {saved / step:.1%} of the predicted {step:.2f} s step" if step else ""
    print(f"  picking each shape's best would save {saved * 1e3:.1f} ms a step ({saved / t_ours:.1%} of the GEMM time{of_step})"
          if t_ours > 0 else "  nothing timed")
    out = {
        "format": "fpdtc gemm bench", "version": 1,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "commit": commit(), "command": " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "cublasLt": loaded_cublaslt(), "torch": torch.__version__, "workspaceBytes": ws, "top": args.top,
        "timing": {"rounds": args.rounds, "samples": args.samples, "minSampleMs": args.min_sample_ms, "l2Flushed": False},
        "shapesFile": os.path.relpath(os.path.abspath(args.shapes), ROOT), "model": doc_in["model"], "config": doc_in["config"],
        "scheduleHash": doc_in.get("scheduleHash"), "predictedStepSeconds": step,
        "stepSeconds": {"ours": sig(t_ours), "auto": sig(t_auto) if t_auto else None, "best": sig(t_best),
                        "torch": sig(t_torch) if t_torch else None, "savedByBest": sig(saved)},
        "stepFlops": flops, "shapes": rows, "wrong": wrong,
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "gemm.json")
    with open(path, "w") as f:
        f.write(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    for h in handles.values():
        lib.fpdt_gemm_destroy(h)
    if wrong:
        print("WRONG or failed: " + "; ".join(wrong))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
