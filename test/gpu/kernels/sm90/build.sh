#!/usr/bin/env bash
# Builds libfa_sm90.so (sm_90a) from fa_fwd_sm90.cu and libfa_bwd_sm90.so from fa_bwd_sm90.cu, and
# writes build.log next to them:
# the ptxas report (registers, shared memory, stack, spills, warnings) and the SASS instruction
# counts (HGMMA must be > 0; HMMA-only would mean the slow path).
#   bash test/gpu/kernels/sm90/build.sh        (from the repo root or anywhere)
# NVCC and CUOBJDUMP may be set; without a cuobjdump the SASS step is skipped (said in the log).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NVCC="${NVCC:-nvcc}"
SRC="$HERE/fa_fwd_sm90.cu"
LIB="$HERE/libfa_sm90.so"
LOG="$HERE/build.log"
FLAGS=(-O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -lineinfo -Xcompiler -fPIC)

: >"$LOG"
echo "== $("$NVCC" --version | tail -1)" | tee -a "$LOG"
echo "== nvcc ${FLAGS[*]} -Xptxas -v -shared -o $LIB" | tee -a "$LOG"
"$NVCC" "${FLAGS[@]}" -Xptxas -v -shared -o "$LIB" "$SRC" 2>&1 | tee -a "$LOG"

echo "== ptxas summary (per kernel instantiation)" | tee -a "$LOG"
grep -E "Compiling entry|registers|spill|stack frame|C75[0-9]{2}|wgmma|setmaxnreg" "$LOG" | grep -v "^== " | sed 's/^/  /' | tee -a "$LOG.tmp" || true
cat "$LOG.tmp" >>"$LOG" 2>/dev/null || true
rm -f "$LOG.tmp"

CUOBJDUMP="${CUOBJDUMP:-}"
if [ -z "$CUOBJDUMP" ]; then
  if command -v cuobjdump >/dev/null 2>&1; then CUOBJDUMP=cuobjdump
  elif [ -x /usr/local/cuda/bin/cuobjdump ]; then CUOBJDUMP=/usr/local/cuda/bin/cuobjdump
  fi
fi
if [ -n "$CUOBJDUMP" ]; then
  SASS="$HERE/fa_fwd_sm90.sass"
  "$CUOBJDUMP" -sass "$LIB" >"$SASS"
  echo "== SASS ($SASS), per function: HGMMA / HMMA / LDL+STL (local memory) / SYNCS (mbarrier) / UTMALDG (TMA)" | tee -a "$LOG"
  awk '
    /Function :/ { if (fn != "") printf "  %s: HGMMA %d HMMA %d LDL/STL %d SYNCS %d UTMALDG %d\n", fn, hg, hm, lm, sy, tma;
                   fn = $NF; hg = hm = lm = sy = tma = 0 }
    /HGMMA/ { hg++ } / HMMA/ { hm++ } /LDL|STL/ { lm++ } /SYNCS/ { sy++ } /UTMALDG/ { tma++ }
    END { if (fn != "") printf "  %s: HGMMA %d HMMA %d LDL/STL %d SYNCS %d UTMALDG %d\n", fn, hg, hm, lm, sy, tma }
  ' "$SASS" | tee -a "$LOG"
  TOTAL=$(grep -c HGMMA "$SASS" || true)
  echo "== HGMMA total: $TOTAL" | tee -a "$LOG"
  if [ "${TOTAL:-0}" -eq 0 ]; then echo "ERROR: no HGMMA in SASS" | tee -a "$LOG"; exit 1; fi
else
  echo "== no cuobjdump found: SASS not checked (set CUOBJDUMP=...)" | tee -a "$LOG"
fi
echo "== built $LIB" | tee -a "$LOG"

# ---- backward: libfa_bwd_sm90.so from fa_bwd_sm90.cu (same flags; its report appended to build.log) ----
BSRC="$HERE/fa_bwd_sm90.cu"
BLIB="$HERE/libfa_bwd_sm90.so"
BLOG="$HERE/build.log.bwd"
: >"$BLOG"
echo "== backward: nvcc ${FLAGS[*]} -Xptxas -v -shared -o $BLIB" | tee -a "$LOG"
"$NVCC" "${FLAGS[@]}" -Xptxas -v -shared -o "$BLIB" "$BSRC" 2>&1 | tee -a "$BLOG"
cat "$BLOG" >>"$LOG"
echo "== backward ptxas summary (per kernel)" | tee -a "$LOG"
grep -E "Compiling entry|registers|spill|stack frame|C75[0-9]{2}|wgmma|setmaxnreg" "$BLOG" | sed 's/^/  /' | tee -a "$LOG" || true
rm -f "$BLOG"
if [ -n "$CUOBJDUMP" ]; then
  BSASS="$HERE/fa_bwd_sm90.sass"
  "$CUOBJDUMP" -sass "$BLIB" >"$BSASS"
  echo "== backward SASS ($BSASS), per function: HGMMA / HMMA / LDL+STL / SYNCS / UTMALDG (TMA) / UBLKCP (bulk copy) / REDG (atomics)" | tee -a "$LOG"
  awk '
    /Function :/ { if (fn != "") printf "  %s: HGMMA %d HMMA %d LDL/STL %d SYNCS %d UTMALDG %d UBLKCP %d REDG %d\n", fn, hg, hm, lm, sy, tma, bk, rd;
                   fn = $NF; hg = hm = lm = sy = tma = bk = rd = 0 }
    /HGMMA/ { hg++ } / HMMA/ { hm++ } /LDL|STL/ { lm++ } /SYNCS/ { sy++ } /UTMALDG/ { tma++ } /UBLKCP/ { bk++ } /REDG/ { rd++ }
    END { if (fn != "") printf "  %s: HGMMA %d HMMA %d LDL/STL %d SYNCS %d UTMALDG %d UBLKCP %d REDG %d\n", fn, hg, hm, lm, sy, tma, bk, rd }
  ' "$BSASS" | tee -a "$LOG"
  BTOTAL=$(grep -c HGMMA "$BSASS" || true)
  echo "== backward HGMMA total: $BTOTAL" | tee -a "$LOG"
  if [ "${BTOTAL:-0}" -eq 0 ]; then echo "ERROR: no HGMMA in backward SASS" | tee -a "$LOG"; exit 1; fi
fi
echo "== built $BLIB" | tee -a "$LOG"
