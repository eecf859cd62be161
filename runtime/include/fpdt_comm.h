// The communicator a host program is created with (fpdt_create's `comm`), shared by the ranks
// that use it: NCCL (one process per GPU), or a local world (several ranks in one process on
// one GPU, collectives done with device copies ordered by events and a host barrier).
// Also the launchers of the collectives' pack, unpack and sum kernels (comm_kernels.cu).
#ifndef FPDT_COMM_H
#define FPDT_COMM_H
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { FPDT_COMM_NCCL = 1, FPDT_COMM_LOCAL = 2 };
#define FPDT_MAX_LOCAL_RANKS 16

typedef struct fpdt_local_world fpdt_local_world;

typedef struct fpdt_comm {
  int kind;
  void* nccl;              /* ncclComm_t, for FPDT_COMM_NCCL */
  fpdt_local_world* local; /* for FPDT_COMM_LOCAL */
  int device;              /* the GPU of this process's ranks */
  /* FPDT_COMM_NCCL with dp groups: the rank's sequence-parallel group, split from `nccl` by the
     program (program_comm.cuh) and freed with it; NULL until then */
  void* nccl_group;
} fpdt_comm;

/* What a rank publishes for one collective of the local world. */
typedef struct fpdt_local_entry {
  const void* send;
  void* recv;
  cudaEvent_t ready; /* recorded when the rank's inputs are ready */
  cudaEvent_t done;  /* recorded when the rank stopped reading the others' buffers */
} fpdt_local_entry;

fpdt_local_world* fpdt_local_world_create(int world);
void fpdt_local_world_destroy(fpdt_local_world* w);
int fpdt_local_world_size(const fpdt_local_world* w);
/* Publishes `mine`, waits for every rank, copies every rank's entry into all[world]. 0, or -1 after an abort. */
int fpdt_local_exchange(fpdt_local_world* w, int rank, const fpdt_local_entry* mine, fpdt_local_entry* all);
/* Waits for every rank. 0, or -1 after an abort. */
int fpdt_local_barrier(fpdt_local_world* w);
/* A rank failed: every waiting and later call returns -1. */
void fpdt_local_abort(fpdt_local_world* w);

/* Per-rank source pointers: p[q], or base + q * stride bytes when base is set. */
typedef struct fpdt_rank_ptrs {
  const void* p[FPDT_MAX_LOCAL_RANKS];
  const char* base;
  long long stride;
} fpdt_rank_ptrs;

/* Ulysses geometry of an all-to-all: rows per rank c, ranks P, heads H, head dim d, heads per rank hL,
 * kv group G (1: query-type), query heads per rank hqL. Head h of rank r is r*hL + h (G == 1) or
 * floor(r*hqL/G) + h; heads >= H are zero padding. */
typedef struct fpdt_a2a_geom {
  int c, P, H, d, hL, G, hqL;
} fpdt_a2a_geom;

/* dst block q (dst + q * c*hL*d elements) row t head h = src(q) row t, global head head(r, h)
 * with r = head_rank, or r = q when head_rank < 0; padding heads are zero. */
cudaError_t fpdt_a2a_to_heads(void* dst, fpdt_rank_ptrs src, fpdt_a2a_geom g, int head_rank, int elem_bytes, cudaStream_t s);
/* dst [c, H, d] row t head gh = sum over ranks q holding gh of src(q) row (row0 + t), local head gh - head(q, 0). */
cudaError_t fpdt_a2a_to_seq(void* dst, fpdt_rank_ptrs src, int row0, fpdt_a2a_geom g, int elem_bytes, cudaStream_t s);
/* dst[i] = sum over q < P of src(q)[offset + i], i < n; fp32 sums. */
cudaError_t fpdt_sum_ranks(void* dst, fpdt_rank_ptrs src, long long offset, int P, long long n, int elem_bytes, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif /* FPDT_COMM_H */
