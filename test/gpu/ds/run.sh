#!/bin/bash
# Runs on one H200 what test/gpu/ds/build.sh built: our Llama-3-8B attention layer offloaded and
# resident at each carried length (.carry/ds/ours-<SEQ>[-resident]), STEPS_<SEQ> (else STEPS) steps each
# (default 6 at 128K, 3 at 256K, 2 longer: report.py compares the median of the steps after the first; the
# last is traced with --trace), then DeepSpeed's own FPDT layer (.carry/ds/bench/bench_fpdt.py with
# DeepSpeed's two files copied into its shim) in the same run, one program at a time; then
# test/gpu/ds/report.py writes the table ($OUT/ds-vs-ours.md, .json). Every run is cut to what is left
# of DEADLINE seconds (default 540), keeping DS_RESERVE (default 200) for DeepSpeed's bench.
# Needs .carry/ds.tar.xz and .carry/node.xz. Logs, metrics and traces in $OUT/logs.tgz.
set -u; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
deadline=${DEADLINE:-540} reserve=${DS_RESERVE:-200} logs=$OUT/logs
left() { echo $((deadline - SECONDS)); }
mkdir -p "$logs"
tar -xJf .carry/ds.tar.xz -C .carry && xz -dc .carry/node.xz >/tmp/node && chmod +x /tmp/node || exit 1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; free -g | sed -n 2p
  date -u +%Y-%m-%dT%H:%MZ; echo "programs from $(cat .carry/ds/COMMIT)"; cat .carry/ds/deepspeed/SOURCE.txt; } | tee "$logs/machine.txt"

# ours: offloaded and resident at each length, shortest first (a run gets at most CAP_<SEQ> seconds)
for seq in ${SEQS:-128K 256K 512K}; do
  for variant in "" -resident; do
    name=ours-$seq$variant dir=.carry/ds/ours-$seq$variant
    [ -d "$dir" ] || continue
    cap_var=CAP_$seq; cap=${!cap_var:-$([ "$seq" = 512K ] && echo 150 || echo 75)}
    t=$(($(left) - reserve)); [ "$t" -gt "$cap" ] && t=$cap
    if [ "$t" -lt 20 ]; then echo "$name: skipped, ${t}s left before DeepSpeed's share"; continue; fi
    steps_var=STEPS_$seq; steps=${!steps_var:-${STEPS:-$(case $seq in 128K) echo 6 ;; 256K) echo 3 ;; *) echo 2 ;; esac)}}
    timeout "$t" /tmp/node .carry/ds/run-entry.mjs "$dir" --steps "$steps" --trace "$logs/$name.trace.json" \
      --metrics "$logs/$name.metrics.jsonl" >"$logs/$name.log" 2>&1
    echo "$name rc=$? at ${SECONDS}s"; grep -E "^step |rror" "$logs/$name.log" | tail -4
  done
done

# DeepSpeed's layer, unmodified, beside ours
bench=.carry/ds/bench
cp .carry/ds/deepspeed/fpdt_layer.py .carry/ds/deepspeed/layer.py "$bench/shim/deepspeed/sequence/"
t=$(($(left) - 15))
if [ "$t" -ge 30 ]; then
  OUT=$logs timeout "$t" python3 "$bench/bench_fpdt.py" >"$logs/ds_fpdt.log" 2>&1
  echo "DeepSpeed bench rc=$? at ${SECONDS}s"; grep -vE "^\s*$" "$logs/ds_fpdt.log" | tail -8
else
  echo "DeepSpeed bench: skipped, ${t}s left"
fi

python3 test/gpu/ds/report.py "$logs" --json "$OUT/ds-vs-ours.json" | tee "$OUT/ds-vs-ours.md"
gzip "$logs"/*.trace.json 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$OUT" logs && rm -rf "$logs"
