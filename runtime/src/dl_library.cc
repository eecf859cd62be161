#include "dl_library.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>

extern "C" void* fpdt_dl_open(const char* label, const char* env_var, const char* const* names,
                              int n_names, char* msg, size_t cap) {
  const char* override_path = getenv(env_var);
  if (override_path && override_path[0]) {
    void* handle = dlopen(override_path, RTLD_NOW | RTLD_LOCAL);
    if (handle) return handle;
    const char* why = dlerror();
    if (msg)
      snprintf(msg, cap, "%s library not loaded: %s=%s cannot be opened (%s); point %s at %s",
               label, env_var, override_path, why ? why : "unknown reason", env_var, names[0]);
    return nullptr;
  }
  std::string tried;
  std::string last_error;
  for (int i = 0; i < n_names; i++) {
    void* handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (handle) return handle;
    const char* why = dlerror();
    if (i) tried += ", ";
    tried += names[i];
    if (why) last_error = why;
  }
  if (msg)
    snprintf(msg, cap,
             "%s library not found: tried %s (%s); install it, add its folder to "
             "LD_LIBRARY_PATH, or set %s to the full path of %s",
             label, tried.c_str(), last_error.empty() ? "not on the library path" : last_error.c_str(),
             env_var, names[0]);
  return nullptr;
}

extern "C" void* fpdt_dl_symbol(void* handle, const char* label, const char* env_var,
                                const char* symbol, char* msg, size_t cap) {
  dlerror();
  void* fn = dlsym(handle, symbol);
  if (fn) return fn;
  if (msg)
    snprintf(msg, cap,
             "%s library is too old or not %s: it has no %s; install a newer one or set %s to "
             "its full path",
             label, label, symbol, env_var);
  return nullptr;
}
