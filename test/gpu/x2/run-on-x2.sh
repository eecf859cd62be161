#!/bin/bash
# Runs on a host of GPUS (default 2) H200s (no Node there): the carried node and what build-cases.sh put
# in .carry/x<GPUS> (built with SP=<GPUS>). Parts (all by default but l12, opthost and resume): steps (the
# test models three ways, check_steps.py), a2a (plain NCCL all-to-all), 8b<K> (Llama-3-8B at K thousand
# tokens over the GPUs: 8b128 and 8b256 with two, 8b256 and 8b512 with four), resume (checkpoint and resume
# over NCCL), trace (--trace); l12 and opthost run on one GPU of the two-GPU build. Logs and JSON lines go to $OUT.
set -u
OUT=${OUT:-/tmp/fpdt-out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
[ -x /tmp/node ] || { xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node; }
n=${GPUS:-2}
X=.carry/x$n
parts=${*:-steps a2a $([ "$n" = 2 ] && echo 8b128 8b256 || echo 8b256 8b512)}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nvidia-smi topo -m; date -u +%Y-%m-%dT%H:%MZ; free -g | head -2; } > "$OUT/machine-x$n.txt" 2>&1
run() { # log timeout args...
  local log=$1 t=$2; shift 2
  echo "== fpdtc run $*" >> "$log"
  timeout "$t" /tmp/node $X/run-entry.mjs "$@" >> "$log" 2>&1
  local rc=$?
  echo "rc=$rc" >> "$log"
  tail -4 "$log"
}
if [[ " $parts " == *" steps "* ]]; then
  for m in ${STEP_MODELS:-gpu-llama gpu-gpt gpu-llama-mqa}; do
    d=/tmp/x2-$m; rm -rf $d; mkdir -p $d
    run $d/init.log 60 $X/$m-sp1 --steps 1 --lr 0 --save $d/init.safetensors
    # clipped at a norm the gradients pass: the update of every rank depends on the global norm
    clip=${CLIP:-0.5}
    run $d/one.log 60 $X/$m-sp1 --steps 3 --lr 1e-3 --clip-grad-norm $clip --dump-grads $d/g1.safetensors --save $d/w1.safetensors
    run $d/local.log 60 $X/$m-sp$n --ranks-per-gpu $n --steps 3 --lr 1e-3 --clip-grad-norm $clip --dump-grads $d/g2.safetensors --save $d/w2.safetensors
    nccl=()
    if [ "$(nvidia-smi -L | wc -l)" -ge "$n" ]; then
      FPDT_PROFILE_COMM=1 run $d/nccl.log 90 $X/$m-sp$n --gpus $n --steps 3 --lr 1e-3 --clip-grad-norm $clip --dump-grads $d/g3.safetensors --save $d/w3.safetensors
      nccl=($d/nccl.log $d/g3.safetensors $d/w3.safetensors)
    fi
    cat $d/*.log >> "$OUT/steps-runs.log"
    python3 $X/check_steps.py --labels "one rank,sp $n local,sp $n nccl" $m $d/init.safetensors $d/one.log $d/g1.safetensors $d/w1.safetensors \
      $d/local.log $d/g2.safetensors $d/w2.safetensors "${nccl[@]}" 2>&1 | tee -a "$OUT/steps.jsonl"
  done
fi
[[ " $parts " == *" a2a "* ]] && timeout 120 python3 test/bench/alltoall.py $n 2>&1 | tee "$OUT/alltoall.txt" | tail -8
# Llama-3-8B over the GPUs, steps and time cut to fit one call (128K: 3 steps; 256K: 2; longer: 1)
for p in $parts; do
  [[ "$p" =~ ^8b([0-9]+)$ ]] || continue
  k=${BASH_REMATCH[1]}
  case $k in 128) t=420 steps=3 ;; 256) t=560 steps=2 ;; *) t=580 steps=1 ;; esac
  FPDT_PROFILE_COMM=1 FPDTC_DEBUG=1 run "$OUT/llama8b-${k}k.log" $t $X/llama8b-${k}k-sp$n --gpus $n --steps $steps
done
# resume (over NCCL): 4 steps straight with a checkpoint every 2 against 2 steps + resume + 2
# steps: each rank writes its moments, rank 0 the gathered weights; losses and weights compared
if [[ " $parts " == *" resume "* ]]; then
  d=/tmp/x2-resume; rm -rf $d; mkdir -p $d
  m=${RESUME_MODEL:-gpu-llama}
  run $d/straight.log 120 $X/$m-sp$n --gpus $n --steps 4 --lr 1e-3 --checkpoint-dir $d/ck --save-every 2 --save $d/straight.safetensors
  run $d/resumed.log 120 $X/$m-sp$n --gpus $n --steps 4 --lr 1e-3 --resume $d/ck/step-00000002 --save $d/resumed.safetensors
  run $d/again.log 120 $X/$m-sp$n --gpus $n --steps 4 --lr 1e-3 --checkpoint-dir $d/ck --resume latest
  cat $d/*.log >> "$OUT/resume-runs.log"; ls -R $d/ck >> "$OUT/resume-runs.log"
  python3 - $d <<'PY' 2>&1 | tee -a "$OUT/resume.jsonl"
import json, re, sys
from safetensors.torch import load_file
d = sys.argv[1]
# the launcher prefixes each rank's lines with [rank N]
loss = lambda f: {int(a): b for a, b in re.findall(r"^(?:\[rank \d+\] )?step (\d+)\s+loss (\S+)", open(f).read(), re.M)}
s, r, a = loss(f"{d}/straight.log"), loss(f"{d}/resumed.log"), loss(f"{d}/again.log")
ws, wr = load_file(f"{d}/straight.safetensors"), load_file(f"{d}/resumed.safetensors")
err = max(float((ws[n] - wr[n]).norm() / ws[n].norm().clamp_min(1e-30)) for n in ws)
ok = bool(s) and all(r.get(k) == s[k] for k in (3, 4)) and list(r) == [3, 4] and a == {}
print(json.dumps({"straight": s, "resumed": r, "resume_latest_after_end": a, "weights_rel_max": err, "pass": ok and err < 1e-3}))
PY
fi
# trace: the measured timeline of a step (--trace) on one rank and a local world of two, and on
# Llama-3-8B at 128K over two GPUs (TRACE_8B=1); traces go to $OUT gzipped, a summary to trace.txt
if [[ " $parts " == *" trace "* ]]; then
  d=/tmp/x2-trace; rm -rf $d; mkdir -p $d
  run $d/t1.log 60 $X/gpu-llama-sp1 --steps 3 --trace $d/gpu-llama-sp1.trace.json
  run $d/t2.log 60 $X/gpu-llama-sp2 --ranks-per-gpu 2 --steps 3 --trace $d/gpu-llama-sp2.trace.json
  [ -n "${TRACE_8B:-}" ] && run $d/t8b.log 220 $X/llama8b-128k-sp2 --gpus 2 --steps 2 --trace $d/llama8b-128k.trace.json
  cat $d/*.log >> "$OUT/trace-runs.log"
  for f in $d/*.trace.json; do
    python3 -c "import json,sys; t=json.load(open(sys.argv[1])); x=[e for e in t['traceEvents'] if e.get('ph')=='X']; print(sys.argv[1], len(x), {k: v for k, v in t.get('otherData', {}).items()})" $f >> "$OUT/trace.txt" 2>&1
    gzip -c $f > "$OUT/$(basename $f).gz"
  done
  cat "$OUT/trace.txt"
fi
# l12 (one GPU): Llama-3-8B's layer at 12 layers, past 2^31 parameter elements on one rank, 3 steps
if [[ " $parts " == *" l12 "* ]]; then
  FPDTC_DEBUG=1 run "$OUT/l12.log" 300 $X/gpu-llama8b-l12 --steps 3
fi
# opthost (one GPU): AdamW states in pinned host memory against on the GPU, one rank and a local world
if [[ " $parts " == *" opthost "* ]]; then
  d=/tmp/oh; rm -rf $d; mkdir -p $d
  run $d/init.log 60 $X/gpu-llama-sp1 --steps 1 --lr 0 --save $d/init.safetensors
  run $d/gpu.log 60 $X/gpu-llama-sp1 --steps 3 --lr 1e-3 --dump-grads $d/g1.safetensors --save $d/w1.safetensors
  run $d/host.log 60 $X/gpu-llama-sp1-opthost --steps 3 --lr 1e-3 --dump-grads $d/g2.safetensors --save $d/w2.safetensors
  run $d/host2.log 60 $X/gpu-llama-sp2-opthost --ranks-per-gpu 2 --steps 3 --lr 1e-3 --dump-grads $d/g3.safetensors --save $d/w3.safetensors
  cat $d/*.log >> "$OUT/opthost-runs.log"
  python3 $X/check_steps.py --labels "optimizer gpu,optimizer host,optimizer host sp 2 local" gpu-llama $d/init.safetensors \
    $d/gpu.log $d/g1.safetensors $d/w1.safetensors $d/host.log $d/g2.safetensors $d/w2.safetensors \
    $d/host2.log $d/g3.safetensors $d/w3.safetensors 2>&1 | tee -a "$OUT/opthost.jsonl"
fi
