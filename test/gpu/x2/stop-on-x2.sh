#!/bin/bash
# SIGTERM/SIGINT in a two-process NCCL world (fpdtc run --gpus 2 --checkpoint-dir), on a host of
# two H200s with what build-cases.sh put in .carry/x2 (tag gpu-llama-sp2 is enough):
#   one   SIGTERM to rank 1 alone (a user's kill): both ranks stop after the same step, the run
#         exits 0, the checkpoint of that step is complete;
#   both  SIGINT to the launcher (Ctrl-C), which passes it on: the same;
#   twice a second SIGTERM to the launcher: the ranks stop at once, the run fails, the last
#         checkpoint stands;
# then each stopped run resumes for two steps and is compared with a run of as many steps
# straight: losses equal as printed, weights within 1e-3 (relative). Logs and stop.jsonl go to $OUT.
# Usage: test/gpu/x2/stop-on-x2.sh   (MODEL=gpu-llama by default)
set -u
OUT=${OUT:-/tmp/fpdt-out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
[ -x /tmp/node ] || { xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node; }
X=.carry/x2
M=${MODEL:-gpu-llama}-sp2
d=/tmp/x2-stop; rm -rf $d; mkdir -p $d
fpdtc() { /tmp/node $X/run-entry.mjs "$@"; }

# waits until the log has printed the loss of step $2 (60 s at most)
wait_step() {
  for _ in $(seq 600); do grep -qE "step $2\s+loss" "$1" && return 0; sleep 0.1; done
  echo "no step $2 in $1"; return 1
}
# the pid of the launcher's child that is rank $2
rank_pid() {
  for p in $(ps -o pid= --ppid "$1"); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "RANK=$2" && { echo $p; return; }
  done
}
# case log: starts a long run in the background, signals it as the case says, waits for it
stopped_run() {
  local case=$1 log=$d/$1.log
  echo "== $case" > $log
  fpdtc $X/$M --gpus 2 --steps 100000 --lr 1e-3 --checkpoint-dir $d/ck-$case --save-every 4 >> $log 2>&1 &
  local L=$!
  case $case in
    one) wait_step $log 6 && kill -TERM "$(rank_pid $L 1)" ;;
    both) wait_step $log 6 && kill -INT $L ;;
    # back to back: the test models' steps take milliseconds
    twice) wait_step $log 6 && kill -TERM $L && kill -TERM $L ;;
  esac
  timeout 120 tail --pid=$L -f /dev/null
  wait $L; echo "rc=$?" >> $log
  tail -3 $log
}
for c in one both twice; do stopped_run $c; done

# resume each stopped run for two steps; the same number of steps straight
for c in one both twice; do
  n=$(sed 's/step-0*//' $d/ck-$c/latest)
  echo $n > $d/$c.step
  fpdtc $X/$M --gpus 2 --steps $((n + 2)) --lr 1e-3 --checkpoint-dir $d/ck-$c --resume latest --save $d/$c-resumed.safetensors > $d/$c-resumed.log 2>&1
  fpdtc $X/$M --gpus 2 --steps $((n + 2)) --lr 1e-3 --save $d/$c-straight.safetensors > $d/$c-straight.log 2>&1
done
cat $d/*.log > "$OUT/stop-runs.log"; ls -R $d >> "$OUT/stop-runs.log"
python3 - $d <<'PY' 2>&1 | tee "$OUT/stop.jsonl"
import json, re, sys
from safetensors.torch import load_file
d = sys.argv[1]
text = lambda f: open(f"{d}/{f}").read()
loss = lambda f: {int(a): b for a, b in re.findall(r"^(?:\[rank \d+\] )?step (\d+)\s+loss (\S+)", text(f), re.M)}
for c in ["one", "both", "twice"]:
    log, n = text(f"{c}.log"), int(text(f"{c}.step"))
    rc = int(re.findall(r"^rc=(\d+)", log, re.M)[-1])
    said = re.findall(r"stopped\s+by (SIG\w+)(?: \(to rank (\d)\))? after step (\d+)", log)
    s, r = loss(f"{c}-straight.log"), loss(f"{c}-resumed.log")
    ws, wr = load_file(f"{d}/{c}-straight.safetensors"), load_file(f"{d}/{c}-resumed.safetensors")
    err = max(float((ws[k] - wr[k]).norm() / ws[k].norm().clamp_min(1e-30)) for k in ws)
    resumed = list(r) == [n + 1, n + 2] and all(r[k] == s[k] for k in r)
    if c == "twice":
        # stopped at once: no stop line, a failed launch, the last periodic checkpoint (every 4 steps)
        ok = rc == 1 and not said and n % 4 == 0
    else:
        want = ("SIGTERM", "1") if c == "one" else ("SIGINT", "0")
        ok = rc == 0 and len(said) == 1 and said[0][:2] == want and int(said[0][2]) == n
    print(json.dumps({"case": c, "rc": rc, "stopped": said, "checkpoint_step": n, "straight": s, "resumed": r, "weights_rel_max": err, "pass": ok and resumed and err < 1e-3}))
PY
