#!/bin/bash
# Builds, on a machine with nvcc, what test/gpu/packed/run-on-h200.sh runs: for each case of
# cases.json, the model file (`fpdtc import-hf` from the case's config), compiled with --packed and
# the case's flags and built, into .carry/packed/<case>/ (schedule.json, report.json, graph.json,
# build/<addon>.node), plus the bundled `fpdtc run` (run-entry.mjs) and cases.json.
# Usage: build-cases.sh [case ...]
set -eu
. test/gpu/carry-build.sh
here=test/gpu/packed
dest=.carry/packed
work=/tmp/fpdt-packed
mkdir -p "$dest" "$work"
cp $here/cases.json "$dest/"
seq=$(node -e "console.log(require('./$here/cases.json').seq)")
chunk=$(node -e "console.log(require('./$here/cases.json').chunk)")
build() { # case model sp offload keep stashes
  local name=$1 model=$2 sp=$3 offload=$4 keep=$5 stashes=$6
  mkdir -p "$work/config-$model" "$dest/models"
  node -e "const c=require('./$here/cases.json').llama['$model']; require('fs').writeFileSync('$work/config-$model/config.json', JSON.stringify(c, null, 2))"
  # model files live inside the package (the frontend loads them as ES modules of this package)
  local file=$dest/models/packed-$model.ts
  [ -f "$file" ] || npx fpdtc import-hf "$work/config-$model" --out "$file" >/dev/null
  compile_and_carry "$name" "$file" "$dest" "$work" --seq "$seq" --chunk "$chunk" --sp "$sp" --offload "$offload" \
    --keep-attention "$keep" --stashes "$stashes" --packed
}
node -e "for (const c of require('./$here/cases.json').cases) console.log(c.name, c.model, c.sp, c.offload, c.keep, c.stashes ?? 'auto')" |
while read -r name model sp offload keep stashes; do
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  build "$name" "$model" "$sp" "$offload" "$keep" "$stashes"
done
bundle_run_entry "$dest/run-entry.mjs"
