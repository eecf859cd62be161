#!/bin/bash
# Runs on a GPU host (no Node there): the carried node and what build-cases.sh put in .carry/dp.
# Data parallelism against its definition: one step of gpu-llama with dp 2 groups, each on its own
# sequence, equals one GPU running each sequence alone (dp 1, sp 1) with the loss and gradients
# averaged by token count. Same init (saved once, loaded by every run), learning rate 0 so that
# the dumped gradients are the step's. Runs: dp 2 x sp 1 over the local backend (two ranks on one
# GPU) and over NCCL (--gpus 2, two GPUs); dp 2 x sp 2 over the local backend (four ranks) and
# over NCCL with four GPUs when there are four. Then 3 steps at lr 1e-3, dp 2 x sp 1 local against
# NCCL. check_dp.py prints one JSON line per comparison; exit 1 when one fails. Logs go to $OUT.
set -u
OUT=${OUT:-/tmp/fpdt-out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
[ -x /tmp/node ] || { xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node; }
X=.carry/dp
d=/tmp/fpdt-dp-run; rm -rf $d; mkdir -p $d
gpus=$(nvidia-smi -L | wc -l)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%Y-%m-%dT%H:%MZ; } > "$OUT/machine-dp.txt" 2>&1
run() { # log timeout args...
  local log=$1 t=$2; shift 2
  echo "== fpdtc run $*" >> "$log"
  timeout "$t" /tmp/node $X/fpdtc-run.mjs "$@" >> "$log" 2>&1
  local rc=$?
  echo "rc=$rc" >> "$log"
  tail -3 "$log"
}
seq=$(python3 -c "import json; print(json.load(open('$X/dp1/report.json'))['tokens'])")
vocab=$(python3 -c "import json; print(json.load(open('$X/dp1/schedule.json'))['sizes']['V'])")
# two sequences: a.bin, b.bin alone, ab.bin one after the other (window 0 and 1: groups 0 and 1 at step 0)
python3 $X/make_tokens.py $d $seq $vocab
run $d/init.log 60 $X/dp1 --steps 1 --lr 0 --save $d/init.safetensors
run $d/a.log 60 $X/dp1 --steps 1 --lr 0 --weights $d/init.safetensors --tokens $d/a.bin --dump-grads $d/ga.safetensors
run $d/b.log 60 $X/dp1 --steps 1 --lr 0 --weights $d/init.safetensors --tokens $d/b.bin --dump-grads $d/gb.safetensors
ref=($d/a.log $d/ga.safetensors $d/b.log $d/gb.safetensors)
one() { # label dir flags...
  local label=$1 dir=$2; shift 2
  local tag=${label// /-}
  run $d/$tag.log 120 $X/$dir --steps 1 --lr 0 --weights $d/init.safetensors --tokens $d/ab.bin --dump-grads $d/g-$tag.safetensors "$@"
  python3 $X/check_dp.py "$label" "${ref[@]}" $d/$tag.log $d/g-$tag.safetensors 2>&1 | tee -a "$OUT/dp.jsonl"
}
one "dp2 sp1 local" dp2 --ranks-per-gpu 2
[ "$gpus" -ge 2 ] && one "dp2 sp1 nccl" dp2 --gpus 2
one "dp2 sp2 local" dp2sp2 --ranks-per-gpu 4
[ "$gpus" -ge 4 ] && one "dp2 sp2 nccl" dp2sp2 --gpus 4
# several steps: the update reaches the next step on every rank, local and NCCL agree
run $d/steps-local.log 120 $X/dp2 --ranks-per-gpu 2 --steps 3 --lr 1e-3 --weights $d/init.safetensors --tokens $d/ab.bin --save $d/w-local.safetensors
if [ "$gpus" -ge 2 ]; then
  run $d/steps-nccl.log 120 $X/dp2 --gpus 2 --steps 3 --lr 1e-3 --weights $d/init.safetensors --tokens $d/ab.bin --save $d/w-nccl.safetensors
  python3 $X/check_dp.py --steps "dp2 sp1 3 steps, local vs nccl" $d/steps-local.log $d/w-local.safetensors $d/steps-nccl.log $d/w-nccl.safetensors $d/init.safetensors 2>&1 | tee -a "$OUT/dp.jsonl"
fi
cat $d/*.log > "$OUT/dp-runs.log"
! grep -q '"pass": false' "$OUT/dp.jsonl"
