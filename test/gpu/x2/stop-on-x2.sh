#!/bin/bash
# SIGTERM/SIGINT in a two-process NCCL world (fpdtc run --gpus 2 --checkpoint-dir), on a host of
# two H200s with what build-cases.sh put in .carry/x2 (tag gpu-llama-sp2 is enough):
#   one   SIGTERM to rank 1 alone (a user's kill): both ranks stop after the same step, the run
#         exits 0, the checkpoint of that step is complete;
#   both  SIGINT to the launcher (Ctrl-C), which passes it on: the same;
#   twice a second SIGTERM to the launcher: the ranks stop at once, the run fails, the last
#         checkpoint stands;
# then each stopped run resumes for two steps and is compared with a run of as many steps
# straight (twice: two straight runs differ by the float atomics' noise): losses within the printed
# digit plus twice the straight runs' difference, weights within twice theirs (at least 1e-3,
# relative). Logs and stop.jsonl go to $OUT.
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
  echo "no step $2 in $1" | tee -a "$1"; return 1
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
  # node itself in the background (not the fpdtc function: $! would be a subshell, which neither
  # forwards signals nor is the launcher whose children are the ranks)
  /tmp/node $X/run-entry.mjs $X/$M --gpus 2 --steps 100000 --lr 1e-3 --checkpoint-dir $d/ck-$case --save-every 4 >> $log 2>&1 &
  local L=$!
  case $case in
    one) wait_step $log 6 && { r1=$(rank_pid $L 1); echo "rank 1: pid ${r1:-none}" >> $log; [ -n "$r1" ] && kill -TERM "$r1"; } ;;
    both) wait_step $log 6 && kill -INT $L ;;
    # 5 ms apart (the test models' steps take milliseconds; two signals sent back to back reach the
    # launcher as one, the kernel keeps one pending signal of a kind)
    twice) wait_step $log 6 && kill -TERM $L && sleep 0.005 && kill -TERM $L ;;
  esac
  # a run that does not stop in 60 s is killed with its ranks (and the case fails: no stop line)
  if ! timeout 60 tail --pid=$L -f /dev/null; then
    echo "did not stop in 60 s: killed" >> $log
    pkill -9 -P $L; kill -9 $L
  fi
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
  # twice straight: the float atomics and NCCL reductions make two straight runs differ too
  fpdtc $X/$M --gpus 2 --steps $((n + 2)) --lr 1e-3 --save $d/$c-straight2.safetensors > $d/$c-straight2.log 2>&1
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
    s, s2, r = loss(f"{c}-straight.log"), loss(f"{c}-straight2.log"), loss(f"{c}-resumed.log")
    ws, w2, wr = (load_file(f"{d}/{c}-{x}.safetensors") for x in ("straight", "straight2", "resumed"))
    rel = lambda a, b: max(float((a[k] - b[k]).norm() / a[k].norm().clamp_min(1e-30)) for k in a)  # noqa: E731
    err, noise = rel(ws, wr), rel(ws, w2)
    # the resumed run as close to the straight one as two straight runs are to each other: losses
    # within the printed digit plus twice their largest difference, weights within twice theirs (>= 1e-3)
    lnoise = max(abs(float(s[k]) - float(s2[k])) for k in s)
    lgate, wgate = 1e-4 + 2 * lnoise + 1e-9, max(1e-3, 2 * noise)
    resumed = list(r) == [n + 1, n + 2] and all(abs(float(r[k]) - float(s[k])) <= lgate for k in r)
    if c == "twice":
        # stopped at once: no stop line, a failed launch, the last periodic checkpoint (every 4 steps)
        ok = rc == 1 and not said and n % 4 == 0
    else:
        want = ("SIGTERM", "1") if c == "one" else ("SIGINT", "0")
        ok = rc == 0 and len(said) == 1 and said[0][:2] == want and int(said[0][2]) == n
    print(json.dumps({"case": c, "rc": rc, "stopped": said, "checkpoint_step": n, "straight": s, "straight2": s2, "resumed": r,
                      "loss_gate": lgate, "weights_rel_max": err, "weights_straight_vs_straight2": noise, "weights_gate": wgate,
                      "pass": ok and resumed and err <= wgate}))
PY
