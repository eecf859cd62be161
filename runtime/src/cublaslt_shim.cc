#include "cublaslt_shim.h"

#include <stdio.h>
#include <string.h>

#include <mutex>
#include <string>

#include "dl_library.h"
#include "dl_table.h"

namespace {

constexpr const char* kLabel = "cuBLASLt";
constexpr const char* kEnvVar = "FPDT_CUBLASLT";

using LoadedCublasLt = fpdt_loaded_table<fpdt_cublaslt>;

LoadedCublasLt& loaded() {
  static LoadedCublasLt instance;
  return instance;
}

template <typename Fn>
bool bind(void* lib, const char* symbol, Fn* slot, std::string& error) {
  return fpdt_bind(lib, kLabel, kEnvVar, symbol, slot, error);
}

void loadOnce(LoadedCublasLt& state) {
  static const char* const names[] = {"libcublasLt.so.13", "libcublasLt.so"};
  char msg[1024];
  void* lib = fpdt_dl_open(kLabel, kEnvVar, names, 2, msg, sizeof msg);
  if (!lib) {
    state.error = msg;
    return;
  }
  fpdt_cublaslt& t = state.table;
  std::string& e = state.error;
  state.ok = bind(lib, "cublasLtCreate", &t.create, e) &&
             bind(lib, "cublasLtDestroy", &t.destroy, e) &&
             bind(lib, "cublasLtMatmulDescCreate", &t.matmul_desc_create, e) &&
             bind(lib, "cublasLtMatmulDescSetAttribute", &t.matmul_desc_set_attribute, e) &&
             bind(lib, "cublasLtMatmulDescDestroy", &t.matmul_desc_destroy, e) &&
             bind(lib, "cublasLtMatrixLayoutCreate", &t.layout_create, e) &&
             bind(lib, "cublasLtMatrixLayoutSetAttribute", &t.layout_set_attribute, e) &&
             bind(lib, "cublasLtMatrixLayoutDestroy", &t.layout_destroy, e) &&
             bind(lib, "cublasLtMatmulPreferenceCreate", &t.preference_create, e) &&
             bind(lib, "cublasLtMatmulPreferenceSetAttribute", &t.preference_set_attribute, e) &&
             bind(lib, "cublasLtMatmulPreferenceDestroy", &t.preference_destroy, e) &&
             bind(lib, "cublasLtMatmulAlgoGetHeuristic", &t.heuristic, e) &&
             bind(lib, "cublasLtMatmul", &t.matmul, e);
  // Optional: only used to make messages nicer.
  t.status_string = reinterpret_cast<const char* (*)(fpdt_cublas_status)>(
      fpdt_dl_symbol(lib, kLabel, kEnvVar, "cublasLtGetStatusString", msg, sizeof msg));
}

}  // namespace

extern "C" const fpdt_cublaslt* fpdt_cublaslt_load(char* msg, size_t cap) {
  LoadedCublasLt& state = loaded();
  std::call_once(state.once, loadOnce, std::ref(state));
  if (state.ok) return &state.table;
  if (msg && cap) snprintf(msg, cap, "%s", state.error.c_str());
  return nullptr;
}

extern "C" const char* fpdt_cublas_status_name(fpdt_cublas_status status) {
  LoadedCublasLt& state = loaded();
  if (state.ok && state.table.status_string) return state.table.status_string(status);
  switch (status) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}
