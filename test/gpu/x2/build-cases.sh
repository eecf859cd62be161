#!/bin/bash
# Builds, on a machine with nvcc, what test/gpu/x2/run-on-x2.sh runs on two H200s, into .carry/x2:
# the test models at SP 1 and SP 2 (one of them with a replicated kv head), Llama-3-8B over two
# GPUs at 128K and 256K tokens, and the bundled `fpdtc run`. Usage: build-cases.sh [tag ...]
set -eu
. test/gpu/carry-build.sh
dest=.carry/x2
mkdir -p "$dest"
build() { # tag model flags...
  local tag=$1 model=$2; shift 2
  if [ ${#want[@]} -gt 0 ] && [[ " ${want[*]} " != *" $tag "* ]]; then return; fi
  local work=/tmp/fpdt-x2/$tag name; name=$(basename "$model" .ts)
  rm -rf "$work"
  npx fpdtc compile "$model" "$@" --out "$work" >"/tmp/fpdt-x2-$tag.log"
  npx fpdtc build "$work/$name" --jobs 2 >>"/tmp/fpdt-x2-$tag.log"
  rm -rf "${dest:?}/$tag" && mkdir -p "$dest/$tag"
  cp "$work/$name/schedule.json" "$work/$name/report.json" "$work/$name/graph.json" "$dest/$tag/"
  carry_build "$work/$name/build" "$dest/$tag/build"
  echo "built $dest/$tag"
}
want=("$@")
for m in gpu-llama gpu-gpt gpu-llama-mqa; do
  build $m-sp1 test/gpu/models/$m.ts --sp 1
  build $m-sp2 test/gpu/models/$m.ts --sp 2
done
build gpu-llama-sp1-opthost test/gpu/models/gpu-llama.ts --sp 1 --optimizer host
build gpu-llama-sp2-opthost test/gpu/models/gpu-llama.ts --sp 2 --optimizer host
build gpu-llama8b-l12 test/gpu/models/gpu-llama8b-l12.ts
build llama8b-128k-sp2 llama8b --seq 128K --sp 2 --host-mem 110
build llama8b-128k-sp2 llama8b --seq 128K --sp 2 --host-mem 110
build llama8b-256k-sp2 llama8b --seq 256K --sp 2 --host-mem 110
npx esbuild test/gpu/run-entry.ts --bundle --platform=node --format=esm --outfile="$dest/run-entry.mjs" \
  --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" >/dev/null
cp test/gpu/compare_dumps.py test/gpu/x2/check_steps.py "$dest/"
echo "bundled $dest/run-entry.mjs"
