# Compares two safetensors files tensor by tensor (relative norm error), e.g. the gradients or
# updated weights of an NCCL run of several ranks against one rank. Prints one JSON line.
import json, sys
import torch
from safetensors.torch import load_file

def main(a_path, b_path, tol):
    a, b = load_file(a_path), load_file(b_path)
    worst, name = 0.0, ""
    for k, ref in b.items():
        x = a[k].float(); r = ref.float()
        e = ((x - r).norm() / r.norm().clamp_min(1e-30)).item()
        if e > worst: worst, name = e, k
    print(json.dumps({"a": a_path, "b": b_path, "tensors": len(b), "worst_rel": worst, "worst": name, "pass": worst < tol}))

main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 2e-2)
