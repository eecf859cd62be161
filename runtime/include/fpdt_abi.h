/*
 * fpdt_abi.h: the C interface every generated per-rank program implements.
 *
 * One generated program (out/<model>/src/*.cu) is compiled for one model, one
 * sequence length, one parallel layout. The runtime addon links its object
 * files and drives it through the functions below; nothing else of the program
 * is visible to the runtime.
 *
 * Conventions
 *  - Every function returns an fpdt_status (0 = FPDT_OK). Nothing here aborts,
 *    exits or throws on a user error: a bad index, a wrong length, a missing
 *    GPU or library all come back as a status plus a one-line message.
 *  - The message of the last failed call on a program is fpdt_last_error(p);
 *    failures of fpdt_create (no program yet) are in fpdt_last_create_error().
 *    Messages say where, what, and what to change, on one line, and stay valid
 *    until the next call on the same program (or the next fpdt_create on the
 *    same thread).
 *  - A program is used by one host thread at a time, not necessarily the same
 *    thread on every call: implementations make their device current on entry.
 *  - Host buffers are plain pageable fp32 / int32 memory owned by the caller
 *    and only read or written during the call.
 *  - Parameters are ZeRO-3 shards: parameter i is a tensor of `shape`
 *    flattened in row-major order; this rank owns elements
 *    [shard_offset, shard_offset + shard_len) of it. Host buffers passed to
 *    set/get functions hold exactly that shard.
 */
#ifndef FPDT_ABI_H
#define FPDT_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change; the runtime refuses a program whose
 * fpdt_abi_version() differs from the header it was built with. */
#define FPDT_ABI_VERSION 7

/* Largest tensor rank fpdt_param_info reports. */
#define FPDT_MAX_DIMS 8

/* Label value that contributes nothing to the loss (Hugging Face convention). */
#define FPDT_IGNORE_LABEL (-100)

typedef enum fpdt_status {
  FPDT_OK = 0,
  FPDT_ERR_INVALID_ARGUMENT = 1, /* null pointer, index out of range, wrong length */
  FPDT_ERR_CONFIG = 2,           /* config JSON malformed or not what the program was compiled for */
  FPDT_ERR_NO_DEVICE = 3,        /* no driver, driver too old, or no usable GPU */
  FPDT_ERR_CUDA = 4,             /* a CUDA runtime call failed */
  FPDT_ERR_OUT_OF_MEMORY = 5,    /* GPU or pinned host allocation failed */
  FPDT_ERR_LIBRARY = 6,          /* libnccl / libcublasLt could not be opened */
  FPDT_ERR_NCCL = 7,             /* an NCCL call failed */
  FPDT_ERR_CUBLAS = 8,           /* a cuBLASLt call failed */
  FPDT_ERR_STATE = 9,            /* calls out of order, e.g. fpdt_step before fpdt_set_tokens */
  FPDT_ERR_INTERNAL = 10         /* a bug in the program: please report it */
} fpdt_status;

/* Opaque per-rank program instance. */
typedef struct fpdt_program fpdt_program;

/* One measured duration of the last step (CUDA events, milliseconds). */
typedef struct fpdt_timing {
  const char* name; /* static string, e.g. "step", "forward", "backward", "optimizer" */
  double ms;
} fpdt_timing;

/* One instruction of the last step as it ran on its stream (CUDA events, milliseconds from the
 * step's start, when the first stream began the step). */
typedef struct fpdt_trace_event {
  int instr;  /* the instruction: an index for fpdt_trace_instr (a loop's iterations share one) */
  int stream; /* 0 compute, 1 h2d, 2 d2h, 3 comm */
  int op;     /* the op's row in the program's profile (the "op:<name>" timings) */
  double start_ms, end_ms;
} fpdt_trace_event;

/* FPDT_ABI_VERSION of the header the program was compiled against. */
int fpdt_abi_version(void);

/* Static description of what was compiled, e.g. "llama8b seq=1048576 sp=8". */
const char* fpdt_program_name(void);

