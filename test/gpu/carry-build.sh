# Sourced by the GPU build scripts. carry_build FROM TO: a built addon and its build record (the
# schedule hash it was built from, which `fpdtc run` checks) at the same places under TO.
carry_build() {
  mkdir -p "$2"
  local rel; rel=$(node -e "console.log(require(process.argv[1]).addon)" "$(realpath "$1/built-from.json")")
  mkdir -p "$2/$(dirname "$rel")" && cp "$1/$rel" "$2/$rel" && cp "$1/built-from.json" "$2/"
}
