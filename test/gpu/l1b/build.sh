#!/bin/bash
# Builds, on a machine with nvcc, what test/gpu/l1b/run.sh runs: models/llama1b.ts (Llama-3.2-1B shape,
# head dim 64) compiled at each SEQ:CHUNK[:HOST_GIB[:resident|gpu|stashes]] given (default 64K:16K; offload on, or off
# with `resident`, and the layer checkpoints on the GPU too with `gpu`; offload on with the working stashes on the GPU with `stashes`; HOST_GIB the pinned host memory the plan may use, --host-mem: the one-H200 machine has
# 128 GiB in all) and built, into .carry/l1b-<SEQ>[-c<CHUNK>-resident|-c<CHUNK>-gpu|-stashes]/, plus the bundled `fpdtc run` (.carry/l1b-run-entry.mjs)
# and the Hugging Face anchor (../shared/bench/hf_maxctx.py into .carry/anchors).
#   test/gpu/l1b/build.sh [64K:16K] [512K:64K:110] [64K:64K::resident] ...
set -eu
. test/gpu/carry-build.sh
work=/tmp/fpdt-l1b
mkdir -p "$work" .carry/anchors
for sc in "${@:-64K:16K}"; do
  IFS=: read -r seq chunk host mode <<<"$sc"
  if [ "${mode:-}" = resident ]; then
    compile_and_carry "l1b-$seq-c$chunk-resident" models/llama1b.ts .carry "$work" --seq "$seq" --chunk "$chunk" ${host:+--host-mem "$host"} --offload off
  elif [ "${mode:-}" = gpu ]; then
    compile_and_carry "l1b-$seq-c$chunk-gpu" models/llama1b.ts .carry "$work" --seq "$seq" --chunk "$chunk" ${host:+--host-mem "$host"} --offload off --checkpoint gpu
  elif [ "${mode:-}" = stashes ]; then
    compile_and_carry "l1b-$seq-stashes" models/llama1b.ts .carry "$work" --seq "$seq" --chunk "$chunk" ${host:+--host-mem "$host"} --stashes gpu
  else
    compile_and_carry "l1b-$seq" models/llama1b.ts .carry "$work" --seq "$seq" --chunk "$chunk" ${host:+--host-mem "$host"}
  fi
done
bundle_run_entry .carry/l1b-run-entry.mjs
# ../shared beside the main checkout (this may be a worktree of it)
shared=$(git rev-parse --path-format=absolute --git-common-dir)/../../shared
cp "$shared/bench/hf_maxctx.py" .carry/anchors/
