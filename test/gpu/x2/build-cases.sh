#!/bin/bash
# Builds, on a machine with nvcc, what test/gpu/x2/run-on-x2.sh runs on SP (default 2) H200s of one host,
# into .carry/x<SP>: the test models at SP 1 and SP <SP> (replicated kv heads where SP passes their kv
# heads), Llama-3-8B over the GPUs (SP 2: 128K and 256K tokens; SP 4: 256K and 512K, the lengths whose
# step fits a 10-minute call), and the bundled `fpdtc run`. Usage: [SP=4] build-cases.sh [tag ...]
set -eu
. test/gpu/carry-build.sh
sp=${SP:-2}
dest=.carry/x$sp
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
  build $m-sp$sp test/gpu/models/$m.ts --sp $sp
done
if [ "$sp" = 2 ]; then
  build gpu-llama-sp1-opthost test/gpu/models/gpu-llama.ts --sp 1 --optimizer host
  build gpu-llama-sp2-opthost test/gpu/models/gpu-llama.ts --sp 2 --optimizer host
  build gpu-llama8b-l12 test/gpu/models/gpu-llama8b-l12.ts
  build llama8b-128k-sp2 llama8b --seq 128K --sp 2 --host-mem 110
  build llama8b-256k-sp2 llama8b --seq 256K --sp 2 --host-mem 110
else
  build llama8b-256k-sp$sp llama8b --seq 256K --sp $sp --host-mem 110
  build llama8b-512k-sp$sp llama8b --seq 512K --sp $sp --host-mem 110
fi
npx esbuild test/gpu/run-entry.ts --bundle --platform=node --format=esm --outfile="$dest/run-entry.mjs" \
  --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" >/dev/null
cp test/gpu/compare_dumps.py test/gpu/x2/check_steps.py "$dest/"
echo "bundled $dest/run-entry.mjs"
