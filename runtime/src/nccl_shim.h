// NCCL opened at run time with dlopen (libnccl.so.2, then libnccl.so;
// FPDT_NCCL overrides the path). The declarations are our own and cover only
// the entry points the runtime uses; the enum values match NCCL 2.x's nccl.h.
#ifndef FPDT_NCCL_SHIM_H
#define FPDT_NCCL_SHIM_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int fpdt_nccl_result;  // ncclResult_t; 0 is success
enum {
  FPDT_NCCL_SUCCESS = 0,
  FPDT_NCCL_UNHANDLED_CUDA_ERROR = 1,
  FPDT_NCCL_SYSTEM_ERROR = 2,
  FPDT_NCCL_INTERNAL_ERROR = 3,
  FPDT_NCCL_INVALID_ARGUMENT = 4,
  FPDT_NCCL_INVALID_USAGE = 5,
  FPDT_NCCL_REMOTE_ERROR = 6,
  FPDT_NCCL_IN_PROGRESS = 7,
};

#define FPDT_NCCL_UNIQUE_ID_BYTES 128
typedef struct fpdt_nccl_unique_id {  // ncclUniqueId
  char internal[FPDT_NCCL_UNIQUE_ID_BYTES];
} fpdt_nccl_unique_id;

typedef struct fpdt_nccl_context_s* fpdt_nccl_comm;  // ncclComm_t

// ncclDataType_t
enum {
  FPDT_NCCL_INT32 = 2,
  FPDT_NCCL_INT64 = 4,
  FPDT_NCCL_FLOAT16 = 6,
  FPDT_NCCL_FLOAT32 = 7,
  FPDT_NCCL_BFLOAT16 = 9,
};
// ncclRedOp_t
enum { FPDT_NCCL_SUM = 0, FPDT_NCCL_MAX = 2, FPDT_NCCL_AVG = 4 };

typedef struct fpdt_nccl {
  fpdt_nccl_result (*get_unique_id)(fpdt_nccl_unique_id* id);
  fpdt_nccl_result (*comm_init_rank)(fpdt_nccl_comm* comm, int nranks, fpdt_nccl_unique_id id,
                                     int rank);
  fpdt_nccl_result (*comm_destroy)(fpdt_nccl_comm comm);
  fpdt_nccl_result (*all_reduce)(const void* send, void* recv, size_t count, int dtype, int op,
                                 fpdt_nccl_comm comm, cudaStream_t stream);
  fpdt_nccl_result (*all_gather)(const void* send, void* recv, size_t send_count, int dtype,
                                 fpdt_nccl_comm comm, cudaStream_t stream);
  fpdt_nccl_result (*reduce_scatter)(const void* send, void* recv, size_t recv_count, int dtype,
                                     int op, fpdt_nccl_comm comm, cudaStream_t stream);
  fpdt_nccl_result (*send)(const void* buf, size_t count, int dtype, int peer,
                           fpdt_nccl_comm comm, cudaStream_t stream);
  fpdt_nccl_result (*recv)(void* buf, size_t count, int dtype, int peer, fpdt_nccl_comm comm,
                           cudaStream_t stream);
  fpdt_nccl_result (*group_start)(void);
  fpdt_nccl_result (*group_end)(void);
  const char* (*get_error_string)(fpdt_nccl_result result);
  const char* (*get_last_error)(fpdt_nccl_comm comm);  // optional: may be NULL
  // ncclCommSplit (NCCL >= 2.18), for data parallelism's sequence-parallel groups; optional: NULL
  // in older libraries. `config` is an ncclConfig_t*; NULL takes the parent's settings.
  fpdt_nccl_result (*comm_split)(fpdt_nccl_comm comm, int color, int key, fpdt_nccl_comm* newcomm,
                                 void* config);
} fpdt_nccl;

// Opens the library once per process (thread-safe). Returns the table, or
// NULL with a one-line message naming the library and FPDT_NCCL.
const fpdt_nccl* fpdt_nccl_load(char* msg, size_t cap);

// "NCCL error: <what> failed with <name> (<detail>)" into msg; returns FPDT_ERR_NCCL.
int fpdt_nccl_describe(fpdt_nccl_result result, const char* what, fpdt_nccl_comm comm, char* msg,
                       size_t cap);

#ifdef __cplusplus
}
#endif

#endif  // FPDT_NCCL_SHIM_H
