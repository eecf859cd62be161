// Helpers of generated host programs (program.cu): status checks that name the failing
// instruction, a local copy for one-rank collectives, and the tiny JSON reader for the
// config passed to fpdt_create. Included once, by program.cu.
#pragma once
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int64_t fpdt_mod(int64_t x, int64_t n) { return ((x % n) + n) % n; }

// One-rank collectives: the result is the input; copy only when the windows differ.
static inline cudaError_t fpdt_local_copy(void* dst, const void* src, long long bytes, cudaStream_t s) {
  if (dst == src || bytes == 0) return cudaSuccess;
  return cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice, s);
}

static void fpdt_set_msg(char* buf, size_t cap, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}

// Reads a flat JSON object of numbers ({"lr": 3e-4, "seed": 7}). Calls on_key for each pair;
// returns 0 on success, -1 on malformed text (msg says where).
typedef int (*fpdt_json_key_fn)(void* ctx, const char* key, double value, char* msg, size_t cap);
static int fpdt_parse_config(const char* text, void* ctx, fpdt_json_key_fn on_key, char* msg, size_t cap) {
  const char* s = text ? text : "{}";
  while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') s++;
  if (*s++ != '{') { fpdt_set_msg(msg, cap, "config: expected a JSON object"); return -1; }
  for (;;) {
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r' || *s == ',') s++;
    if (*s == '}') return 0;
    if (*s++ != '"') { fpdt_set_msg(msg, cap, "config: expected a key at '%.20s'", s - 1); return -1; }
    char key[64];
    size_t n = 0;
    while (*s && *s != '"' && n + 1 < sizeof key) key[n++] = *s++;
    key[n] = 0;
    if (*s++ != '"') { fpdt_set_msg(msg, cap, "config: key too long or unterminated"); return -1; }
    while (*s == ' ' || *s == ':') s++;
    char* end = NULL;
    double v = strtod(s, &end);
    if (end == s) { fpdt_set_msg(msg, cap, "config: '%s' needs a number", key); return -1; }
    s = end;
    if (on_key(ctx, key, v, msg, cap)) return -1;
  }
}
