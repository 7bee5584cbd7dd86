#!/usr/bin/env bash
# Installs everything the real-VS Code test harness needs, on a fresh Debian machine (run as root):
#
#   bash scripts/vscode-test/install.sh        (= npm run test:vscode:install)
#
#  1. Debian packages (only the missing ones): ripgrep, a C++ toolchain and Kerberos headers for the
#     native rebuilds, Chromium for Playwright, a font so the workbench renders text.
#  2. code-server (= VS Code 1.100.3) + playwright-core from the npm registry into
#     .vscode-test/code-server/ (ignored by git, outside the project's node_modules), with their
#     install scripts skipped and their work done by hand: they would download prebuilt binaries,
#     which this network cannot reach. See shared/design/real-vscode-tests.md.
#
# Idempotent: a stamp file records a finished install; a second run checks it and returns at once.
# Set PEFT_LAB_VSCODE_REINSTALL=1 to force the npm part again.
set -euo pipefail

# Exact pins. 4.104+ needs Node 22; 4.100.3 is VS Code 1.100.3 on Node 20.
CODE_SERVER_VERSION=4.100.3
PLAYWRIGHT_CORE_VERSION=1.65.1 # keep equal to package.json devDependencies.playwright-core
DEB_PACKAGES=(ripgrep libkrb5-dev g++ make python3 pkg-config chromium fonts-dejavu-core)
NATIVE_MODULES=(@parcel/watcher @vscode/spdlog native-watchdog node-pty kerberos @vscode/deviceid)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CS_DIR="${PEFT_LAB_CODE_SERVER_DIR:-$ROOT/.vscode-test/code-server}"
STAMP="$CS_DIR/.installed"
NODE_ABI="$(node -p 'process.versions.modules')"
STAMP_KEY="code-server@$CODE_SERVER_VERSION playwright-core@$PLAYWRIGHT_CORE_VERSION node-abi@$NODE_ABI"

T0=$(date +%s.%N)
step_t=$T0
log() { printf '[vscode-test install] %s\n' "$*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step_done() { log "$1 ($(elapsed "$step_t") s)"; step_t=$(date +%s.%N); }

# node-gyp: use the system's Node headers (Debian's nodejs ships them in /usr/include/node) instead
# of downloading a tarball; `yes` lets node-pty's post-step run instead of being cancelled.
export npm_config_nodedir=/usr
export npm_config_yes=true
export npm_config_audit=false
export npm_config_fund=false
export npm_config_update_notifier=false

# ---------------------------------------------------------------------------------- Debian packages
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then missing+=("$pkg"); fi
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    log "ERROR: installing Debian packages needs root (missing: ${missing[*]})"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # a parallel apt-get (another install) holds the lock for a while: wait for it
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  step_done "Debian packages installed"
else
  step_done "Debian packages already present"
fi
for bin in /usr/bin/rg /usr/bin/chromium /usr/bin/g++; do
  [[ -x $bin ]] || { log "ERROR: $bin missing after apt-get"; exit 1; }
done

# ------------------------------------------------------------------------------------- code-server
CS_PKG="$CS_DIR/node_modules/code-server"
VSC="$CS_PKG/lib/vscode"

verify_native() {
  # Loads every native addon the server needs, from where the server loads it (a .node file built
  # for another Node, or missing, fails here instead of as a blank workbench later).
  local ok=0
  [[ -x $VSC/node_modules/@vscode/ripgrep/bin/rg ]] || { log "missing ripgrep copy"; ok=1; }
  [[ -L $VSC/node_modules.asar ]] || { log "missing node_modules.asar link"; ok=1; }
  [[ -f $CS_DIR/node_modules/playwright-core/package.json ]] || { log "missing playwright-core"; ok=1; }
  CS_DIR="$CS_DIR" VSC="$VSC" MODULES="${NATIVE_MODULES[*]}" node -e '
    const { createRequire } = require("node:module");
    const fromCs = createRequire(process.env.CS_DIR + "/package.json");
    const fromVsc = createRequire(process.env.VSC + "/package.json");
    let bad = 0;
    const load = (req, name) => {
      try { req(name); } catch (e) { bad++; console.log("[vscode-test install] cannot load " + name + ": " + e.message.split("\n")[0]); }
    };
    load(fromCs, "argon2");
    for (const m of process.env.MODULES.split(" ")) load(fromVsc, m);
    process.exit(bad ? 1 : 0);
  ' || ok=1
  return $ok
}

if [[ -z ${PEFT_LAB_VSCODE_REINSTALL:-} && -f $STAMP && "$(cat "$STAMP")" == "$STAMP_KEY" ]] && verify_native; then
  log "code-server $CODE_SERVER_VERSION already installed in ${CS_DIR#"$ROOT"/} ($(elapsed "$T0") s total)"
  exit 0
fi
rm -f "$STAMP"

mkdir -p "$CS_DIR"
cat >"$CS_DIR/package.json" <<EOF
{
  "name": "peft-lab-code-server",
  "private": true,
  "description": "Real VS Code (code-server) for PEFT Lab's tests; written by scripts/vscode-test/install.sh",
  "dependencies": {
    "code-server": "$CODE_SERVER_VERSION",
    "playwright-core": "$PLAYWRIGHT_CORE_VERSION"
  }
}
EOF

cd "$CS_DIR"
# 2. the packages themselves, with every install script skipped (they download binaries).
npm install --ignore-scripts --save-exact --loglevel=error \
  "code-server@$CODE_SERVER_VERSION" "playwright-core@$PLAYWRIGHT_CORE_VERSION"
installed="$(node -p "require('./node_modules/code-server/package.json').version")"
[[ $installed == "$CODE_SERVER_VERSION" ]] || { log "ERROR: got code-server $installed"; exit 1; }
step_done "npm install code-server@$CODE_SERVER_VERSION playwright-core@$PLAYWRIGHT_CORE_VERSION"

# 3. argon2 builds from source (needed even with --auth none: the server requires it at start).
npm rebuild argon2 --loglevel=error >/dev/null
step_done "npm rebuild argon2"

# 4. VS Code's own server dependencies.
cd "$VSC"
npm install --omit=dev --ignore-scripts --loglevel=error >/dev/null
step_done "lib/vscode: npm install --omit=dev"
# @vscode/ripgrep's postinstall downloads rg; Debian's is the same program.
mkdir -p node_modules/@vscode/ripgrep/bin
cp /usr/bin/rg node_modules/@vscode/ripgrep/bin/rg
chmod 755 node_modules/@vscode/ripgrep/bin/rg
# Native addons, built against /usr/include/node. Without npm_config_yes=true node-pty's post-step
# asks a question, is cancelled, and the command exits non-zero although pty.node was built.
npm rebuild "${NATIVE_MODULES[@]}" --loglevel=error >/dev/null
step_done "lib/vscode: native rebuilds"

# 5. Links the packaged product has and the npm tarball lacks.
ln -sfn node_modules node_modules.asar
ln -sfn code-linux.sh bin/remote-cli/code-server
ln -sfn browser-linux.sh bin/helpers/browser.sh
cd extensions
npm install --omit=dev --ignore-scripts --loglevel=error >/dev/null
node postinstall.mjs >/dev/null
step_done "lib/vscode: links + built-in extensions"

if ! verify_native; then
  log "ERROR: native addons missing after the rebuild (see above)"
  exit 1
fi
printf '%s' "$STAMP_KEY" >"$STAMP"
log "done: code-server $CODE_SERVER_VERSION in ${CS_DIR#"$ROOT"/}, $(du -sh "$CS_DIR" | cut -f1) ($(elapsed "$T0") s total)"
