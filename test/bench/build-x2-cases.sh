#!/bin/bash
# Builds, on a machine with nvcc, the programs test/bench/x2-run.sh runs from .carry/fb: Llama-3-8B
# at 64K tokens over two GPUs and Llama-3.2-1B at 64K on one, plus the SP 1 / SP 2 test models in
# .carry/sp (test/gpu/build-sp-cases.sh), and copies the anchor script beside them.
set -eu
build() { # tag model flags...
  local tag=$1 model=$2; shift 2
  local work=/tmp/fpdt-x2/$tag case=.carry/fb/$tag
  npx fpdtc compile "$model" "$@" --out "$work" >/dev/null
  npx fpdtc build "$work/$model" --jobs 2 >/dev/null
  rm -rf "$case" && mkdir -p "$case/build"
  cp "$work/$model/schedule.json" "$work/$model/report.json" "$case/"
  cp "$(find "$work/$model/build" -name '*.node' | head -1)" "$case/build/"
  echo "built $case"
}
build llama8b-64k-sp2 llama8b --seq 64K --sp 2 --host-mem 110
build llama1b-64k llama1b --seq 64K --chunk 64K --offload off
bash test/gpu/build-sp-cases.sh
mkdir -p .carry/anchors && cp ../shared/bench/hf_maxctx.py .carry/anchors/
