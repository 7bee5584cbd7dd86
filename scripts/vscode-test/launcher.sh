#!/bin/sh
# The "VS Code executable" that .vscode-test.mjs gives @vscode/test-electron (useInstallation.fromPath):
# test-electron spawns a path without a shell, so this execs the Node launcher with its arguments.
exec node "$(dirname "$0")/launcher.mjs" "$@"
