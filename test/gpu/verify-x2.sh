#!/bin/bash
# Runs on a host of two H200s, from a carried .carry/bundle.tar.xz (the builds each part needs) and
# .carry/node.xz. PARTS (default "hf x2 dp"): hf = the HF parity suite; x2 = the two-GPU step checks
# (steps, resume, opthost); dp = the data-parallel checks; kernels = check_kernels.py and the
# attention bench (test/bench/attention.py) on the rendered kernels of .carry/kernels (nvcc there).
# HF_CASES: the parity cases to run (default: all of cases.json). Every log ends in $OUT/logs.tgz
# (the device tool returns few files).
set -u; mkdir -p $OUT
parts=" ${PARTS:-hf x2 dp} "
tar -xJf .carry/bundle.tar.xz -C .carry && xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
if [[ $parts == *" kernels "* ]]; then
  export PYTHONUNBUFFERED=1
  timeout 300 python3 test/gpu/kernels/check_kernels.py .carry/kernels $OUT > $OUT/check_kernels.log 2>&1; echo "check_kernels rc=$?"
  grep -E "^FAIL|^==|launchers" $OUT/check_kernels.log | head -40
  timeout ${BENCH_TIMEOUT:-200} python3 test/bench/attention.py .carry/kernels/llama ${BENCH_SEQS:-32768,131072} > $OUT/attention_bench.log 2>&1
  echo "attention bench rc=$?"; grep -E "S=|ours vs" $OUT/attention_bench.log
fi
if [[ $parts == *" hf "* ]]; then
  timeout ${HF_TIMEOUT:-200} bash test/gpu/hf/run-on-h200.sh ${HF_CASES:-} > $OUT/hf.txt 2>&1; echo "hf rc=$?"
  tail -32 $OUT/parity.txt
fi
if [[ $parts == *" x2 "* ]]; then
  timeout 220 bash test/gpu/x2/run-on-x2.sh ${X2_PARTS:-steps resume opthost} > $OUT/x2.txt 2>&1; echo "x2 rc=$?"
  cat $OUT/steps.jsonl $OUT/resume.jsonl $OUT/opthost.jsonl 2>/dev/null | cut -c1-500
fi
if [[ $parts == *" dp "* ]]; then
  timeout 120 bash test/gpu/dp/run-dp.sh > $OUT/dp.txt 2>&1; echo "dp rc=$?"
  cut -c1-300 $OUT/dp.jsonl
fi
cd $OUT && tar czf /tmp/logs.tgz . && rm -rf $OUT/* && mv /tmp/logs.tgz $OUT/
