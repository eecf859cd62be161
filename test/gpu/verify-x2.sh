#!/bin/bash
# Runs on a host of two H200s: the HF parity suite, the two-GPU step checks (steps, resume, opthost) and
# the data-parallel checks, from a carried .carry/bundle.tar.xz (hf, x2, dp builds) and .carry/node.xz.
# Every log ends in $OUT/logs.tgz (the device tool returns few files).
set -u; mkdir -p $OUT
tar -xJf .carry/bundle.tar.xz -C .carry && xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
git log -1 --format=%h 2>/dev/null
timeout 200 bash test/gpu/hf/run-on-h200.sh > $OUT/hf.txt 2>&1; echo "hf rc=$?"
tail -25 $OUT/parity.txt
timeout 220 bash test/gpu/x2/run-on-x2.sh steps resume opthost > $OUT/x2.txt 2>&1; echo "x2 rc=$?"
cat $OUT/steps.jsonl $OUT/resume.jsonl 2>/dev/null | cut -c1-400; tail -3 $OUT/opthost.jsonl | cut -c1-300
timeout 120 bash test/gpu/dp/run-dp.sh > $OUT/dp.txt 2>&1; echo "dp rc=$?"
cut -c1-300 $OUT/dp.jsonl
cd $OUT && tar czf /tmp/logs.tgz . && rm -rf $OUT/* && mv /tmp/logs.tgz $OUT/
