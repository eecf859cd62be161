#!/bin/bash
# Nsight Compute on the wgmma attention kernels: where the forward's and backward's cycles go by the
# hardware's own counters (tensor pipe, issue slots, shared-memory wavefronts and bank conflicts, warp
# stall reasons, and per instruction), beside profile_bwd.py's clock-read phases. One forward and one
# backward kernel of each rendered spec folder given (default: every folder of KDIR with
# attention_bwd_sm90.cu), profiled on their second launch, clocks left alone (--clock-control none).
# Reports go to $OUT: .ncu-rep, the details page as text, and each kernel's source page (SASS with
# stall samples per instruction) as CSV.
#   KDIR=.carry/kernels S=32768 HEADS=32/8 [KERNELS=bwd_kernel] bash test/gpu/kernels/sm90/ncu_attention.sh [spec ...]
set -u
KDIR=${KDIR:-.carry/kernels} S=${S:-32768} HEADS=${HEADS:-32/8} OUT=${OUT:-/tmp/fpdt-ncu}
KERNELS=${KERNELS:-(fwd|bwd)_kernel}  # which kernels, by a regular expression on the function name
# the program launches forward, backward, forward, backward: skip the first of each kernel KERNELS matches
case "$KERNELS" in fwd_kernel|bwd_kernel) n=1 ;; *) n=2 ;; esac
mkdir -p "$OUT"
here=$(dirname "$0")
# ncu from PATH, else the newest Nsight Compute installed under /opt/nvidia
NCU=${NCU:-$(command -v ncu || ls -d /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | sort -V | tail -1)}
[ -n "$NCU" ] || { echo "no ncu: set NCU to Nsight Compute's ncu" >&2; exit 1; }
specs=("$@")
[ ${#specs[@]} -gt 0 ] || for f in "$KDIR"/*/attention_bwd_sm90.cu; do specs+=("$(basename "$(dirname "$f")")"); done
for spec in "${specs[@]}"; do
  # the build happens outside the profiler, so ncu sees only the kernels' launches
  python3 "$here/ncu_attention.py" "$KDIR/$spec" 1024 "$HEADS" >/dev/null || { echo "$spec: the program failed"; continue; }
  FPDT_NCU_PREBUILT=1 "$NCU" --clock-control none --kernel-name regex:"$KERNELS" --launch-skip $n --launch-count $n \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section MemoryWorkloadAnalysis_Tables --section SchedulerStats --section WarpStateStats \
    --section InstructionStats --section Occupancy --section LaunchStats --section SourceCounters \
    --export "$OUT/ncu-$spec-$S" --force-overwrite \
    python3 "$here/ncu_attention.py" "$KDIR/$spec" "$S" "$HEADS" > "$OUT/ncu-$spec-$S.txt" 2>&1
  echo "$spec: ncu rc=$? ($OUT/ncu-$spec-$S.txt)"
  # per-instruction stall samples of each kernel, SASS with source lines, for reading here
  for kn in fwd bwd; do
    [[ $kn"_kernel" =~ $KERNELS ]] || continue
    "$NCU" --import "$OUT/ncu-$spec-$S.ncu-rep" --page source --csv --print-source sass --kernel-name "regex:${kn}_kernel" \
      > "$OUT/source-$kn-$spec-$S.csv" 2>&1
  done
  grep -E "^\s+(Duration|Compute \(SM\) Throughput|Memory Throughput|Issue Slots Busy|No Eligible|Shared Memory|L1/TEX Hit|Executed Ipc Active|Registers Per Thread)" "$OUT/ncu-$spec-$S.txt" | head -40
done
