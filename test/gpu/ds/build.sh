#!/bin/bash
# Builds, on a machine with nvcc, what test/gpu/ds/run.sh runs on one H200: our Llama-3-8B attention
# layer (test/gpu/models/ds-attn8b.ts, one layer, sp 1, chunk 64K) at each SEQ given (default 128K
# 256K 512K), offloaded (offload on, the layer input checkpointed to host, the working stashes on the
# host: FPDT's placement, as DeepSpeed offloads them; the planner would put them on the GPU where they fit)
# into .carry/ds/ours-<SEQ>/ and resident (offload off, checkpoint on the GPU) into
# .carry/ds/ours-<SEQ>-resident/; the bundled `fpdtc run` (.carry/ds/run-entry.mjs); DeepSpeed's
# bench (../shared/bench/ds_fpdt into .carry/ds/bench/) and DeepSpeed's two files into
# .carry/ds/deepspeed/ (git-ignored, never committed), taken from DEEPSPEED: a checkout of
# github.com/deepspeedai/DeepSpeed or a git directory of one (default: keep what .carry/ds/deepspeed/
# holds). The bench's shim stands in for flash-attn 2.7, which DeepSpeed's FPDT layer takes since its
# commit 4542922 (May 2026); older files fail in it. Then all of it as .carry/ds.tar.xz, which the GPU
# call carries with .carry/node.xz. SEQ 'none' builds no program and keeps the bundled run
# (new DeepSpeed files only).
#   DEEPSPEED=/path/to/DeepSpeed test/gpu/ds/build.sh [128K 256K 512K | none]
# HOST_MEM (GiB of pinned host memory the plans may use; default 110: the H200 host has 128 GiB).
set -eu
. test/gpu/carry-build.sh
dest=.carry/ds work=/tmp/fpdt-ds host=${HOST_MEM:-110}
mkdir -p "$dest" "$work"

# DeepSpeed's own files, unmodified, and where they came from
ds_files=(deepspeed/sequence/fpdt_layer.py deepspeed/sequence/layer.py)
if [ -n "${DEEPSPEED:-}" ]; then
  mkdir -p "$dest/deepspeed"
  if [ -f "$DEEPSPEED/${ds_files[0]}" ]; then
    for f in "${ds_files[@]}"; do cp "$DEEPSPEED/$f" "$dest/deepspeed/"; done
    rev=$(git -C "$DEEPSPEED" rev-parse HEAD 2>/dev/null || echo unknown)
  else
    for f in "${ds_files[@]}"; do git --git-dir "$DEEPSPEED" show "HEAD:$f" >"$dest/deepspeed/$(basename "$f")"; done
    rev=$(git --git-dir "$DEEPSPEED" rev-parse HEAD)
  fi
  echo "DeepSpeed $rev ($DEEPSPEED): ${ds_files[*]}" >"$dest/deepspeed/SOURCE.txt"
fi
for f in "${ds_files[@]}"; do
  [ -f "$dest/deepspeed/$(basename "$f")" ] || { echo "no $dest/deepspeed/$(basename "$f"): set DEEPSPEED to a DeepSpeed checkout" >&2; exit 1; }
done

# DeepSpeed's bench, from ../shared beside the main checkout (this may be a worktree of it)
shared=$(git rev-parse --path-format=absolute --git-common-dir)/../../shared
rm -rf "$dest/bench" && cp -r "$shared/bench/ds_fpdt" "$dest/bench"
find "$dest/bench" -name __pycache__ -prune -exec rm -rf {} +

[ $# -gt 0 ] || set -- 128K 256K 512K
built=0
for s in "$@"; do
  [ "$s" = none ] && continue
  built=1
  compile_and_carry "ours-$s" test/gpu/models/ds-attn8b.ts "$dest" "$work" --seq "$s" --chunk 64K \
    --offload on --checkpoint host --stashes host --host-mem "$host"
  compile_and_carry "ours-$s-resident" test/gpu/models/ds-attn8b.ts "$dest" "$work" --seq "$s" --chunk 64K \
    --offload off --checkpoint gpu --host-mem "$host"
done
# `fpdtc run` from the sources the programs were built from
[ $built = 0 ] || { bundle_run_entry "$dest/run-entry.mjs" && git rev-parse HEAD >"$dest/COMMIT"; }

tar -cJf .carry/ds.tar.xz -C .carry ds
du -b .carry/ds.tar.xz .carry/node.xz | awk '{ n += $1; print } END { printf "carried: %.1f MiB of 64\n", n / 2^20 }'
