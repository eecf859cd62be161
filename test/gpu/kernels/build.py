"""Builds rendered kernel folders (.carry/kernels/<spec>/*.cu) into shared libraries with nvcc.

Used by check_kernels.py and test/bench/attention.py on the GPU machine (no Node there)."""
import concurrent.futures as cf
import glob
import os
import subprocess

NVCC = os.environ.get("NVCC", "nvcc")
FLAGS = ["-O3", "-gencode=arch=compute_90a,code=sm_90a", "-Xcompiler", "-fPIC", "-std=c++17", "-lineinfo"]


def build(spec_dir, out_dir, log=print):
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(os.path.normpath(spec_dir))
    srcs = sorted(glob.glob(os.path.join(spec_dir, "*.cu")))

    def one(src):
        obj = os.path.join(out_dir, f"{name}_{os.path.basename(src)}.o")
        r = subprocess.run([NVCC, "-c", *FLAGS, "-Xptxas", "-v", src, "-o", obj], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"nvcc failed on {src}:\n{r.stderr}")
        regs = [l.split("info    :")[-1].strip() for l in r.stderr.splitlines() if "registers" in l or "spill" in l]
        return obj, regs

    with cf.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as ex:
        results = list(ex.map(one, srcs))
    for src, (_, regs) in zip(srcs, results):
        log(f"  {os.path.basename(src)}: " + " | ".join(r for r in regs if "registers" in r))
    lib = os.path.join(out_dir, f"libfpdt_{name}.so")
    subprocess.run([NVCC, "-shared", "-o", lib, *[o for o, _ in results], "-lcudart"], check=True)
    return lib
