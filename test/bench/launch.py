"""What the benches share to call our kernels through ctypes: argument wrappers, the current stream,
and a check of the cudaError a launcher returns."""
import ctypes as C

import torch

P = lambda t: C.c_void_p(t.data_ptr())  # noqa: E731
I, F, LL = C.c_int, C.c_float, C.c_longlong
NULL = C.c_void_p(0)


def st():
    """torch's current CUDA stream, as a launcher takes it."""
    return C.c_void_p(torch.cuda.current_stream().cuda_stream)


def ok(err, what):
    if err != 0:
        raise RuntimeError(f"{what}: cudaError {err}")