/*
 * Creates the program of rank `rank` out of `world`, allocates its GPU and
 * pinned host memory (as planned at compile time) and initializes its
 * parameters deterministically from the config's seed.
 *   config_json: run-time settings as JSON: lr, beta1, beta2, eps,
 *                weight_decay, max_grad_norm (AdamW and clipping by the
 *                global gradient norm, 0 = off; each defaults to the
 *                compiled value),
 *                seed (the initial weights) and trace (1: time every
 *                instruction, as FPDT_PROFILE=1 does; see fpdt_trace).
 *                Unknown keys are an FPDT_ERR_CONFIG.
 *   comm:        an fpdt_comm (fpdt_comm.h) of `world` ranks: NCCL, or a
 *                local world of ranks in one process on one GPU; owned by
 *                the caller and outliving the program; NULL is allowed only
 *                when world == 1.
 *   out:         receives the program; left NULL on failure.
 * On failure the message is in fpdt_last_create_error().
 */
int fpdt_create(const char* config_json, int rank, int world, void* comm, fpdt_program** out);

/* Message of the last failed call on p ("" when none). Never NULL. */
const char* fpdt_last_error(const fpdt_program* p);

/* Message of the last failed fpdt_create on this thread ("" when none). Never NULL. */
const char* fpdt_last_create_error(void);

/* Number of parameter tensors (same on every rank). */
int fpdt_param_count(const fpdt_program* p, int* count);

/*
 * Describes parameter i (0 <= i < count). Every output may be NULL.
 *   name:         static string, e.g. "layers.3.attn.wq"
 *   ndim, shape:  full (unsharded) shape; `shape` has room for FPDT_MAX_DIMS
 *   shard_offset, shard_len: this rank's slice of the flattened tensor
 */
int fpdt_param_info(const fpdt_program* p, int i, const char** name, int* ndim,
                    int64_t shape[FPDT_MAX_DIMS], int64_t* shard_offset, int64_t* shard_len);

/* Copies this rank's shard of parameter i from / to host fp32; n must equal shard_len. */
int fpdt_set_param(fpdt_program* p, int i, const float* host, int64_t n);
int fpdt_get_param(const fpdt_program* p, int i, float* host, int64_t n);

/* Gradient shard of parameter i from the last fpdt_step (fp32, reduced over ranks). */
int fpdt_get_grad(const fpdt_program* p, int i, float* host, int64_t n);

/* AdamW's two moments, as fpdt_get_state / fpdt_set_state name them (torch's names). */
typedef enum fpdt_state {
  FPDT_STATE_EXP_AVG = 0,    /* first moment m */
  FPDT_STATE_EXP_AVG_SQ = 1  /* second moment v */
} fpdt_state;

/*
 * This rank's shard of one AdamW moment of parameter i (fp32, the layout of the
 * parameter's shard); n must equal shard_len. Saving a run is every parameter,
 * both moments and the step count; resuming sets all of them back.
 */
int fpdt_get_state(const fpdt_program* p, int i, int which, float* host, int64_t n);
int fpdt_set_state(fpdt_program* p, int i, int which, const float* host, int64_t n);

/* The global gradient norm of the last step (before clipping), over every rank's shards. */
int fpdt_grad_norm(const fpdt_program* p, float* norm);

/* AdamW steps taken so far (its bias correction counts from them): read to save, set to resume. */
int fpdt_get_step(const fpdt_program* p, int* step);
int fpdt_set_step(fpdt_program* p, int step);

/*
 * Sets the sample for the next step. `tokens` holds the whole global sequence
 * in natural order (n == the compiled sequence length, the same on every
 * rank); the program picks and permutes this rank's pieces itself.
 * labels[t] is the target at position t (FPDT_IGNORE_LABEL to skip); when
 * labels is NULL, labels[t] = tokens[t + 1] and the last position is skipped.
 * A program compiled with dp groups takes the sequences of all groups one
 * after another (n == dp * the sequence length; group g = rank / sp trains
 * sequence g; default labels stop at each sequence's end) and its loss is the
 * mean over the labels of all of them.
 */
int fpdt_set_tokens(fpdt_program* p, const int32_t* tokens, const int32_t* labels, int64_t n);

