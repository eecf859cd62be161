"""Builds rendered kernel folders (.carry/kernels/<spec>/*.cu) into shared libraries with nvcc.

Used by check_kernels.py and test/bench/attention.py on the GPU machine (no Node there). Objects are cached
in FPDT_BUILD_CACHE (default /tmp/fpdt_build_cache), keyed by nvcc's version, the flags and the sources: a
cache filled here by the same nvcc can be carried to the GPU machine and unpacked there."""
import concurrent.futures as cf
import functools
import glob
import os
import hashlib
import json
import shutil
import subprocess

NVCC = os.environ.get("NVCC", "nvcc")
CACHE = os.environ.get("FPDT_BUILD_CACHE", "/tmp/fpdt_build_cache")
FLAGS = ["-O3", "-gencode=arch=compute_90a,code=sm_90a", "-Xcompiler", "-fPIC", "-std=c++17", "-lineinfo"]


@functools.cache
def nvcc_version():
    return subprocess.run([NVCC, "--version"], capture_output=True, text=True, check=True).stdout


def build(spec_dir, out_dir, log=print):
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(os.path.normpath(spec_dir))
    srcs = sorted(glob.glob(os.path.join(spec_dir, "*.cu")))

    def one(src):
        # objects are cached by what makes them (compiler, flags, source text; the sources include only
        # headers of their own folder, hashed too), so each script of one GPU session compiles a kernel once
        cmd = [NVCC, "-c", *FLAGS, "-Xptxas", "-v"]
        h = hashlib.sha256(json.dumps([nvcc_version(), *cmd]).encode())
        for f in [src] + sorted(glob.glob(os.path.join(spec_dir, "*.h"))):
            h.update(open(f, "rb").read())
        cached = os.path.join(CACHE, h.hexdigest()[:32])
        if not os.path.exists(cached + ".o"):
            os.makedirs(CACHE, exist_ok=True)
            tmp = f"{cached}.{os.getpid()}.tmp.o"
            r = subprocess.run([*cmd, src, "-o", tmp], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"nvcc failed on {src}:\n{r.stderr}")
            open(cached + ".log", "w").write(r.stderr)
            os.replace(tmp, cached + ".o")
        log_text = open(cached + ".log").read()
        obj = os.path.join(out_dir, f"{name}_{os.path.basename(src)}.o")
        shutil.copyfile(cached + ".o", obj)
        regs = [l.split("info    :")[-1].strip() for l in log_text.splitlines() if "registers" in l or "spill" in l]
        return obj, regs

    with cf.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as ex:
        results = list(ex.map(one, srcs))
    for src, (_, regs) in zip(srcs, results):
        log(f"  {os.path.basename(src)}: " + " | ".join(r for r in regs if "registers" in r))
    lib = os.path.join(out_dir, f"libfpdt_{name}.so")
    subprocess.run([NVCC, "-shared", "-o", lib, *[o for o, _ in results], "-lcudart"], check=True)
    return lib
