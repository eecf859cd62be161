#!/bin/bash
# Runs on the H200 host (no Node there): carried node + bundled step-entry + built addons in
# .carry/run/<case>/. Accuracy against PyTorch for the test models, then the llama1b steps.
# Logs go to $OUT.
set -u
OUT=${OUT:-/tmp/fpdt-out}
mkdir -p "$OUT"
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
date -u +%Y-%m-%dT%H:%MZ >> "$OUT/machine.txt"
export PYTHONUNBUFFERED=1
/tmp/node .carry/step.mjs .carry/run/gpu-llama /tmp/cases/llama .carry/run/gpu-gpt /tmp/cases/gpt 2>&1 | tee "$OUT/step.log"
python3 test/gpu/torch_ref.py /tmp/cases/llama /tmp/cases/gpt 2>&1 | tee "$OUT/accuracy.jsonl"
echo "accuracy rc=${PIPESTATUS[0]}" | tee -a "$OUT/step.log"
timeout 300 /tmp/node .carry/step.mjs --bench .carry/run/llama1b-64k .carry/run/llama1b-256k 2>&1 | tee "$OUT/bench.log"
