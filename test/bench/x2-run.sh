#!/bin/bash
# Runs on a host of two H200s (no Node there): the carried node, the programs built here into
# .carry/sp (test/gpu/build-sp-cases.sh) and .carry/fb (test/bench/build-x2-cases.sh), and the anchor
# script in .carry/anchors. Several ranks over NCCL against one rank; the plain NCCL all-to-all rate
# against the all-to-alls inside a step; Llama-3-8B over two GPUs; Llama-3.2-1B on one GPU beside
# the Hugging Face anchor. Logs and JSON lines go to $OUT.
set -u
OUT=${OUT:-/tmp/fpdt-out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nvidia-smi topo -m; date -u +%Y-%m-%dT%H:%MZ; free -g | head -2; } > "$OUT/machine.txt" 2>&1
S=.carry/sp
F=.carry/fb
run() { # tag timeout args...
  local tag=$1 t=$2; shift 2
  echo "== fpdtc run $*" | tee -a "$OUT/run.log"
  timeout "$t" /tmp/node $S/run-entry.mjs "$@" 2>&1 | tee -a "$OUT/run.log" >/dev/null
  echo "rc=${PIPESTATUS[0]}" | tee -a "$OUT/run.log"
}
# 1. NCCL, two processes on two GPUs, against one rank: same seeded init and tokens, two steps
for m in gpu-llama gpu-gpt gpu-llama-gqa12; do
  run "$m-sp1" 90 $S/$m-sp1 --gpus 1 --steps 2 --dump-grads /tmp/$m-sp1-g.safetensors --save /tmp/$m-sp1-w.safetensors
  run "$m-sp2" 90 $S/$m-sp2 --gpus 2 --steps 2 --dump-grads /tmp/$m-sp2-g.safetensors --save /tmp/$m-sp2-w.safetensors
  python3 test/gpu/compare_dumps.py /tmp/$m-sp2-g.safetensors /tmp/$m-sp1-g.safetensors 2e-2 2>&1 | tee -a "$OUT/nccl-grads.jsonl"
  python3 test/gpu/compare_dumps.py /tmp/$m-sp2-w.safetensors /tmp/$m-sp1-w.safetensors 1 2>&1 | tee -a "$OUT/nccl-weights.jsonl"
done
# 2. the plain NCCL all-to-all on the same GPUs (skip with NO_A2A=1)
[ -n "${NO_A2A:-}" ] || timeout 90 python3 test/bench/alltoall.py 2 2>&1 | tail -5
# 3. Llama-3.2-1B at 64K on one GPU
run llama1b-64k 120 $F/llama1b-64k --steps 3
# 4. Llama-3-8B, 64K tokens over two GPUs (SP 2, ZeRO-3, offload, host checkpoints), all-to-alls timed
FPDT_PROFILE_COMM=1 run llama8b-64k-sp2 200 $F/llama8b-64k-sp2 --gpus 2 --steps 2
# 5. the Hugging Face anchor on one GPU (skip with NO_HF=1)
[ -n "${NO_HF:-}" ] || timeout 150 python3 .carry/anchors/hf_maxctx.py 1b 2>&1 | tail -8
