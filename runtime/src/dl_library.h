// Opening a shared library by dlopen: an override path from an environment
// variable first, then versioned and unversioned names, with one message that
// names the library and the variable when none opens.
#ifndef FPDT_DL_LIBRARY_H
#define FPDT_DL_LIBRARY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Returns the dlopen handle, or NULL with msg filled in.
//   label:   shown to users, e.g. "NCCL"
//   env_var: override path variable, e.g. "FPDT_NCCL" (tried alone when set)
//   names:   file names to try in order, e.g. {"libnccl.so.2", "libnccl.so"}
void* fpdt_dl_open(const char* label, const char* env_var, const char* const* names, int n_names,
                   char* msg, size_t cap);

// Resolves `symbol`; NULL with msg naming the library, the symbol and env_var.
void* fpdt_dl_symbol(void* handle, const char* label, const char* env_var, const char* symbol,
                     char* msg, size_t cap);

#ifdef __cplusplus
}
#endif

#endif  // FPDT_DL_LIBRARY_H
