#!/bin/bash
# One call on one H200 for the sm_90a attention kernels that take document ids: their kernel checks,
# then packed programs built with them against transformers, then the 512K window against 32
# separate 16K steps. Built here first (each from a clean worktree of one commit):
#   npx tsx test/gpu/kernels/render-packed.ts .carry/kernels-packed
#   FPDTC_SM90_DOCUMENTS=1 test/gpu/packed/build-cases.sh     (-> .carry/packed-sm90)
#   FPDTC_SM90_DOCUMENTS=1 test/gpu/packed/build-speed.sh w512k   (-> .carry/packed-speed-sm90)
#   test/gpu/packed/build-speed.sh s16k                            (-> .carry/packed-speed: the plain 16K steps)
# carried as one .carry/bundle.tar.xz of kernels-packed, packed-sm90, packed-speed-sm90 and
# packed-speed, with .carry/node.xz. A part that fails stops the later ones (no speed figure for
# kernels that are wrong). Logs in $OUT/logs.tgz.
set -u; mkdir -p $OUT/k $OUT/p $OUT/s
export PYTHONUNBUFFERED=1
tar -xJf .carry/bundle.tar.xz -C .carry && xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
finish() { cd $OUT && tar czf /tmp/logs.tgz k p s && rm -rf k p s && mv /tmp/logs.tgz $OUT/; exit "$1"; }
timeout 200 python3 test/gpu/kernels/check_packed.py .carry/kernels-packed $OUT/k > $OUT/k/check_packed.log 2>&1
rc=$?; echo "check_packed rc=$rc"; grep -E "^FAIL|INFO|packed checks passed" $OUT/k/check_packed.log | cut -c1-200
[ $rc = 0 ] || finish 1
CARRY=.carry/packed-sm90 OUT=$OUT/p timeout 200 bash test/gpu/packed/run-on-h200.sh > $OUT/p/run.txt 2>&1
rc=$?; echo "packed parity rc=$rc"; grep -E "^packed|pass" $OUT/p/packed-parity.txt | cut -c1-200
[ $rc = 0 ] || finish 1
# the window with the sm_90a document kernels, the separate steps with the plain program
CARRY=.carry/packed-speed-sm90 OUT=$OUT/s timeout 120 bash test/gpu/packed/run-speed.sh window > /dev/null 2>&1
CARRY=.carry/packed-speed OUT=$OUT/s timeout 60 bash test/gpu/packed/run-speed.sh separate > /dev/null 2>&1
cp /tmp/packed-speed-sm90/window.jsonl /tmp/packed-speed/ 2>/dev/null
CARRY=.carry/packed-speed OUT=$OUT/s bash test/gpu/packed/run-speed.sh report 2>&1 | tail -8
finish 0
