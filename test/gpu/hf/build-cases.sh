#!/bin/bash
# Builds, on a machine with nvcc, what test/gpu/hf/run-on-h200.sh runs: for each case of
# cases.json, the model file (`fpdtc import-hf` from the case's config.json for Llama cases;
# test/gpu/models/hf-gptneox.ts for the GPT-NeoX ones), compiled with the case's flags and built,
# into .carry/hf/<case>/ (schedule.json, report.json, graph.json, build/<addon>.node), plus the
# bundled `fpdtc run` (run-entry.mjs) and cases.json. Usage: build-cases.sh [case ...]
set -eu
. test/gpu/carry-build.sh
here=test/gpu/hf
dest=.carry/hf
work=/tmp/fpdt-hf
mkdir -p "$dest" "$work"
cp $here/cases.json "$dest/"
seq=$(node -e "console.log(require('./$here/cases.json').seq)")
chunk=$(node -e "console.log(require('./$here/cases.json').chunk)")
build() { # case model sp offload keep form stashes
  local name=$1 model=$2 sp=$3 offload=$4 keep=$5 form=$6 stashes=$7 file
  if [ "$model" = gptneox ]; then
    file=test/gpu/models/hf-gptneox.ts
  else
    mkdir -p "$work/config-$model"
    node -e "const c=require('./$here/cases.json').llama['$model']; require('fs').writeFileSync('$work/config-$model/config.json', JSON.stringify(c, null, 2))"
    # model files live inside the package (the frontend loads them as ES modules of this package)
    file=$dest/models/hf-$model.ts
    mkdir -p "$dest/models"
    [ -f "$file" ] || npx fpdtc import-hf "$work/config-$model" --out "$file" >/dev/null
  fi
  compile_and_carry "$name" "$file" "$dest" "$work" --seq "$seq" --chunk "$chunk" --sp "$sp" --offload "$offload" \
    --keep-attention "$keep" --keep-form "$form" --stashes "$stashes"
}
node -e "for (const c of require('./$here/cases.json').cases) console.log(c.name, c.model, c.sp, c.offload, c.keep, c.keepForm ?? 'auto', c.stashes ?? 'auto')" |
while read -r name model sp offload keep form stashes; do
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  build "$name" "$model" "$sp" "$offload" "$keep" "$form" "$stashes"
done
bundle_run_entry "$dest/run-entry.mjs"
