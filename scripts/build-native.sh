#!/usr/bin/env bash
# Builds PEFT Lab's native CPU kernels (native/*.c -> native/build/Release/peft_native.node).
#
#   bash scripts/build-native.sh          build if missing or out of date (idempotent; `npm test` and
#                                         `npm run example` call it first)
#   bash scripts/build-native.sh --force  rebuild
#
# Needs: Debian's libopenblas-dev (installed here with apt-get when missing and we are root), a C
# compiler and make, the system Node headers in /usr/include/node (node-gyp runs with
# --nodedir=/usr, so nothing is downloaded), and node-gyp from devDependencies (npm ci).
#
# Never fails the caller: the addon is an accelerator, and without it the engine runs on plain wasm
# and says so in its log. Every reason for not building is printed on one line starting with
# "build-native:". Set PEFT_LAB_NATIVE_BUILD_STRICT=1 to exit non-zero instead (CI of the addon).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NATIVE="$ROOT/native"
OUT="$NATIVE/build/Release/peft_native.node"
STAMP="$NATIVE/build/.inputs.sha256"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

say() { echo "build-native: $*"; }
give_up() {
  say "$* -- the engine will run on plain wasm (no native matmul)"
  if [ "${PEFT_LAB_NATIVE_BUILD_STRICT:-0}" = "1" ]; then exit 1; fi
  exit 0
}

# 1. OpenBLAS headers and library (Debian: libopenblas-dev).
have_openblas() {
  [ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ] || [ -e /usr/include/openblas/cblas.h ] || return 1
  ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so\.0' || [ -e /usr/lib/x86_64-linux-gnu/libopenblas.so.0 ] || return 1
  [ -e /usr/lib/x86_64-linux-gnu/libopenblas.so ] || [ -e /usr/lib/libopenblas.so ] || return 1
}
if ! have_openblas; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing libopenblas-dev with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq libopenblas-dev >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      apt-get install -y -qq libopenblas-dev >/dev/null 2>&1 || give_up "apt-get install libopenblas-dev failed"
    fi
    have_openblas || give_up "libopenblas-dev installed but cblas.h or libopenblas.so not found"
  else
    give_up "OpenBLAS not found (install Debian's libopenblas-dev as root)"
  fi
fi

# 2. Toolchain and system Node headers.
if ! { command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; } || ! command -v make >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing gcc and make with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc make >/dev/null 2>&1 || true
  fi
fi
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || give_up "no C compiler (apt-get install gcc make)"
command -v make >/dev/null 2>&1 || give_up "no make (apt-get install gcc make)"
NODEDIR="${npm_config_nodedir:-/usr}"
[ -e "$NODEDIR/include/node/node_api.h" ] || give_up "no Node headers at $NODEDIR/include/node (Debian: the nodejs package ships them)"
GYP="$ROOT/node_modules/node-gyp/bin/node-gyp.js"
[ -e "$GYP" ] || give_up "node-gyp not installed (run npm ci: it is a devDependency)"

# 3. Up to date? The stamp hashes the sources, binding.gyp, node's version and this script.
inputs_hash() {
  { cat "$NATIVE/binding.gyp" "$NATIVE"/*.c "$NATIVE"/*.h "${BASH_SOURCE[0]}"; node -p 'process.versions.node + " " + process.versions.napi'; } | sha256sum | cut -d' ' -f1
}
HASH="$(inputs_hash)"
if [ "$FORCE" = "0" ] && [ -e "$OUT" ] && [ -e "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
  say "up to date ($OUT)"
  exit 0
fi

# 4. Build (offline: --nodedir points node-gyp at the system headers instead of a download).
say "building native/peft_native.node with node-gyp against $NODEDIR headers and OpenBLAS"
LOG="$NATIVE/build-native.log"
if ! (cd "$NATIVE" && node "$GYP" rebuild --nodedir="$NODEDIR" --jobs=2) >"$LOG" 2>&1; then
  tail -n 20 "$LOG" | sed 's/^/build-native:   /'
  give_up "node-gyp failed (full log: native/build-native.log)"
fi
# 5. It must load and compute: a 2x2 product on a small heap.
if ! node -e '
  const m = require(process.argv[1]);
  const heap = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]);
  m.sgemm(heap, 0, 16, 32, 2, 2, 2, false, false, 1, 1, 1, null, null);
  const want = [19, 22, 43, 50];
  if (want.some((w, i) => heap[8 + i] !== w)) throw new Error("wrong product " + Array.from(heap.slice(8)));
' "$OUT" >>"$LOG" 2>&1; then
  tail -n 5 "$LOG" | sed 's/^/build-native:   /'
  rm -f "$OUT"
  give_up "the built addon does not load or computes wrong results (log: native/build-native.log)"
fi
echo "$HASH" >"$STAMP"
say "built $OUT ($(node -p 'const i = require(process.argv[1]).info(); i.corename + ", " + i.config.trim()' "$OUT"))"
