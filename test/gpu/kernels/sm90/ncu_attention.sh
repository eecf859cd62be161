#!/bin/bash
# Nsight Compute on the wgmma attention kernels: where the forward's and backward's cycles go by the
# hardware's own counters (tensor pipe, issue slots, shared-memory wavefronts and bank conflicts, warp
# stall reasons), beside profile_bwd.py's clock-read phases. One forward and one backward kernel of each
# rendered spec folder given (default: every folder of KDIR with attention_bwd_sm90.cu), profiled on
# their second launch, clocks left alone (--clock-control none). Reports (.ncu-rep, and the details page
# as text) go to $OUT.
#   KDIR=.carry/kernels S=32768 HEADS=32/8 bash test/gpu/kernels/sm90/ncu_attention.sh [spec ...]
set -u
KDIR=${KDIR:-.carry/kernels} S=${S:-32768} HEADS=${HEADS:-32/8} OUT=${OUT:-/tmp/fpdt-ncu}
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
  "$NCU" --clock-control none --target-processes all --kernel-name regex:'(fwd|bwd)_kernel' --launch-skip 2 --launch-count 2 \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section MemoryWorkloadAnalysis_Tables --section SchedulerStats --section WarpStateStats \
    --section InstructionStats --section Occupancy --section LaunchStats \
    --export "$OUT/ncu-$spec-$S" --force-overwrite \
    python3 "$here/ncu_attention.py" "$KDIR/$spec" "$S" "$HEADS" > "$OUT/ncu-$spec-$S.txt" 2>&1
  echo "$spec: ncu rc=$? ($OUT/ncu-$spec-$S.txt)"
  grep -E "^\s+(Duration|Compute \(SM\) Throughput|Memory Throughput|Issue Slots Busy|No Eligible|Shared Memory|L1/TEX Hit|Executed Ipc Active|Registers Per Thread)" "$OUT/ncu-$spec-$S.txt" | head -40
done
