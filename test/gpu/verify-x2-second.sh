#!/bin/bash
# Runs on a host of two H200s after verify-x2.sh: Llama-3-8B at 128K over two GPUs (3 steps), the
# NCCL checkpoint/resume check and the measured trace (--trace) of a small model and of the 8B step.
# Needs .carry/bundle.tar.xz with x2 builds (gpu-llama sp1/sp2, llama8b-128k-sp2) and .carry/node.xz.
set -u; mkdir -p $OUT
tar -xJf .carry/bundle.tar.xz -C .carry && xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
timeout 300 bash test/gpu/x2/run-on-x2.sh 8b128 > $OUT/x2-8b.txt 2>&1; echo "8b128 rc=$?"
grep -E "step [0-9]|all-to-all|rc=" $OUT/llama8b-128k.log | tail -8
timeout 270 env TRACE_8B=1 bash test/gpu/x2/run-on-x2.sh resume trace > $OUT/x2-rt.txt 2>&1; echo "resume/trace rc=$?"
cut -c1-400 $OUT/resume.jsonl; cat $OUT/trace.txt; grep -E "step [0-9]|rc=" $OUT/trace-runs.log | tail -12
cd $OUT && tar czf /tmp/logs.tgz --exclude='*.gz' . && find . -maxdepth 1 -type f ! -name '*.gz' -delete && mv /tmp/logs.tgz $OUT/
