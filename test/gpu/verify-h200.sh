#!/bin/bash
# Runs on one H200 the suites that check and measure main's programs, in one call of the lent machine,
# from what test/gpu/build-h200.sh packed into .carry/ (and .carry/node.xz). PARTS, in this order (default
# "kernels bench hf packed l1b64"):
#   kernels  check_kernels.py and check_packed.py on the rendered kernels
#   bench    test/bench/attention.py at head dims 128 and 64, paired against cuDNN (BENCH_SPECS, BENCH_SEQS; BENCH_KDIR
#            and VARIANTS: a folder of kernels with bench copies beside them, and the copies to pair)
#   hf       the HF parity suite, each program twice (test/gpu/hf/run-on-h200.sh)
#   packed   packed-document parity (test/gpu/packed/run-on-h200.sh)
#   l1b64    llama1b at 64K, 4 steps, beside the HF anchor
#   l1b512   llama1b at 512K, one step
#   ds       our Llama-3-8B attention layer beside DeepSpeed's (test/gpu/ds/run.sh, DS_SEQS)
#   fwdblocks  test/bench/fwd_blocks.py at head dim 128, 128K: where the forward decomposition's time goes
#   clocks   test/bench/block_clocks.py: head-dim-128 backward blocks for seconds each beside the SM clock and
#            power, and the bench copy CLOCKS_VARIANT (default _heads) beside the default
#   band     test/bench/band_sweep.py at head dims 128 and 64: the programs' full 64K blocks (in bands) against
#            the heads-fastest copies (_heads) and the backward's band size swept (_band)
#   calib    test/bench/calibrate.py on the rendered kernels: $OUT's logs/h200.json, to commit as
#            compiler/schedule/calibration/h200.json
# A part starts only when its usual length fits before DEADLINE seconds (default 570) and is cut at
# that; what it printed and its logs are kept either way. Everything ends in $OUT/logs.tgz (the device
# tool returns few files), the figures also on stdout.
set -u; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
parts=${PARTS:-kernels bench hf packed l1b64} deadline=${DEADLINE:-570}
logs=$OUT/logs; mkdir -p "$logs" /tmp/fpdt_build_cache
for t in bundle l1b ds; do [ -f .carry/$t.tar.xz ] && tar -xJf .carry/$t.tar.xz -C .carry; done
# kernel objects built where the bundle was (keyed by nvcc's version: a different nvcc builds here)
[ -f .carry/bcache.tar.xz ] && tar -xJf .carry/bcache.tar.xz -C /tmp/fpdt_build_cache
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%FT%TZ
  echo "programs from $(cat .carry/COMMIT 2>/dev/null || echo unknown)"; } | tee "$logs/machine.txt"

