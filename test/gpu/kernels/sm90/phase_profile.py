"""What profile_fwd.py and profile_bwd.py share: run a profile build's kernel, read its phase counters
(2 warpgroups x (phases + 1), the last the iteration count), and print cycles per iteration by phase."""
import ctypes as C

import torch

P = lambda t: C.c_void_p(t.data_ptr())  # noqa: E731
I, F = C.c_int, C.c_float


def st():
    return C.c_void_p(torch.cuda.current_stream().cuda_stream)


def ok(err, what):
    if err != 0:
        raise RuntimeError(f"{what}: error {err}")


def measure(run, read, phases, stream):
    """Runs `run` once (then clears the counters), three times timed; returns (best ms, counters of the three)."""
    counters = (C.c_ulonglong * (2 * (len(phases) + 1)))()
    run()
    torch.cuda.synchronize()
    if read(counters, stream()) != 0:
        raise RuntimeError("reading the phase counters failed")
    times = []
    for _ in range(3):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        run()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    if read(counters, stream()) != 0:
        raise RuntimeError("reading the phase counters failed")
    return min(times), counters


def print_phases(counters, phases, what="iterations"):
    n = len(phases) + 1
    for wg in range(2):
        row = counters[wg * n:(wg + 1) * n]
        iters = max(row[n - 1], 1)
        total = sum(row[:n - 1])
        print(f"  warpgroup {wg}: {iters} {what}, {total / iters:.0f} cycles each")
        for name, c in zip(phases, row[:n - 1]):
            print(f"    {name:<20} {c / iters:8.0f} cycles  {100 * c / max(total, 1):5.1f}%")
