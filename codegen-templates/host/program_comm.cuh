// Collectives of a generated host program (included by program.cu after its status helpers).
// Three ways, chosen by the communicator given to fpdt_create:
//  - none (one rank): the result is the input, copied when the windows differ;
//  - NCCL: one process per GPU; the all-to-all is grouped send/recv of per-rank pieces, packed
//    and unpacked by comm_kernels.cu; everything on the comm stream;
//  - the local world: ranks of one process on one GPU. Each rank records "ready" on its comm
//    stream and meets the others at a host barrier; its comm stream waits for every rank's
//    ready, computes its own result from the others' buffers, records "done"; a second barrier,
//    then a wait on every rank's done, so that no rank overwrites a buffer another still reads.
// With dp groups (FPDT_DP > 1, world = FPDT_DP * FPDT_SP, rank = group * FPDT_SP + place) the
// all-to-alls stay inside the rank's sequence-parallel group: over NCCL on the group's own
// communicator, in the local world by reading and waiting on the group's ranks only (every rank
// still meets the others at the host barriers, which cost nothing and keep one order of calls).
// All-gather, reduce-scatter and all-reduce span the world.
#pragma once

#ifndef FPDT_SP
#define FPDT_SP FPDT_WORLD /* one group: the sequence-parallel group is the world */
#define FPDT_DP 1
#endif

static int comm_nccl_check(fpdt_program* p, fpdt_nccl_result r, const char* where) {
  if (r == FPDT_NCCL_SUCCESS) return FPDT_OK;
  return fpdt_nccl_describe(r, where, (fpdt_nccl_comm)p->comm->nccl, p->err, sizeof p->err);
}
#define NCCL_CK(call) do { int st_ = comm_nccl_check(p, (call), where); if (st_ != FPDT_OK) return st_; } while (0)

static inline int nccl_dtype(int eb) { return eb == 4 ? FPDT_NCCL_FLOAT32 : FPDT_NCCL_BFLOAT16; }
static inline bool comm_is(const fpdt_program* p, int kind) { return p->comm && p->comm->kind == kind; }

/* The ranks a collective runs over: [first, first + count) of the world. */
typedef struct comm_span {
  int first, count;
} comm_span;
static inline comm_span world_span(const fpdt_program* p) { return comm_span{0, p->world}; }
/* The rank's sequence-parallel group; its place in it is p->rank - first. */
static inline comm_span group_span(const fpdt_program* p) { return comm_span{p->rank - p->rank % FPDT_SP, FPDT_SP}; }

/*
 * With dp groups over NCCL, the all-to-alls run on a communicator of the rank's group, split
 * from the world's at creation (ncclCommSplit, NCCL >= 2.18; color = group, key = place, so
 * that the group numbers its ranks by place). A split needs no second unique id, hence no second
 * rendezvous: every rank already holds the world communicator and calls the split once in
 * fpdt_create. The group communicator lives beside the world's in fpdt_comm and is freed with it.
 */
static inline int comm_open_group(fpdt_program* p, char* msg, size_t cap) {
  if (FPDT_DP == 1 || !comm_is(p, FPDT_COMM_NCCL) || p->comm->nccl_group) return FPDT_OK;
  if (!p->nccl->comm_split) {
    fpdt_set_msg(msg, cap, "NCCL error: this libnccl has no ncclCommSplit; %s needs NCCL 2.18 or later (FPDT_NCCL picks the library)", "data parallelism over NCCL");
    return FPDT_ERR_LIBRARY;
  }
  fpdt_nccl_comm group = NULL;
  fpdt_nccl_result r = p->nccl->comm_split((fpdt_nccl_comm)p->comm->nccl, p->rank / FPDT_SP, p->rank % FPDT_SP, &group, NULL);
  if (r != FPDT_NCCL_SUCCESS) return fpdt_nccl_describe(r, "ncclCommSplit (sequence-parallel groups)", (fpdt_nccl_comm)p->comm->nccl, msg, cap);
  p->comm->nccl_group = group;
  return FPDT_OK;
}

/* The NCCL communicator of the rank's sequence-parallel group (the world's with one group). */
static inline fpdt_nccl_comm group_comm(const fpdt_program* p) {
  return (fpdt_nccl_comm)(FPDT_DP > 1 ? p->comm->nccl_group : p->comm->nccl);
}

static int local_begin(fpdt_program* p, const void* send, void* recv, fpdt_local_entry* all, comm_span sp, const char* where) {
  cudaStream_t s = p->s[3];
  FPDT_CK(cudaEventRecord(p->comm_ready, s), where);
  fpdt_local_entry mine = {send, recv, p->comm_ready, p->comm_done};
  if (fpdt_local_exchange(p->comm->local, p->rank, &mine, all)) return fail(p, FPDT_ERR_STATE, "%s: another rank of the local world failed", where);
  for (int q = sp.first; q < sp.first + sp.count; q++)
    if (q != p->rank) FPDT_CK(cudaStreamWaitEvent(s, all[q].ready, 0), where);
  return FPDT_OK;
}

