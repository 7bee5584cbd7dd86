// Configuration for @vscode/test-cli (`npx vscode-test`, or `npm run test:integration`, which
// bundles test/integration/ first with scripts/vscode-test/build-tests.mjs).
//
// This machine has no internet, so @vscode/test-electron cannot download desktop VS Code. Instead
// `useInstallation.fromPath` names scripts/vscode-test/launcher.sh: it takes test-electron's
// command line and runs the same mocha tests inside a real VS Code 1.100.3 (code-server on
// 127.0.0.1 + headless Chromium), exiting with the tests' code. Install it once with
// `npm run test:vscode:install`. See scripts/vscode-test/launcher.mjs.
import { defineConfig } from '@vscode/test-cli';
import { chmodSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const launcher = fileURLToPath(new URL('./scripts/vscode-test/launcher.sh', import.meta.url));
// test-electron spawns it directly: keep it executable even if a checkout lost the mode bit.
chmodSync(launcher, 0o755);

export default defineConfig([
  {
    label: 'integration',
    files: 'out/test/integration/**/*.test.js',
    workspaceFolder: 'test/fixtures/workspace',
    // The repo itself is the extension under development (package.json main: dist/extension.js).
    extensionDevelopmentPath: '.',
    mocha: { ui: 'tdd', timeout: 60_000 },
    useInstallation: { fromPath: launcher },
  },
]);
