"""What the benches share for timing on the GPU."""
import torch


def timed(fn, n=1):
    """Seconds per call of `fn`, called n times back to back between two CUDA events."""
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(n):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / 1e3 / n