/* Waits for the ranks of the span only: they are the ones that read this rank's buffers. */
static int local_end(fpdt_program* p, const fpdt_local_entry* all, comm_span sp, const char* where) {
  cudaStream_t s = p->s[3];
  FPDT_CK(cudaEventRecord(p->comm_done, s), where);
  if (fpdt_local_barrier(p->comm->local)) return fail(p, FPDT_ERR_STATE, "%s: another rank of the local world failed", where);
  for (int q = sp.first; q < sp.first + sp.count; q++)
    if (q != p->rank) FPDT_CK(cudaStreamWaitEvent(s, all[q].done, 0), where);
  return FPDT_OK;
}

/* The send buffers of the span's ranks, numbered from 0. */
static fpdt_rank_ptrs sends_of(const fpdt_local_entry* all, comm_span sp) {
  fpdt_rank_ptrs r = {};
  for (int q = 0; q < sp.count; q++) r.p[q] = all[sp.first + q].send;
  return r;
}

static fpdt_rank_ptrs strided(const void* base, long long stride) {
  fpdt_rank_ptrs r = {};
  r.base = (const char*)base;
  r.stride = stride;
  return r;
}

static int fpdt_self_copy(fpdt_program* p, void* recv, const void* send, long long bytes, const char* where) {
  FPDT_CK(fpdt_local_copy(recv, send, bytes, p->s[3]), where);
  return FPDT_OK;
}

/* recv[q*count ...] = rank q's send[0, count) */
static int fpdt_all_gather(fpdt_program* p, const void* send, void* recv, long long count, int eb, const char* where) {
  if (!p->comm) return fpdt_self_copy(p, recv, send, count * eb, where);
  if (comm_is(p, FPDT_COMM_NCCL)) {
    NCCL_CK(p->nccl->all_gather(send, recv, (size_t)count, nccl_dtype(eb), (fpdt_nccl_comm)p->comm->nccl, p->s[3]));
    return FPDT_OK;
  }
  fpdt_local_entry all[FPDT_MAX_LOCAL_RANKS];
  FPDT_TRY(local_begin(p, send, recv, all, world_span(p), where));
  for (int q = 0; q < p->world; q++)
    FPDT_CK(cudaMemcpyAsync((char*)recv + q * count * eb, all[q].send, (size_t)(count * eb), cudaMemcpyDeviceToDevice, p->s[3]), where);
  return local_end(p, all, world_span(p), where);
}

/* The same inside the rank's sequence-parallel group (packed documents gather their ids per chunk
 * over it, lower/packed.ts): recv[q*count, (q+1)*count) = send of the group's rank at place q. */
static inline int fpdt_all_gather_group(fpdt_program* p, const void* send, void* recv, long long count, int eb, const char* where) {
  if (!p->comm) return fpdt_self_copy(p, recv, send, count * eb, where);
  if (comm_is(p, FPDT_COMM_NCCL)) {
    NCCL_CK(p->nccl->all_gather(send, recv, (size_t)count, nccl_dtype(eb), group_comm(p), p->s[3]));
    return FPDT_OK;
  }
  fpdt_local_entry all[FPDT_MAX_LOCAL_RANKS];
  const comm_span group = group_span(p);
  FPDT_TRY(local_begin(p, send, recv, all, group, where));
  for (int q = 0; q < group.count; q++)
    FPDT_CK(cudaMemcpyAsync((char*)recv + q * count * eb, all[group.first + q].send, (size_t)(count * eb), cudaMemcpyDeviceToDevice, p->s[3]), where);
  return local_end(p, all, group, where);
}

/* recv[0, count) = sum over ranks of send[rank*count, (rank+1)*count) */
static int fpdt_reduce_scatter(fpdt_program* p, const void* send, void* recv, long long count, int eb, const char* where) {
  if (!p->comm) return fpdt_self_copy(p, recv, send, count * eb, where);
  if (comm_is(p, FPDT_COMM_NCCL)) {
    NCCL_CK(p->nccl->reduce_scatter(send, recv, (size_t)count, nccl_dtype(eb), FPDT_NCCL_SUM, (fpdt_nccl_comm)p->comm->nccl, p->s[3]));
    return FPDT_OK;
  }
  fpdt_local_entry all[FPDT_MAX_LOCAL_RANKS];
  FPDT_TRY(local_begin(p, send, recv, all, world_span(p), where));
  FPDT_CK(fpdt_sum_ranks(recv, sends_of(all, world_span(p)), p->rank * count, p->world, count, eb, p->s[3]), where);
  return local_end(p, all, world_span(p), where);
}

