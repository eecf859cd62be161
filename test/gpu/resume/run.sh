#!/bin/bash
# Runs on one H200 (no Node there: the carried node): kill_resume.py on a program that
# test/gpu/hf/build-cases.sh put in .carry/hf (default llama-untied-sp1-kept; the argument names
# another case). Logs and kill-resume.json go to $OUT/resume.
set -u
OUT=${OUT:-/tmp/fpdt-out}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT/resume"
[ -x /tmp/node ] || { xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%Y-%m-%dT%H:%MZ; } | tee "$OUT/resume/machine.txt"
python3 test/gpu/resume/kill_resume.py ".carry/hf/${1:-llama-untied-sp1-kept}" /tmp/node .carry/hf/run-entry.mjs "$OUT/resume" \
  --steps "${STEPS:-24}" --rounds "${ROUNDS:-12}" 2>&1 | tee "$OUT/resume/kill-resume.txt"
exit "${PIPESTATUS[0]}"
