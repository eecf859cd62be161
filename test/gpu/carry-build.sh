# Sourced by the GPU build scripts. carry_build FROM TO: a built addon and its build record (the
# schedule hash it was built from, which `fpdtc run` checks) at the same places under TO.
carry_build() {
  mkdir -p "$2"
  local rel; rel=$(node -e "console.log(require(process.argv[1]).addon)" "$(realpath "$1/built-from.json")")
  mkdir -p "$2/$(dirname "$rel")" && cp "$1/$rel" "$2/$rel" && cp "$1/built-from.json" "$2/"
}

# compile_and_carry NAME MODEL_FILE DEST WORK [compile flags...]: `fpdtc compile` with the flags into
# WORK/out-NAME, `fpdtc build`, then the schedule, report, graph (and the compile's summary as
# compile.txt) and the addon into DEST/NAME. Logs in WORK/NAME.{compile,build}.log.
compile_and_carry() {
  local name=$1 file=$2 dest=$3 work=$4; shift 4
  local out=$work/out-$name
  rm -rf "$out"
  npx fpdtc compile "$file" "$@" --out "$out" >"$work/$name.compile.log"
  local dir; dir=$(dirname "$(ls "$out"/*/schedule.json)")
  npx fpdtc build "$dir" --jobs "${BUILD_JOBS:-2}" >"$work/$name.build.log"
  rm -rf "${dest:?}/$name"; mkdir -p "$dest/$name"
  cp "$dir/schedule.json" "$dir/report.json" "$dir/graph.json" "$dest/$name/"
  cp "$work/$name.compile.log" "$dest/$name/compile.txt"
  carry_build "$dir/build" "$dest/$name/build"
  echo "built $dest/$name"
}

# bundle_run_entry OUT: `fpdtc run` as one ES module for the GPU host (no node_modules there).
bundle_run_entry() {
  npx esbuild test/gpu/run-entry.ts --bundle --platform=node --format=esm --outfile="$1" \
    --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" >/dev/null
  echo "bundled $1"
}