/* recv = sum over ranks of send (in place allowed) */
static int fpdt_all_reduce(fpdt_program* p, const void* send, void* recv, long long count, int eb, const char* where) {
  if (!p->comm) return fpdt_self_copy(p, recv, send, count * eb, where);
  if (comm_is(p, FPDT_COMM_NCCL)) {
    NCCL_CK(p->nccl->all_reduce(send, recv, (size_t)count, nccl_dtype(eb), FPDT_NCCL_SUM, (fpdt_nccl_comm)p->comm->nccl, p->s[3]));
    return FPDT_OK;
  }
  fpdt_local_entry all[FPDT_MAX_LOCAL_RANKS];
  FPDT_TRY(local_begin(p, send, recv, all, world_span(p), where));
  FPDT_CK(fpdt_sum_ranks(p->comm_scratch, sends_of(all, world_span(p)), 0, p->world, count, eb, p->s[3]), where);
  FPDT_TRY(local_end(p, all, world_span(p), where));
  FPDT_CK(cudaMemcpyAsync(recv, p->comm_scratch, (size_t)(count * eb), cudaMemcpyDeviceToDevice, p->s[3]), where);
  return FPDT_OK;
}

/* Ulysses all-to-all (fpdt_comm.h geometry) inside the rank's sequence-parallel group of P = FPDT_SP
   ranks: to_heads [c, H, d] -> [P*c, hL, d]; else the inverse, summing replicated heads. */
static int fpdt_all_to_all_once(fpdt_program* p, int to_heads, const void* send, void* recv, fpdt_a2a_geom g, int eb, const char* where);

/* The all-to-all, between two timing events when the program profiles its collectives: bytes
   count the whole exchanged buffer of this rank (P pieces), as nccl-tests' algorithm bandwidth does. */
static int fpdt_all_to_all(fpdt_program* p, int to_heads, const void* send, void* recv, fpdt_a2a_geom g, int eb, const char* where) {
  const int k = p->a2a_n;
  const bool timed = p->profile_comm && k < FPDT_A2A_PROFILED;
  if (timed) FPDT_CK(cudaEventRecord(p->a2a_ev[2 * k], p->s[3]), where);
  FPDT_TRY(fpdt_all_to_all_once(p, to_heads, send, recv, g, eb, where));
  if (timed) {
    FPDT_CK(cudaEventRecord(p->a2a_ev[2 * k + 1], p->s[3]), where);
    p->a2a_n += 1;
    p->a2a_bytes += (double)g.c * g.hL * g.d * eb * FPDT_SP;
    if (p->a2a_call_bytes) p->a2a_call_bytes[k] = (double)g.c * g.hL * g.d * eb * FPDT_SP;
  }
  return FPDT_OK;
}

static int fpdt_all_to_all_once(fpdt_program* p, int to_heads, const void* send, void* recv, fpdt_a2a_geom g, int eb, const char* where) {
  const long long piece = (long long)g.c * g.hL * g.d; /* elements one rank sends another */
  if (!p->comm) return fpdt_self_copy(p, recv, send, piece * eb, where);
  cudaStream_t s = p->s[3];
  if (comm_is(p, FPDT_COMM_NCCL)) {
    fpdt_nccl_comm c = group_comm(p);
    const char* in = to_heads ? p->comm_scratch : (const char*)send;
    char* out = to_heads ? (char*)recv : p->comm_scratch;
    if (to_heads) FPDT_CK(fpdt_a2a_to_heads(p->comm_scratch, strided(send, 0), g, -1, eb, s), where);
    NCCL_CK(p->nccl->group_start());
    /* peers are numbered by their place in the group */
    for (int q = 0; q < FPDT_SP; q++) {
      NCCL_CK(p->nccl->send(in + q * piece * eb, (size_t)piece, nccl_dtype(eb), q, c, s));
      NCCL_CK(p->nccl->recv(out + q * piece * eb, (size_t)piece, nccl_dtype(eb), q, c, s));
    }
    NCCL_CK(p->nccl->group_end());
    if (!to_heads) FPDT_CK(fpdt_a2a_to_seq(recv, strided(p->comm_scratch, piece * eb), 0, g, eb, s), where);
    return FPDT_OK;
  }
  fpdt_local_entry all[FPDT_MAX_LOCAL_RANKS];
  const comm_span group = group_span(p);
  const int place = p->rank - group.first;
  FPDT_TRY(local_begin(p, send, recv, all, group, where));
  if (to_heads) FPDT_CK(fpdt_a2a_to_heads(recv, sends_of(all, group), g, place, eb, s), where);
  else FPDT_CK(fpdt_a2a_to_seq(recv, sends_of(all, group), place * g.c, g, eb, s), where);
  return local_end(p, all, group, where);
}