# usual seconds of each part on one H200 (2026-12-01)
declare -A need=([kernels]=30 [bench]=200 [hf]=170 [packed]=50 [l1b64]=90 [l1b512]=220 [ds]=240 [calib]=30 [fwdblocks]=60 [clocks]=90 [band]=100)
fits() { # part: prints the seconds it may take, or fails when it does not fit
  local left=$((deadline - SECONDS))
  if [ "$left" -lt "${need[$1]}" ]; then echo "$1: skipped, ${left} s left, it usually takes ${need[$1]} s" >&2; return 1; fi
  echo "$left"
}
l1b_run() { # folder steps tag seconds
  timeout "$4" /tmp/node .carry/l1b-run-entry.mjs ".carry/$1" --steps "$2" --trace "$logs/llama1b-$3.trace.json" \
    > "$logs/l1b-$3.log" 2>&1
  echo "l1b $3 rc=$?"; grep -E "^step|peak|rror" "$logs/l1b-$3.log" | tail -6 | cut -c1-220
}
for part in $parts; do
  t=$(fits "$part") || continue
  echo "[${SECONDS} s] $part"
  case $part in
    kernels)
      timeout "$t" python3 test/gpu/kernels/check_kernels.py .carry/kernels > "$logs/check_kernels.log" 2>&1
      echo "check_kernels rc=$?"; grep -E "^FAIL|checks passed" "$logs/check_kernels.log" | tail -6 | cut -c1-200
      timeout "$t" python3 test/gpu/kernels/check_packed.py .carry/kernels-packed "$logs" > "$logs/check_packed.log" 2>&1
      echo "check_packed rc=$?"; grep -E "packed checks passed|^FAIL" "$logs/check_packed.log" | head -5 | cut -c1-200 ;;
    bench)
      for spec in ${BENCH_SPECS:-llama gpt}; do
        BACKENDS=cudnn PAIRED=1 VARIANTS=${VARIANTS:-default} OUT=$logs timeout $(((deadline - SECONDS) / 2)) \
          python3 test/bench/attention.py "${BENCH_KDIR:-.carry/kernels}/$spec" "${BENCH_SEQS:-32768,131072}" 32/8 > "$logs/attn_$spec.log" 2>&1
        echo "attention $spec rc=$?"; grep -E "S=|paired|against one block" "$logs/attn_$spec.log" | grep -v "unfused" | cut -c1-190
      done ;;
    hf)
      OUT=$logs/hf timeout "$t" bash test/gpu/hf/run-on-h200.sh > "$logs/hf.txt" 2>&1; echo "hf rc=$?"
      grep -E "^[a-z].* ok$|^[a-z].* FAIL|pass" "$logs/hf/parity.txt" | grep -v "^{" | tail -16 | cut -c1-200 ;;
    packed)
      OUT=$logs/packed timeout "$t" bash test/gpu/packed/run-on-h200.sh > "$logs/packed.txt" 2>&1; echo "packed rc=$?"
      grep -E "^packed|pass" "$logs/packed/packed-parity.txt" | cut -c1-200 ;;
    l1b64)
      l1b_run l1b-64K-c64K-gpu 4 64K $((t - 60))
      timeout 60 python3 .carry/anchors/hf_maxctx.py 1b > "$logs/hf-anchor.log" 2>&1; echo "anchor rc=$?"
      tail -4 "$logs/hf-anchor.log" | cut -c1-200 ;;
    l1b512)
      l1b_run l1b-512K 1 512K "$t" ;;
    ds)
      OUT=$logs/ds SEQS="${DS_SEQS:-128K 256K 512K}" DEADLINE=$t DS_RESERVE=190 bash test/gpu/ds/run.sh 2>&1 | tail -30 ;;
    fwdblocks)
      timeout "$t" python3 test/bench/fwd_blocks.py "${BENCH_KDIR:-.carry/kernels}/llama" 131072 32/8 > "$logs/fwd_blocks.log" 2>&1
      echo "fwd_blocks rc=$?"; cut -c1-200 "$logs/fwd_blocks.log" | tail -8 ;;
    clocks)
      VARIANT=${CLOCKS_VARIANT:-_heads} OUT=$logs timeout "$t" python3 test/bench/block_clocks.py "${BENCH_KDIR:-.carry/kernels}" 3 \
        > "$logs/block_clocks.log" 2>&1
      echo "block_clocks rc=$?"; grep -vE "^\s*$" "$logs/block_clocks.log" | tail -14 | cut -c1-200 ;;
    band)
      for spec in llama gpt; do
        timeout $(((deadline - SECONDS) / 2)) python3 test/bench/band_sweep.py "${BENCH_KDIR:-.carry/kernels}/$spec" 65536 32/8 \
          > "$logs/band_$spec.log" 2>&1
        echo "band_sweep $spec rc=$?"; cut -c1-200 "$logs/band_$spec.log" | tail -10
      done ;;
    calib)
      FPDT_COMMIT=$(cat .carry/COMMIT 2>/dev/null || echo unknown) OUT=$logs timeout "$t" \
        python3 test/bench/calibrate.py h200 .carry/kernels > "$logs/calibrate.log" 2>&1
      echo "calibrate rc=$?"; grep -E "TFLOP|wrote" "$logs/calibrate.log" | cut -c1-160 ;;
    *) echo "$part: no such part (kernels bench hf packed l1b64 l1b512 ds calib fwdblocks clocks)" ;;
  esac
done
echo "[${SECONDS} s] done"
gzip "$logs"/*.trace.json 2>/dev/null
cd "$OUT" && tar czf /tmp/logs.tgz logs && rm -rf logs && mv /tmp/logs.tgz "$OUT/"
