#!/bin/bash
# Runs on the H200 host (no Node there): carried node + the programs test/gpu/build-sp-cases.sh
# built into .carry/sp. Ranks against one rank for each test model (local backend, SP 2/3/4), the
# one-rank NCCL world, SP 1 against float32 PyTorch, and `fpdtc run` with --ranks-per-gpu and
# --gpus. Logs go to $OUT.
set -u
OUT=${OUT:-/tmp/fpdt-out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
date -u +%Y-%m-%dT%H:%MZ >> "$OUT/machine.txt"
S=.carry/sp
sp() { timeout 90 /tmp/node $S/sp-entry.mjs /tmp/cases "$@" 2>&1 | tee -a "$OUT/sp.log"; echo "rc=${PIPESTATUS[0]}" | tee -a "$OUT/sp.log"; }
sp $S/gpu-llama-sp1 $S/gpu-llama-sp2 $S/gpu-llama-sp4
sp $S/gpu-gpt-sp1 $S/gpu-gpt-sp2 $S/gpu-gpt-sp4
sp $S/gpu-llama-gqa12-sp1 $S/gpu-llama-gqa12-sp2 $S/gpu-llama-gqa12-sp3 $S/gpu-llama-gqa12-sp4
timeout 60 python3 test/gpu/torch_ref.py /tmp/cases/*-sp1 2>&1 | tee "$OUT/torch.jsonl"
cli() { echo "== fpdtc run $*" | tee -a "$OUT/cli.log"; timeout 60 /tmp/node $S/run-entry.mjs "$@" 2>&1 | tee -a "$OUT/cli.log"; echo "rc=${PIPESTATUS[0]}" | tee -a "$OUT/cli.log"; }
cli $S/gpu-llama-sp4 --ranks-per-gpu 4 --steps 3
cli $S/gpu-llama-sp1 --gpus 1 --steps 3
cli $S/gpu-llama-sp2 --steps 1
