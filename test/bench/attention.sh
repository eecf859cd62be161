#!/bin/sh
# Renders the kernels (where Node exists), then runs the attention benchmark on the GPU machine.
#   test/bench/attention.sh [seqs=32768,131072]
#   SPEC=gpt HEADS=32/8 test/bench/attention.sh   (head dim 64 kernels, 32 q heads over 8 kv heads)
set -e
cd "$(dirname "$0")/../.."
if command -v node >/dev/null 2>&1; then npx tsx test/gpu/kernels/render.ts .carry/kernels; fi
PYTHONUNBUFFERED=1 python3 test/bench/attention.py ".carry/kernels/${SPEC:-llama}" "${1:-32768,131072}" "${HEADS:-32/32}"
