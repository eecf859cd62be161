#!/bin/bash
# Runs on one H200 (no Node there: the carried node and .carry/packed-speed from build-speed.sh):
# the issue's speed check of packed documents. One token file of 512K tokens = 32 documents of 16K
# (starts.txt: every 16384th token). PART:
#   window          llama1b on the 512K window (--documents starts.txt), 2 steps: the second is timed
#   window-resident the same compiled with --offload off (no fetches at all)
#   separate        llama1b at 16K on the same tokens, 33 steps (windows 0..31, then 0 again): steps 2..33 timed
#   separate-packed the same with the packed 16K program (the document-masked kernels, one document a step)
#   report          the figures so far, and the gate: window <= 1.2 x the sum of 32 separate steps
#   all (default)   every part, then the report
# CARRY: the built programs (default .carry/packed-speed). Each part keeps its --metrics in /tmp/<carry's name> (kept while the machine stays warm) and copies it
# to $OUT, so the parts can run as separate commands under a 10-minute limit each.
set -u
OUT=${OUT:-/tmp/fpdt-out}
part=${1:-all}
carry=${CARRY:-.carry/packed-speed}
keep=/tmp/$(basename "$carry")
mkdir -p "$OUT" "$keep"
[ -x /tmp/node ] || { xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node; }
if [ ! -f "$keep/tokens.bin" ]; then
  python3 - "$keep" <<'PY'
import sys, numpy as np
keep = sys.argv[1]
rng = np.random.default_rng(7)
np.asarray(rng.integers(0, 128000, 32 * 16384), dtype="<u4").tofile(f"{keep}/tokens.bin")
open(f"{keep}/starts.txt", "w").write("\n".join(str(16384 * k) for k in range(32)) + "\n")
PY
fi
run() { # name program steps extra...
  local name=$1 prog=$2 steps=$3; shift 3
  rm -f "$keep/$name.jsonl"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/$name.machine.txt"
  /tmp/node "$carry/run-entry.mjs" "$carry/$prog" --tokens "$keep/tokens.bin" --steps "$steps" --metrics "$keep/$name.jsonl" "$@" 2>&1 | tee "$OUT/$name.txt"
  cp "$keep/$name.jsonl" "$OUT/" 2>/dev/null
}
case $part in
  window|all) run window w512k 2 --documents "$keep/starts.txt" ;;
esac
case $part in
  window-resident|all) run window-resident w512k-resident 2 --documents "$keep/starts.txt" ;;
esac
case $part in
  separate|all) run separate s16k 33 ;;
esac
case $part in
  separate-packed|all) run separate-packed s16k-packed 33 --documents "$keep/starts.txt" ;;
esac
python3 - "$keep" <<'PY' | tee "$OUT/speed.txt"
import json, os, sys
keep = sys.argv[1]
def steps(name):
    p = os.path.join(keep, f"{name}.jsonl")
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
s, sp = steps("separate"), steps("separate-packed")
fig = {}
for name, label in (("window", "offloaded"), ("window-resident", "resident, --offload off")):
    w = steps(name)
    if len(w) >= 2:
        fig[name.replace("-", "_") + "_ms"] = w[1]["step_ms"]
        print(f"512K window of 32 documents of 16K ({label}): {w[1]['step_ms'] / 1e3:.2f} s (step 2; step 1 {w[0]['step_ms'] / 1e3:.2f} s), loss {w[1]['loss']:.4f}")
for name, xs in (("separate", s), ("separate_packed", sp)):
    if len(xs) >= 33:
        t = sum(x["step_ms"] for x in xs[1:33])
        fig[f"{name}_ms"] = t
        print(f"32 separate 16K steps ({name.replace('_', ' ')}): {t / 1e3:.2f} s (mean {t / 32e3:.3f} s a step)")
for win in ("window_ms", "window_resident_ms"):
    for name in ("separate_ms", "separate_packed_ms"):
        if win in fig and name in fig:
            r = fig[win] / fig[name]
            fig[f"{win[:-3]}_over_{name[:-3]}"] = r
            print(f"{win[:-3].replace('_', ' ')} / {name[:-3].replace('_', ' ')}: {r:.3f}x ({'PASS' if r <= 1.2 else 'FAIL'} the 1.2x gate)")
json.dump(fig, open(os.path.join(keep, "speed.json"), "w"), indent=1)
PY
cp "$keep/speed.json" "$OUT/" 2>/dev/null
exit 0
