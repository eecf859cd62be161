#!/bin/bash
# Builds here (nvcc, Node) from a clean worktree of HEAD what test/gpu/verify-h200.sh runs on one H200, and
# packs it into this checkout's .carry/:
#   bundle.tar.xz   kernels, kernels-packed (rendered), hf, packed (the parity cases, built)
#   l1b.tar.xz      llama1b at 64K (resident, checkpoints on the GPU) and 512K (chunk 64K, 110 GiB of host)
#   ds.tar.xz       our Llama-3-8B attention layer and DeepSpeed's bench (test/gpu/ds/build.sh; DeepSpeed's
#                   two files from DEEPSPEED, else from .carry/ds/deepspeed)
#   bcache.tar.xz   the rendered kernels' objects (test/gpu/kernels/build.py's cache), so the GPU host
#                   links rather than compiles them
#   COMMIT          the commit all of it was built from
# PARTS (default "kernels hf packed l1b ds") picks what to build; about 25 minutes on two cores for all of it.
# Carry .carry/{bundle,l1b,ds,bcache}.tar.xz, .carry/COMMIT and .carry/node.xz to the run.
set -eu
parts=" ${PARTS:-kernels hf packed l1b ds} "
here=$PWD
rev=$(git rev-parse HEAD)
wt=/tmp/fpdt-h200-${rev:0:12}
[ -d "$wt" ] || { git worktree add -f "$wt" "$rev" >/dev/null; ln -s "$here/node_modules" "$wt/node_modules"; }
mkdir -p "$here/.carry" "$wt/.carry"
cd "$wt"
export FPDT_BUILD_CACHE=/tmp/fpdt-h200-cache-${rev:0:12}  # this commit's objects only
if [[ $parts == *" kernels "* ]]; then
  npx tsx test/gpu/kernels/render.ts .carry/kernels >/dev/null
  npx tsx test/gpu/kernels/render-packed.ts .carry/kernels-packed >/dev/null
  # fills the object cache for every rendered folder (the same flags as the GPU host's scripts)
  python3 - <<'EOF'
import os, sys
sys.path.insert(0, "test/gpu/kernels")
import build as B
for root in (".carry/kernels", ".carry/kernels-packed"):
    for name in sorted(os.listdir(root)):
        B.build(os.path.join(root, name), f"/tmp/fpdt-h200-objects/{os.path.basename(root)}-{name}", log=lambda *_: None)
EOF
  tar -cJf "$here/.carry/bcache.tar.xz" -C "$FPDT_BUILD_CACHE" .
  echo "rendered and compiled the kernels"
fi
if [[ $parts == *" hf "* ]]; then bash test/gpu/hf/build-cases.sh; fi
if [[ $parts == *" packed "* ]]; then bash test/gpu/packed/build-cases.sh; fi
if [[ $parts == *" kernels "* || $parts == *" hf "* || $parts == *" packed "* ]]; then
  ls -d .carry/kernels .carry/kernels-packed .carry/hf .carry/packed 2>/dev/null | sed 's|^.carry/||' |
    xargs tar -cJf "$here/.carry/bundle.tar.xz" -C .carry
fi
if [[ $parts == *" l1b "* ]]; then
  bash test/gpu/l1b/build.sh 64K:64K::gpu 512K:64K:110
  tar -cJf "$here/.carry/l1b.tar.xz" -C .carry l1b-64K-c64K-gpu l1b-512K l1b-run-entry.mjs anchors
fi
if [[ $parts == *" ds "* ]]; then
  if [ -z "${DEEPSPEED:-}" ] && [ -d "$here/.carry/ds/deepspeed" ]; then
    mkdir -p .carry/ds && cp -r "$here/.carry/ds/deepspeed" .carry/ds/
  fi
  bash test/gpu/ds/build.sh
  cp .carry/ds.tar.xz "$here/.carry/ds.tar.xz"
fi
echo "$rev" > "$here/.carry/COMMIT"
ls -la "$here"/.carry/{bundle,l1b,ds,bcache}.tar.xz 2>/dev/null | awk '{print $5, $9}'
echo "built from $rev ($wt)"
