#!/bin/sh
# Renders the kernels (where Node exists), then runs the attention benchmark on the GPU machine.
#   test/bench/attention.sh [seqs=32768,131072]
set -e
cd "$(dirname "$0")/../.."
if command -v node >/dev/null 2>&1; then npx tsx test/gpu/kernels/render.ts .carry/kernels; fi
PYTHONUNBUFFERED=1 python3 test/bench/attention.py .carry/kernels/llama "${1:-32768,131072}"
