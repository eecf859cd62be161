// A table of entry points bound from a dlopen'ed library once per process, with the first
// missing symbol's message kept for every later caller (shared by the NCCL and cuBLASLt shims).
#ifndef FPDT_DL_TABLE_H
#define FPDT_DL_TABLE_H

#include <mutex>
#include <string>

#include "dl_library.h"

template <typename Table>
struct fpdt_loaded_table {
  std::once_flag once;
  Table table{};
  bool ok = false;
  std::string error;
};

// Binds `symbol` into `slot`; false with `error` set (naming the library, symbol and variable).
template <typename Fn>
bool fpdt_bind(void* lib, const char* label, const char* env_var, const char* symbol, Fn* slot, std::string& error) {
  char msg[512];
  void* fn = fpdt_dl_symbol(lib, label, env_var, symbol, msg, sizeof msg);
  if (!fn) {
    error = msg;
    return false;
  }
  *slot = reinterpret_cast<Fn>(fn);
  return true;
}

#endif  // FPDT_DL_TABLE_H
