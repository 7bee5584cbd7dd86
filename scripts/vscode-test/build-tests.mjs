#!/usr/bin/env node
/**
 * Bundles the integration tests (test/integration/**\/*.test.ts, run by mocha inside a real VS Code
 * extension host) into out/test/integration/*.test.js, the files .vscode-test.mjs points at.
 * Each test file becomes one CommonJS bundle; `vscode` (given by the extension host) and `mocha`
 * (its globals come from @vscode/test-cli's runner) stay external.
 *
 *   node scripts/vscode-test/build-tests.mjs
 *
 * The extension itself is built by `npm run build` (dist/extension.js); the smoke test does not
 * need it.
 */
import * as esbuild from 'esbuild';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from './code-server.mjs';

const SRC = join(REPO_ROOT, 'test', 'integration');
const OUT = join(REPO_ROOT, 'out', 'test', 'integration');

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return findTests(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

const started = Date.now();
const entryPoints = existsSync(SRC) ? findTests(SRC) : [];
if (entryPoints.length === 0) {
  console.error(`no *.test.ts under ${relative(REPO_ROOT, SRC)}`);
  process.exit(1);
}
// A test file removed from test/integration/ must not keep running from a stale bundle.
rmSync(OUT, { recursive: true, force: true });
await esbuild.build({
  entryPoints,
  outbase: SRC,
  outdir: OUT,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'inline',
  external: ['vscode', 'mocha'],
  logLevel: 'warning',
});
console.log(
  `[vscode-test] built ${entryPoints.length} integration test file(s) into ${relative(REPO_ROOT, OUT)} in ${Date.now() - started} ms`,
);
if (!existsSync(join(REPO_ROOT, 'dist', 'extension.js'))) {
  console.log(
    '[vscode-test] note: dist/extension.js does not exist (npm run build): PEFT Lab itself will not activate',
  );
}
