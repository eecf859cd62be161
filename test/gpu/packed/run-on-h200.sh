#!/bin/bash
# Runs on the H200 host (no Node there): the carried node and what build-cases.sh put in
# .carry/packed (CARRY: another build folder, e.g. .carry/packed-sm90). Packed documents against transformers run on each document (packed_parity.py).
# Logs go to $OUT.
set -u
OUT=${OUT:-/tmp/fpdt-out}
export OUT PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
mkdir -p "$OUT"
[ -x /tmp/node ] || { xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%Y-%m-%dT%H:%MZ
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; } | tee "$OUT/machine.txt"
python3 test/gpu/packed/packed_parity.py "${CARRY:-.carry/packed}" /tmp/node "$@" 2>&1 | tee "$OUT/packed-parity.txt"
