#!/bin/bash
# Runs on one H200 what test/gpu/l1b/build.sh built: llama1b at each carried length (.carry/l1b-<SEQ>),
# STEPS steps (default 3; STEPS_<SEQ>, e.g. STEPS_512K=1, for one length, '-' read as '_'; the last traced with
# --trace, which times every instruction; STEP_TIMEOUT seconds a length, default 200), then the
# Hugging Face anchor (hf_maxctx.py 1b) in the same run unless ANCHOR=0. Needs .carry/bundle.tar.xz
# (the l1b-* folders, l1b-run-entry.mjs, anchors) and .carry/node.xz. Logs to $OUT/logs.tgz.
set -u; mkdir -p $OUT
export PYTHONUNBUFFERED=1
tar -xJf .carry/bundle.tar.xz -C .carry && xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%Y-%m-%dT%H:%MZ; } | tee $OUT/machine.txt
for dir in .carry/l1b-*/; do
  seq=$(basename "$dir"); seq=${seq#l1b-}
  steps_var=STEPS_${seq//-/_}; steps=${!steps_var:-${STEPS:-3}}
  timeout ${STEP_TIMEOUT:-200} /tmp/node .carry/l1b-run-entry.mjs "$dir" --steps $steps \
    --trace $OUT/llama1b-$seq.trace.json > $OUT/l1b-$seq.log 2>&1; echo "l1b $seq rc=$?"
  grep -vE "^\s*$" $OUT/l1b-$seq.log | tail -25
done
if [ "${ANCHOR:-1}" = 1 ]; then
  timeout 200 python3 .carry/anchors/hf_maxctx.py 1b > $OUT/hf-anchor.log 2>&1; echo "anchor rc=$?"
  tail -8 $OUT/hf-anchor.log
fi
gzip $OUT/*.trace.json 2>/dev/null
cd $OUT && tar czf /tmp/logs.tgz --exclude='*.gz' . && find . -maxdepth 1 -type f ! -name '*.gz' -delete && mv /tmp/logs.tgz $OUT/