/*
 * Packed documents (a program compiled with --packed): each token's position
 * inside its document (RoPE restarts there) and its document's id (a token
 * attends only to tokens of its own document), for the sequence(s) of the
 * next fpdt_set_tokens, in the same natural order and of the same length n.
 * Ids must not decrease along a sequence and positions must not be negative
 * (FPDT_ERR_INVALID_ARGUMENT names the first token that breaks either).
 * Labels are still fpdt_set_tokens': a document's last token and masked
 * tokens carry FPDT_IGNORE_LABEL. A packed program refuses fpdt_step until
 * this was called once; a program compiled without --packed refuses this
 * call (FPDT_ERR_CONFIG).
 */
int fpdt_set_documents(fpdt_program* p, const int32_t* positions, const int32_t* docs, int64_t n);

/* Learning rate for the next steps (overrides the config's value). */
int fpdt_set_learning_rate(fpdt_program* p, float lr);

/*
 * One training step: forward, backward, gradient reduction and AdamW.
 * loss receives the mean cross-entropy over all non-ignored labels of the
 * global sequence (identical on every rank); it may be NULL.
 */
int fpdt_step(fpdt_program* p, float* loss);

/* Phases of a step beside its forward and backward (flags of fpdt_step_phases). */
#define FPDT_PHASE_ZERO_GRADS 1 /* first: clear the gradient shards (a new optimizer step) */
#define FPDT_PHASE_UPDATE 2     /* last: global norm, clipping and AdamW on the accumulated gradients */

/*
 * Gradient accumulation: an optimizer step over K windows is K calls, the
 * first with FPDT_PHASE_ZERO_GRADS, the last with FPDT_PHASE_UPDATE (K = 1:
 * both in one call, which is fpdt_step), each after fpdt_set_tokens of its
 * window and fpdt_set_label_count of the labels of all K windows. Every call
 * runs forward and backward and adds its reduced gradients into the shards, so
 * that after the last one the gradients (fpdt_get_grad), their norm and the
 * update are those of the batch of K windows: the loss and gradients are the
 * mean over all their counted labels. loss receives this window's share of
 * that mean (its label sum over the count), so the K losses sum to the batch's.
 * AdamW's step count advances with FPDT_PHASE_UPDATE only. Parameters must not
 * be set between the calls of one optimizer step.
 */
int fpdt_step_phases(fpdt_program* p, int phases, float* loss);

/*
 * The number of labels the next steps divide the loss and gradients by,
 * instead of the count of their own window (count >= 1); fpdt_set_tokens sets
 * it back to the window's count.
 */
int fpdt_set_label_count(fpdt_program* p, int64_t count);

/*
 * Memory in bytes. planned_gpu / planned_host: what the compiler's memory
 * plan reserves on this rank; peak_gpu_measured: the device allocator's peak
 * since fpdt_create as observed by the program. Every output may be NULL.
 */
int fpdt_memory(const fpdt_program* p, size_t* planned_gpu, size_t* peak_gpu_measured,
                size_t* planned_host);

/*
 * Timings of the last step. Writes up to `capacity` entries to `out` (which
 * may be NULL when capacity is 0) and the number available to *count.
 */
int fpdt_timings(const fpdt_program* p, fpdt_timing* out, int capacity, int* count);

/*
 * The last step's instructions one by one, in the order the step issued
 * them, when the program was created with tracing on (config "trace": 1, or
 * FPDT_PROFILE=1 in the environment); *count is 0 otherwise. Writes up to
 * `capacity` events to `out` (NULL when capacity is 0) and the number
 * available to *count. A step times at most its first 65536 instructions
 * (FPDT_PROF_MAX of the program); later ones have no event. The k-th event is
 * the k-th instruction issued, so walking the schedule's loops in order gives
 * each event's loop iteration.
 */
int fpdt_trace(const fpdt_program* p, fpdt_trace_event* out, int capacity, int* count);

/*
 * Names traced instruction `instr` (0 <= instr < the program's count): its
 * id in schedule.json (e.g. "i275") and its op (e.g. "adamw"), static strings.
 * Either output may be NULL. FPDT_ERR_INVALID_ARGUMENT outside the table.
 */
int fpdt_trace_instr(const fpdt_program* p, int instr, const char** id, const char** op);

/* Frees everything; p may be NULL. Does not destroy the caller's comm. */
void fpdt_destroy(fpdt_program* p);

#ifdef __cplusplus
}
#endif

#endif /* FPDT_ABI_H */
