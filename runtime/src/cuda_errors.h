// Turns CUDA runtime failures into one-line messages and fpdt_status codes.
// A missing driver, a driver older than the runtime (error 35) and an empty
// device list all read "no CUDA device: ..." so users see one cause, not a code.
#ifndef FPDT_CUDA_ERRORS_H
#define FPDT_CUDA_ERRORS_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

// 1 when `err` means there is no usable driver or GPU at all.
int fpdt_cuda_is_no_device(cudaError_t err);

// Writes "<what>: <cause>; <what to change>" for a failed call at `where`
// into msg (cap bytes) and returns the matching fpdt_status.
int fpdt_cuda_describe(cudaError_t err, const char* where, char* msg, size_t cap);

// Checks that a driver and GPU `device` exist and makes it current on this
// thread (creating its context). Returns an fpdt_status; msg as above.
int fpdt_cuda_select_device(int device, char* msg, size_t cap);

#ifdef __cplusplus
}
#endif

#endif  // FPDT_CUDA_ERRORS_H
