#!/bin/bash
# Builds, on a machine with nvcc, what run-speed.sh times on one H200: llama1b on a 512K window of
# packed documents (--packed), offloaded (w512k, the FPDT path: the blocks that share no document
# are skipped with their fetches) and resident (w512k-resident, --offload off: no fetches at all), and
# llama1b at 16K twice (plain, and --packed: the same document-masked kernels as the window, one
# document a step), into .carry/packed-speed/{w512k,w512k-resident,s16k,s16k-packed}, plus
# the bundled `fpdtc run` (run-entry.mjs). The GPU host has 128 GiB of memory: pinned host memory is
# capped at HOST_MEM GiB (default 80). CHUNK (default: the compiler's choice, 64K) is the 512K window's
# chunk; KEEP (default auto) the layers that keep attention. Usage: build-speed.sh [w512k w512k-resident s16k s16k-packed]
set -eu
. test/gpu/carry-build.sh
dest=.carry/packed-speed
work=/tmp/fpdt-packed-speed
host=${HOST_MEM:-80}
keep=${KEEP:-auto}
mkdir -p "$dest" "$work"
build() { # name seq chunk extra-flags...
  local name=$1 seq=$2 chunk=$3; shift 3
  BUILD_JOBS=4 compile_and_carry "$name" models/llama1b.ts "$dest" "$work" --seq "$seq" ${chunk:+--chunk "$chunk"} \
    --device h200 --host-mem "$host" --keep-attention "$keep" "$@"
  cat "$dest/$name/compile.txt"
}
parts="$*"
want_part() { [ -z "$parts" ] || [[ " $parts " == *" $1 "* ]]; }
want_part w512k && build w512k 524288 "${CHUNK:-}" --packed
want_part w512k-resident && build w512k-resident 524288 "${CHUNK:-}" --packed --offload off
want_part s16k && build s16k 16384 16384
want_part s16k-packed && build s16k-packed 16384 16384 --packed
bundle_run_entry "$dest/run-entry.mjs"
