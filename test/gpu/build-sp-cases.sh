#!/bin/bash
# Builds, on a machine with nvcc, the programs test/gpu/run-sp-on-h200.sh runs: each test model at
# each SP degree, into .carry/sp/<model>-sp<P>/ (schedule.json, report.json, build/<addon>.node),
# and bundles test/gpu/sp-entry.ts into .carry/sp/sp-entry.mjs.
set -eu
dest=.carry/sp
mkdir -p "$dest"
build() { # model sp
  local name; name=$(basename "$1" .ts)
  local work=/tmp/fpdt-sp/$name-sp$2 case=$dest/$name-sp$2
  npx fpdtc compile "$1" --sp "$2" --out "$work" >/dev/null
  npx fpdtc build "$work/$name" --jobs 2 >/dev/null
  mkdir -p "$case/build"
  cp "$work/$name/schedule.json" "$work/$name/report.json" "$case/"
  cp "$(find "$work/$name/build" -name '*.node' | head -1)" "$case/build/"
  echo "built $case"
}
[ "${1:-}" = --bundle-only ] || for sp in 1 2 4; do build test/gpu/models/gpu-llama.ts $sp & build test/gpu/models/gpu-gpt.ts $sp; wait; done
[ "${1:-}" = --bundle-only ] || for sp in 1 2 3 4; do build test/gpu/models/gpu-llama-gqa12.ts $sp; done
npx esbuild test/gpu/sp-entry.ts --bundle --platform=node --format=esm --outfile="$dest/sp-entry.mjs" \
  --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" >/dev/null
npx esbuild test/gpu/run-entry.ts --bundle --platform=node --format=esm --outfile="$dest/run-entry.mjs" \
  --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" >/dev/null
