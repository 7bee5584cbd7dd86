#!/usr/bin/env node
/**
 * Bundles the extension's entry points into `dist/` (and the dashboard webview into `media/`).
 *
 *   node esbuild.mjs            build once
 *   node esbuild.mjs --watch    rebuild on change
 *
 * Entries whose source does not exist yet are skipped, so adding the extension or the webview
 * later only means creating its source file.
 */
import * as esbuild from 'esbuild';
import { chmodSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(fileURLToPath(import.meta.url));
const watch = process.argv.includes('--watch');

/** Settings shared by everything that runs in Node (the extension host, the worker, the CLI). */
const node = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  // jsonc-parser's `main` build is a UMD wrapper whose require() calls esbuild cannot follow; its
  // ES module build bundles cleanly.
  mainFields: ['module', 'main'],
  // Every @tensorflow package stays a runtime require: they must all share one tfjs-core instance,
  // or the optional native @tensorflow/tfjs-node registers its backend on a copy nobody uses (and
  // the wasm backend must find its .wasm files next to its own package). `vscode` exists only
  // inside the extension host.
  external: ['@tensorflow/*', 'vscode'],
  logLevel: 'info',
};

/** `source` and `outfile` are relative to the repo root; an entry without its source is skipped. */
const entries = [
  { name: 'worker', source: 'src/worker/worker.ts', options: { ...node, outfile: 'dist/worker.js' } },
  {
    name: 'cli',
    source: 'src/cli/main.ts',
    options: { ...node, outfile: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } },
    executable: true,
  },
  // The VS Code extension, once src/extension.ts exists (package.json `main` points here).
  { name: 'extension', source: 'src/extension.ts', options: { ...node, outfile: 'dist/extension.js' } },
  // The dashboard webview runs in a browser sandbox: one self-contained script, no Node built-ins.
  {
    name: 'webview',
    source: 'webview/main.ts',
    options: {
      bundle: true,
      platform: 'browser',
      target: 'es2022',
      format: 'iife',
      sourcemap: true,
      outfile: 'media/dashboard.js',
      logLevel: 'info',
    },
  },
  // The Experiments table webview: same sandbox, its own bundle (media/experiments.js and .css).
  {
    name: 'experiments',
    source: 'webview/experiments/main.ts',
    options: {
      bundle: true,
      platform: 'browser',
      target: 'es2022',
      format: 'iife',
      sourcemap: true,
      outfile: 'media/experiments.js',
      logLevel: 'info',
    },
  },
];

/** Marks the CLI executable after each build, so `./dist/cli.js` works without `node` in front. */
function makeExecutablePlugin(outfile) {
  return {
    name: 'make-executable',
    setup(build) {
      build.onEnd((result) => {
        if (result.errors.length === 0 && existsSync(outfile)) chmodSync(outfile, 0o755);
      });
    },
  };
}

function buildOptions(entry) {
  const outfile = join(ROOT, entry.options.outfile);
  return {
    ...entry.options,
    entryPoints: [join(ROOT, entry.source)],
    outfile,
    plugins: entry.executable ? [makeExecutablePlugin(outfile)] : [],
  };
}

async function main() {
  const present = entries.filter((entry) => existsSync(join(ROOT, entry.source)));
  const missing = entries.filter((entry) => !present.includes(entry));
  if (missing.length > 0) console.log(`skipping (no source yet): ${missing.map((e) => e.source).join(', ')}`);

  if (watch) {
    const contexts = await Promise.all(present.map((entry) => esbuild.context(buildOptions(entry))));
    await Promise.all(contexts.map((context) => context.watch()));
    console.log('watching for changes (Ctrl-C to stop)');
    return;
  }
  const results = await Promise.allSettled(present.map((entry) => esbuild.build(buildOptions(entry))));
  // esbuild has already printed the errors; the exit code is what CI and `npm test` look at.
  if (results.some((result) => result.status === 'rejected')) process.exitCode = 1;
}

await main();
