#include "cuda_errors.h"

#include <stdio.h>

#include "fpdt_abi.h"

namespace {

// CUDART_VERSION is e.g. 13000 for 13.0.
constexpr int kRuntimeMajor = CUDART_VERSION / 1000;
constexpr int kRuntimeMinor = (CUDART_VERSION % 1000) / 10;

const char* noDeviceHint(cudaError_t err) {
  switch (err) {
    case cudaErrorInsufficientDriver:
      return "the NVIDIA driver is missing or older than this CUDA runtime; run on a machine "
             "with an NVIDIA GPU and a driver that supports CUDA";
    case cudaErrorNoDevice:
      return "no GPU is visible; check nvidia-smi and CUDA_VISIBLE_DEVICES";
    case cudaErrorStubLibrary:
      return "the libcuda.so found is the toolkit's stub; remove the stubs folder from "
             "LD_LIBRARY_PATH";
    case cudaErrorDevicesUnavailable:
      return "every GPU is busy or in exclusive-process mode; free one or change its compute "
             "mode";
    case cudaErrorSystemDriverMismatch:
      return "the kernel driver and libcuda.so versions differ; reinstall the driver or reboot";
    case cudaErrorCompatNotSupportedOnDevice:
      return "the forward-compatibility driver does not support this GPU; install a native "
             "driver";
    case cudaErrorInitializationError:
      return "the driver failed to initialize; check nvidia-smi and dmesg";
    default:
      return nullptr;
  }
}

}  // namespace

extern "C" int fpdt_cuda_is_no_device(cudaError_t err) {
  return noDeviceHint(err) != nullptr ? 1 : 0;
}

extern "C" int fpdt_cuda_describe(cudaError_t err, const char* where, char* msg, size_t cap) {
  if (err == cudaSuccess) {
    if (msg && cap) msg[0] = '\0';
    return FPDT_OK;
  }
  const char* name = cudaGetErrorName(err);
  const char* hint = noDeviceHint(err);
  if (hint) {
    if (msg)
      snprintf(msg, cap, "no CUDA device: %s failed with error %d (%s, CUDA runtime %d.%d): %s",
               where, (int)err, name, kRuntimeMajor, kRuntimeMinor, hint);
    return FPDT_ERR_NO_DEVICE;
  }
  if (err == cudaErrorMemoryAllocation) {
    if (msg)
      snprintf(msg, cap,
               "out of memory: %s failed (error %d, %s); lower the memory the plan needs, e.g. "
               "a smaller chunk size, or free the GPU",
               where, (int)err, name);
    return FPDT_ERR_OUT_OF_MEMORY;
  }
  if (msg)
    snprintf(msg, cap, "CUDA error: %s failed with error %d (%s: %s)", where, (int)err, name,
             cudaGetErrorString(err));
  return FPDT_ERR_CUDA;
}

extern "C" int fpdt_cuda_select_device(int device, char* msg, size_t cap) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return fpdt_cuda_describe(err, "cudaGetDeviceCount", msg, cap);
  if (count == 0) return fpdt_cuda_describe(cudaErrorNoDevice, "cudaGetDeviceCount", msg, cap);
  if (device < 0 || device >= count) {
    if (msg)
      snprintf(msg, cap,
               "no CUDA device: GPU %d was requested (the local rank) but only %d %s visible; "
               "start at most %d ranks per node or fix CUDA_VISIBLE_DEVICES",
               device, count, count == 1 ? "is" : "are", count);
    return FPDT_ERR_NO_DEVICE;
  }
  err = cudaSetDevice(device);
  if (err != cudaSuccess) return fpdt_cuda_describe(err, "cudaSetDevice", msg, cap);
  // cudaFree(0) creates the context now, so driver problems surface here.
  err = cudaFree(nullptr);
  if (err != cudaSuccess) return fpdt_cuda_describe(err, "creating the CUDA context", msg, cap);
  if (msg && cap) msg[0] = '\0';
  return FPDT_OK;
}
