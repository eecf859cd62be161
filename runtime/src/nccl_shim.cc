#include "nccl_shim.h"

#include <stdio.h>

#include <mutex>
#include <string>

#include "dl_library.h"
#include "dl_table.h"
#include "fpdt_abi.h"

namespace {

constexpr const char* kLabel = "NCCL";
constexpr const char* kEnvVar = "FPDT_NCCL";

using LoadedNccl = fpdt_loaded_table<fpdt_nccl>;

LoadedNccl& loaded() {
  static LoadedNccl instance;
  return instance;
}

template <typename Fn>
bool bind(void* lib, const char* symbol, Fn* slot, std::string& error) {
  return fpdt_bind(lib, kLabel, kEnvVar, symbol, slot, error);
}

void loadOnce(LoadedNccl& state) {
  static const char* const names[] = {"libnccl.so.2", "libnccl.so"};
  char msg[1024];
  void* lib = fpdt_dl_open(kLabel, kEnvVar, names, 2, msg, sizeof msg);
  if (!lib) {
    state.error = msg;
    return;
  }
  fpdt_nccl& t = state.table;
  std::string& e = state.error;
  state.ok = bind(lib, "ncclGetUniqueId", &t.get_unique_id, e) &&
             bind(lib, "ncclCommInitRank", &t.comm_init_rank, e) &&
             bind(lib, "ncclCommDestroy", &t.comm_destroy, e) &&
             bind(lib, "ncclAllReduce", &t.all_reduce, e) &&
             bind(lib, "ncclAllGather", &t.all_gather, e) &&
             bind(lib, "ncclReduceScatter", &t.reduce_scatter, e) &&
             bind(lib, "ncclSend", &t.send, e) && bind(lib, "ncclRecv", &t.recv, e) &&
             bind(lib, "ncclGroupStart", &t.group_start, e) &&
             bind(lib, "ncclGroupEnd", &t.group_end, e) &&
             bind(lib, "ncclGetErrorString", &t.get_error_string, e);
  t.get_last_error = reinterpret_cast<const char* (*)(fpdt_nccl_comm)>(
      fpdt_dl_symbol(lib, kLabel, kEnvVar, "ncclGetLastError", msg, sizeof msg));
  // only a program with dp groups needs it; it says so when the library lacks it
  t.comm_split = reinterpret_cast<decltype(t.comm_split)>(
      fpdt_dl_symbol(lib, kLabel, kEnvVar, "ncclCommSplit", msg, sizeof msg));
}

const char* resultName(fpdt_nccl_result r) {
  switch (r) {
    case FPDT_NCCL_UNHANDLED_CUDA_ERROR: return "ncclUnhandledCudaError";
    case FPDT_NCCL_SYSTEM_ERROR: return "ncclSystemError";
    case FPDT_NCCL_INTERNAL_ERROR: return "ncclInternalError";
    case FPDT_NCCL_INVALID_ARGUMENT: return "ncclInvalidArgument";
    case FPDT_NCCL_INVALID_USAGE: return "ncclInvalidUsage";
    case FPDT_NCCL_REMOTE_ERROR: return "ncclRemoteError";
    case FPDT_NCCL_IN_PROGRESS: return "ncclInProgress";
    default: return "ncclResult";
  }
}

}  // namespace

extern "C" const fpdt_nccl* fpdt_nccl_load(char* msg, size_t cap) {
  LoadedNccl& state = loaded();
  std::call_once(state.once, loadOnce, std::ref(state));
  if (state.ok) return &state.table;
  if (msg && cap) snprintf(msg, cap, "%s", state.error.c_str());
  return nullptr;
}

extern "C" int fpdt_nccl_describe(fpdt_nccl_result result, const char* what, fpdt_nccl_comm comm,
                                  char* msg, size_t cap) {
  LoadedNccl& state = loaded();
  const char* detail = "";
  if (state.ok) {
    if (comm && state.table.get_last_error) detail = state.table.get_last_error(comm);
    if (!detail || !detail[0]) detail = state.table.get_error_string(result);
  }
  if (msg)
    snprintf(msg, cap,
             "NCCL error: %s failed with %s (%d): %s; rerun with NCCL_DEBUG=WARN for details",
             what, resultName(result), result, detail ? detail : "");
  return FPDT_ERR_NCCL;
}
