"""What the benches share for timing on the GPU."""
import math

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


def paired(a, b, rounds=9, min_s=0.2):
    """Median (min, max) over rounds of b's time / a's (a's speed over b's), each sample >= min_s seconds,
    the order alternating."""
    a()
    b()
    torch.cuda.synchronize()
    n = max(1, math.ceil(min_s / timed(a)))
    r = []
    for i in range(rounds):
        ta, tb = (timed(a, n), timed(b, n)) if i % 2 == 0 else tuple(reversed((timed(b, n), timed(a, n))))
        r.append(tb / ta)
    r.sort()
    return r[len(r) // 2], r[0], r[-1]
