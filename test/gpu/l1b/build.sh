#!/bin/bash
# Builds, on a machine with nvcc, what test/gpu/l1b/run.sh runs: models/llama1b.ts (Llama-3.2-1B shape,
# head dim 64) compiled at each SEQ:CHUNK[:HOST_GIB] given (default 64K:16K; offload on; HOST_GIB the
# pinned host memory the plan may use, --host-mem: the one-H200 machine has 128 GiB in all) and built,
# into .carry/l1b-<SEQ>/, plus the bundled `fpdtc run` (.carry/l1b-run-entry.mjs)
# and the Hugging Face anchor (../shared/bench/hf_maxctx.py into .carry/anchors).
#   test/gpu/l1b/build.sh [64K:16K] [512K:64K:110] ...
set -eu
. test/gpu/carry-build.sh
work=/tmp/fpdt-l1b
mkdir -p "$work" .carry/anchors
for sc in "${@:-64K:16K}"; do
  IFS=: read -r seq chunk host <<<"$sc"
  out=$work/out-$seq
  rm -rf "$out"
  npx fpdtc compile models/llama1b.ts --seq "$seq" --chunk "$chunk" ${host:+--host-mem "$host"} --out "$out" \
    >"$work/$seq.compile.log"
  dir=$(dirname "$(ls "$out"/*/schedule.json)")
  npx fpdtc build "$dir" --jobs 2 >"$work/$seq.build.log"
  dest=.carry/l1b-$seq
  rm -rf "${dest:?}"; mkdir -p "$dest"
  cp "$dir/schedule.json" "$dir/report.json" "$dir/graph.json" "$dest/"
  carry_build "$dir/build" "$dest/build"
  echo "built $dest"
done
npx esbuild test/gpu/run-entry.ts --bundle --platform=node --format=esm --outfile=.carry/l1b-run-entry.mjs \
  --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" >/dev/null
# ../shared beside the main checkout (this may be a worktree of it)
shared=$(git rev-parse --path-format=absolute --git-common-dir)/../../shared
cp "$shared/bench/hf_maxctx.py" .carry/anchors/
echo "bundled .carry/l1b-run-entry.mjs"
