#!/bin/bash
# One call on one H200 for packed documents: the document-masked kernel checks, the packed programs
# against transformers, then the 512K window against 32 separate 16K steps. Built here first (from a
# clean worktree of one commit):
#   npx tsx test/gpu/kernels/render-packed.ts .carry/kernels-packed
#   test/gpu/packed/build-cases.sh                  (-> .carry/packed)
#   test/gpu/packed/build-speed.sh w512k s16k       (-> .carry/packed-speed)
# carried as one .carry/bundle.tar.xz of kernels-packed, packed and packed-speed, with .carry/node.xz.
# A part that fails stops the later ones (no speed figure for kernels that are wrong). Logs in $OUT/logs.tgz.
set -u; mkdir -p $OUT/k $OUT/p $OUT/s
export PYTHONUNBUFFERED=1
tar -xJf .carry/bundle.tar.xz -C .carry && xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
finish() { cd $OUT && tar czf /tmp/logs.tgz k p s && rm -rf k p s && mv /tmp/logs.tgz $OUT/; exit "$1"; }
timeout 200 python3 test/gpu/kernels/check_packed.py .carry/kernels-packed $OUT/k > $OUT/k/check_packed.log 2>&1
rc=$?; echo "check_packed rc=$rc"; grep -E "^FAIL|INFO|packed checks passed" $OUT/k/check_packed.log | cut -c1-200
[ $rc = 0 ] || finish 1
OUT=$OUT/p timeout 200 bash test/gpu/packed/run-on-h200.sh > $OUT/p/run.txt 2>&1
rc=$?; echo "packed parity rc=$rc"; grep -E "^packed|pass" $OUT/p/packed-parity.txt | cut -c1-200
[ $rc = 0 ] || finish 1
OUT=$OUT/s timeout 120 bash test/gpu/packed/run-speed.sh window > /dev/null 2>&1
OUT=$OUT/s timeout 60 bash test/gpu/packed/run-speed.sh separate > /dev/null 2>&1
OUT=$OUT/s bash test/gpu/packed/run-speed.sh report 2>&1 | tail -8
finish 0
