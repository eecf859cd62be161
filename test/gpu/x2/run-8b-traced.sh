#!/bin/bash
# Runs on a host of two H200s: Llama-3.1-8B at 128K over two GPUs (SP 2), 3 steps, the last traced
# (--trace), from .carry/bundle.tar.xz (x2/run-entry.mjs and x2/llama8b-128k-sp2) and .carry/node.xz;
# prints the steps and the time per op kind of the traced step. Logs to $OUT.
set -u; mkdir -p $OUT
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
tar -xJf .carry/bundle.tar.xz -C .carry && xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
timeout 420 /tmp/node .carry/x2/run-entry.mjs .carry/x2/llama8b-128k-sp2 --gpus 2 --steps 3 --trace $OUT/llama8b-128k.trace.json > $OUT/llama8b-128k.log 2>&1
echo "rc=$?"; grep -E "step [0-9]|rc=|error" $OUT/llama8b-128k.log | tail -6
python3 - $OUT/llama8b-128k.trace.json <<'PY'
import collections, json, sys
t = json.load(open(sys.argv[1])); agg = collections.defaultdict(float)
for e in t["traceEvents"]:
    if e.get("ph") == "X" and e["pid"] == 0: agg[e["name"]] += e["dur"] / 1e6
print(t.get("otherData")); print({k: round(v, 3) for k, v in sorted(agg.items(), key=lambda kv: -kv[1])[:10]})
PY
gzip $OUT/llama8b-128k.trace.json
