#!/bin/bash
# Runs on the H200 host (no Node there): `fpdtc run --accumulate 2` against transformers on the
# batch of both windows (check_accumulate.py), with the carried node and what
# test/gpu/hf/build-cases.sh put in .carry/hf. Logs go to $OUT.
#   built here first:  test/gpu/hf/build-cases.sh llama-untied-sp1-recomputed llama-tied-sp2-gpu
#   then on the GPU:   bash test/gpu/accumulate/run.sh [case ...]
set -u
OUT=${OUT:-/tmp/fpdt-out}
export OUT PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
mkdir -p "$OUT"
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%Y-%m-%dT%H:%MZ
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; } | tee "$OUT/machine.txt"
python3 test/gpu/accumulate/check_accumulate.py .carry/hf /tmp/node "$@" 2>&1 | tee "$OUT/accumulate.txt"
exit "${PIPESTATUS[0]}"
