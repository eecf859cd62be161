#!/bin/bash
# Builds, on a machine with nvcc, what test/gpu/dp/run-dp.sh runs on a GPU host, into .carry/dp:
# gpu-llama at dp 1 x sp 1 (the reference), dp 2 x sp 1 and dp 2 x sp 2, and the bundled
# `fpdtc run`. Run from the repository root: test/gpu/dp/build-cases.sh
set -eu
. test/gpu/carry-build.sh
dest=.carry/dp
mkdir -p "$dest"
build() { # tag flags...
  local tag=$1; shift
  local work=/tmp/fpdt-dp/$tag
  rm -rf "$work"
  npx fpdtc compile test/gpu/models/gpu-llama.ts "$@" --out "$work" >"/tmp/fpdt-dp-$tag.log"
  npx fpdtc build "$work/gpu-llama" --jobs 2 >>"/tmp/fpdt-dp-$tag.log"
  rm -rf "${dest:?}/$tag" && mkdir -p "$dest/$tag"
  cp "$work/gpu-llama/schedule.json" "$work/gpu-llama/report.json" "$work/gpu-llama/graph.json" "$dest/$tag/"
  carry_build "$work/gpu-llama/build" "$dest/$tag/build"
  echo "built $dest/$tag"
}
build dp1 --sp 1 --dp 1
build dp2 --sp 1 --dp 2
build dp2sp2 --sp 2 --dp 2
npx esbuild test/gpu/run-entry.ts --bundle --platform=node --format=esm --outfile="$dest/run-entry.mjs" \
  --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" >/dev/null
# The bundle is started through a second module: runtime/build.ts runs its own command line when
# the main module's path is its import.meta.url, which in a bundle is every module's.
echo "await import('./run-entry.mjs');" > "$dest/fpdtc-run.mjs"
cp test/gpu/dp/check_dp.py test/gpu/dp/make_tokens.py "$dest/"
[ -f .carry/node.xz ] || echo "note: the GPU host also needs .carry/node.xz (a node binary, as for test/gpu/x2)"
echo "bundled $dest/run-entry.mjs"
