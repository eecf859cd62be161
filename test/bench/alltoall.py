# The plain NCCL all-to-all rate on this machine's GPUs (torch.distributed, one process per GPU):
# the rate our in-step all-to-alls are compared with. Buffer sizes like a Ulysses chunk's q, k, v.
# Usage: python3 alltoall.py [ngpus]; prints one JSON line per size (algbw as nccl-tests: bytes of
# one rank's buffer over time; busbw = algbw * (n-1)/n).
import json, os, sys, time
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SIZES_MB = [16, 64, 256, 1024]

def worker(rank, n, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NCCL_NVLS_ENABLE="0")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=n)
    for mb in SIZES_MB:
        x = torch.randn(mb * 2**20 // 2, dtype=torch.bfloat16, device="cuda")
        y = torch.empty_like(x)
        for _ in range(3):
            dist.all_to_all_single(y, x)
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(10):
            s.record(); dist.all_to_all_single(y, x); e.record(); torch.cuda.synchronize(); times.append(s.elapsed_time(e))
        times.sort()
        ms = times[len(times) // 2]
        alg = x.numel() * 2 / ms / 1e6
        if rank == 0:
            line = json.dumps({"gpus": n, "MB": mb, "ms": ms, "algbw_GBps": alg, "busbw_GBps": alg * (n - 1) / n})
            print(line, flush=True)
            with open(out, "a") as f:
                f.write(line + "\n")
    dist.destroy_process_group()

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else torch.cuda.device_count()
    out = os.path.join(os.environ.get("OUT", "."), "alltoall.jsonl")
    mp.spawn(worker, args=(n, 29511, out), nprocs=n)
