#!/bin/bash
# Runs on one H200: Llama-3.2-1B (models/llama1b) at 64K tokens, chunk 16K, offload on, 3 steps with
# the last one traced (--trace), beside the Hugging Face anchor (../shared/bench/hf_maxctx.py,
# carried in .carry/anchors) in the same run, and the sm90 attention prototype's full check.
# Needs .carry/bundle.tar.xz (x2/run-entry.mjs, l1b: the compiled and built llama1b, anchors) and
# .carry/node.xz. Logs to $OUT/logs.tgz.
set -u; mkdir -p $OUT
export PYTHONUNBUFFERED=1
tar -xJf .carry/bundle.tar.xz -C .carry && xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%Y-%m-%dT%H:%MZ; } > $OUT/machine.txt
timeout 150 /tmp/node .carry/x2/run-entry.mjs .carry/l1b --steps 3 --trace $OUT/llama1b-64k.trace.json > $OUT/l1b.log 2>&1; echo "l1b rc=$?"
cat $OUT/l1b.log
timeout 200 python3 .carry/anchors/hf_maxctx.py 1b > $OUT/hf-anchor.log 2>&1; echo "anchor rc=$?"
tail -8 $OUT/hf-anchor.log
timeout 150 python3 test/gpu/kernels/sm90/check.py > $OUT/sm90-check-full.log 2>&1; echo "sm90 full check rc=$?"
grep -c " ok$" $OUT/sm90-check-full.log; tail -4 $OUT/sm90-check-full.log
gzip $OUT/llama1b-64k.trace.json
cd $OUT && tar czf /tmp/logs.tgz --exclude='*.gz' . && find . -maxdepth 1 -type f ! -name '*.gz' -delete && mv /tmp/logs.tgz $OUT/
