#!/bin/bash
# Runs on the H200 host (no Node there): the carried node and what build-cases.sh put in
# .carry/hf. Parity of fpdtc with Hugging Face transformers (parity.py). Logs go to $OUT.
set -u
OUT=${OUT:-/tmp/fpdt-out}
export OUT PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
mkdir -p "$OUT"
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%Y-%m-%dT%H:%MZ
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; } | tee "$OUT/machine.txt"
python3 test/gpu/hf/parity.py .carry/hf /tmp/node "$@" 2>&1 | tee "$OUT/parity.txt"
