#!/usr/bin/env node
/**
 * Builds the VSIX: `npm run package` (or `node scripts/package.mjs`).
 *
 *   node scripts/package.mjs                  build, package, check, print size and file count
 *   node scripts/package.mjs --smoke          ...then unpack it and train from it (see smokeTest)
 *   node scripts/package.mjs --out <file>     write the VSIX elsewhere (default: repo root)
 *   node scripts/package.mjs --no-build       package the existing dist/ as is
 *
 * Approach: vsce collects the production dependencies itself (`npm list --production`) and
 * .vscodeignore is an allow-list that keeps only the files the bundles load at run time (the
 * Node `main` of each @tensorflow package, the wasm binaries, and their few runtime
 * dependencies). `--no-dependencies` would not help: vsce then leaves out node_modules entirely,
 * and every @tensorflow package is external to our bundles, so the VSIX must carry them.
 *
 * After packaging, the VSIX is checked: every packaged package's `main` must be in it, and every
 * `dependencies` entry of a packaged package must be packaged too unless listed in NOT_NEEDED
 * (so a tfjs upgrade that adds a runtime dependency fails here, not on a user's machine).
 *
 * The functions below are also used by test/unit/package.test.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inflateRawSync } from 'node:zlib';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/**
 * Dependencies of packaged packages that are deliberately not packaged, and why. Anything named
 * `@types/*` is a type-only package and always skipped.
 */
const NOT_NEEDED = {
  '@webgpu/types': 'types only',
  // @tensorflow/tfjs: used only by its converter wizard (bin), never by dist/tf.node.js.
  argparse: 'tfjs CLI only',
  chalk: 'tfjs CLI only',
  'core-js': 'tfjs browser polyfills only',
  'regenerator-runtime': 'tfjs browser polyfills only',
  yargs: 'tfjs CLI only',
  // tfjs-data: require('string_decoder') always resolves to Node's built-in module.
  string_decoder: 'Node built-in wins',
};

// ---- zip reading (a VSIX is a zip) --------------------------------------------------------------

/**
 * The entries of a zip file from its central directory: name, sizes, and where the data is.
 * Enough for what vsce writes (no zip64, no encryption).
 */
export function readZipEntries(buffer) {
  const EOCD = 0x06054b50;
  let eocd = -1;
  for (let i = buffer.length - 22; i >= Math.max(0, buffer.length - 22 - 0xffff); i--) {
    if (buffer.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file (no end of central directory record)');
  const count = buffer.readUInt16LE(eocd + 10);
  let offset = buffer.readUInt32LE(eocd + 16);
  const entries = [];
  for (let i = 0; i < count; i++) {
    if (buffer.readUInt32LE(offset) !== 0x02014b50) throw new Error(`bad central directory entry ${i}`);
    const method = buffer.readUInt16LE(offset + 10);
    const compressedSize = buffer.readUInt32LE(offset + 20);
    const size = buffer.readUInt32LE(offset + 24);
    const nameLength = buffer.readUInt16LE(offset + 28);
    const extraLength = buffer.readUInt16LE(offset + 30);
    const commentLength = buffer.readUInt16LE(offset + 32);
    const localHeader = buffer.readUInt32LE(offset + 42);
    const name = buffer.toString('utf8', offset + 46, offset + 46 + nameLength);
    entries.push({ name, method, compressedSize, size, localHeader });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** The contents of one entry from readZipEntries. */
export function readZipEntry(buffer, entry) {
  const at = entry.localHeader;
  if (buffer.readUInt32LE(at) !== 0x04034b50) throw new Error(`bad local header for ${entry.name}`);
  const start = at + 30 + buffer.readUInt16LE(at + 26) + buffer.readUInt16LE(at + 28);
  const data = buffer.subarray(start, start + entry.compressedSize);
  if (entry.method === 0) return Buffer.from(data);
  if (entry.method === 8) return inflateRawSync(data);
  throw new Error(`${entry.name}: unsupported compression method ${entry.method}`);
}

/** Unpacks a zip into `dir` (created if missing); returns the entry names. */
export function extractZip(zipFile, dir) {
  const buffer = fs.readFileSync(zipFile);
  const entries = readZipEntries(buffer);
  const root = path.resolve(dir);
  for (const entry of entries) {
    if (entry.name.endsWith('/')) continue;
    const target = path.resolve(root, entry.name);
    if (!target.startsWith(root + path.sep)) throw new Error(`zip entry escapes the folder: ${entry.name}`);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, readZipEntry(buffer, entry));
  }
  return entries.map((entry) => entry.name);
}

// ---- checks on the packaged files ---------------------------------------------------------------

/**
 * Problems with the node_modules inside a VSIX: a packaged package whose `main` is missing, or
 * whose runtime dependency is neither packaged nor in NOT_NEEDED. Empty when all is well.
 */
export function checkPackagedDependencies(buffer, entries) {
  const PREFIX = 'extension/';
  const names = new Set(entries.map((entry) => entry.name));
  const problems = [];
  const manifests = entries.filter((e) =>
    /^extension\/(.*\/)?node_modules\/(@[^/]+\/)?[^/@]+\/package\.json$/.test(e.name),
  );
  const packaged = new Map();
  for (const entry of manifests) {
    const manifest = JSON.parse(readZipEntry(buffer, entry).toString('utf8'));
    // Nested package.json files (e.g. dist/esm/package.json) carry no name; they are not packages.
    if (!manifest.name) continue;
    packaged.set(manifest.name, { dir: entry.name.slice(0, -'package.json'.length), manifest });
  }
  for (const [name, { dir, manifest }] of packaged) {
    // Type declarations only: nothing to require (and they should not ship at all).
    if (
      name.startsWith('@types/') ||
      (manifest.main === undefined && manifest.exports === undefined && (manifest.types || manifest.typings))
    )
      continue;
    const mainField = typeof manifest.main === 'string' && manifest.main !== '' ? manifest.main : 'index.js';
    const main = path.posix.normalize(path.posix.join(dir, mainField));
    const candidates = [main, `${main}.js`, `${main}.json`, path.posix.join(main, 'index.js')];
    // An exports-only package: what require() of its name loads.
    const dot = typeof manifest.exports === 'string' ? manifest.exports : manifest.exports?.['.'];
    for (const target of [dot, dot?.node, dot?.require, dot?.default]) {
      if (typeof target === 'string') candidates.push(path.posix.normalize(path.posix.join(dir, target)));
    }
    // `"main": false` or `""` without an exports "." entry: only subpaths are requireable.
    const noMain = (manifest.main === false || manifest.main === '') && dot === undefined;
    if (!noMain && !candidates.some((candidate) => names.has(candidate))) {
      problems.push(`${name}: its main '${mainField}' is not in the VSIX (${dir.slice(PREFIX.length)})`);
    }
    for (const dependency of Object.keys(manifest.dependencies ?? {})) {
      if (dependency.startsWith('@types/') || Object.hasOwn(NOT_NEEDED, dependency) || packaged.has(dependency))
        continue;
      problems.push(
        `${name} depends on ${dependency}, which is not in the VSIX: add it to .vscodeignore, or to NOT_NEEDED in scripts/package.mjs if it is never loaded`,
      );
    }
  }
  return problems;
}

// ---- packaging ----------------------------------------------------------------------------------

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], ...options });
  if (result.error) throw result.error;
  if (result.status !== 0)
    throw new Error(`${path.basename(command)} ${args.join(' ')} exited with ${result.status ?? result.signal}`);
}

export function defaultVsixPath() {
  const { name, version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  return path.join(ROOT, `${name}-${version}.vsix`);
}

/** The native kernels' addon, when scripts/build-native.sh has built it (.vscodeignore lets it in). */
export const NATIVE_ADDON = 'native/build/Release/peft_native.node';

/**
 * The VS Code target platform of this machine when the addon is built: a VSIX with a native binary
 * is a platform VSIX (`vsce package --target`), which VS Code offers only to that platform. Without
 * the addon the VSIX is universal and trains on plain wasm.
 */
export function nativeTarget() {
  return fs.existsSync(path.join(ROOT, NATIVE_ADDON)) ? `${process.platform}-${process.arch}` : undefined;
}

/** Builds dist/ and packages the VSIX at `out`; returns its path, size, entries and target platform. */
export function packageVsix({ out = defaultVsixPath(), build = true } = {}) {
  if (build) run(process.execPath, [path.join(ROOT, 'esbuild.mjs')]);
  const vsceManifest = require.resolve('@vscode/vsce/package.json', { paths: [ROOT] });
  const vsce = path.join(path.dirname(vsceManifest), 'vsce');
  // stdin is closed: should vsce ever ask "Do you want to continue? [y/N]", it reads no answer
  // and aborts instead of hanging a CI job. package.json has no `repository` field (yet).
  const target = nativeTarget();
  run(process.execPath, [
    vsce,
    'package',
    '--no-yarn',
    '--allow-missing-repository',
    '--out',
    out,
    ...(target ? ['--target', target] : []),
  ]);
  const buffer = fs.readFileSync(out);
  const entries = readZipEntries(buffer);
  const problems = checkPackagedDependencies(buffer, entries);
  if (problems.length > 0) throw new Error(`the VSIX is incomplete:\n  ${problems.join('\n  ')}`);
  return { file: out, bytes: buffer.length, entries, target };
}

export function formatBytes(bytes) {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(2)} MB` : `${(bytes / 1024).toFixed(1)} kB`;
}

/** Size per top-level folder inside extension/ (uncompressed, and file counts). */
function summarize(entries) {
  const groups = new Map();
  for (const entry of entries) {
    const parts = entry.name.split('/');
    const key = parts[0] !== 'extension' ? '(vsix metadata)' : parts.length > 2 ? `${parts[1]}/` : parts[1];
    const group = groups.get(key) ?? { files: 0, size: 0, compressed: 0 };
    group.files++;
    group.size += entry.size;
    group.compressed += entry.compressedSize;
    groups.set(key, group);
  }
  return [...groups].sort((a, b) => b[1].compressed - a[1].compressed);
}

// ---- smoke test: the unpacked VSIX must work without npm install --------------------------------

/**
 * Preloaded into every smoke-test process: fails any module resolution that lands outside the
 * unpacked extension (the repo's node_modules, a global folder, NODE_PATH...), and counts reads of
 * node_modules files outside it. `vscode` is allowed to be missing: that is the one module only
 * the extension host has.
 */
const GUARD = `
const Module = require('module');
const path = require('path');
const fs = require('fs');
const root = process.env.PEFT_LAB_SMOKE_ROOT + path.sep;
const allowed = process.env.PEFT_LAB_SMOKE_ALLOW.split(path.delimiter);
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  const resolved = resolve.call(this, request, ...rest);
  if (path.isAbsolute(resolved) && !resolved.startsWith(root) && !allowed.includes(resolved)) {
    throw new Error('smoke test: ' + request + ' resolved outside the unpacked extension: ' + resolved);
  }
  return resolved;
};
const readFileSync = fs.readFileSync;
fs.readFileSync = function (file, ...rest) {
  if (typeof file === 'string' && file.includes('node_modules') && !path.resolve(file).startsWith(root)) {
    throw new Error('smoke test: read outside the unpacked extension: ' + file);
  }
  return readFileSync.call(this, file, ...rest);
};
`;

/** A stand-in for the `vscode` module: any property, call or construction gives the stand-in back. */
const VSCODE_STUB = `
const Module = require('module');
const stub = new Proxy(function () {}, {
  get: (target, key) => (key === '__esModule' ? false : key === Symbol.toPrimitive ? () => '' : stub),
  apply: () => stub,
  construct: () => stub,
});
const load = Module._load;
Module._load = function (request, ...rest) { return request === 'vscode' ? stub : load.call(this, request, ...rest); };
`;

function runNode(args, { cwd, env, timeoutMs = 120_000 }) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A tiny scratch-model config and 40 lines of training data, next to the vocab it names. */
function writeTinyExperiment(dir) {
  fs.copyFileSync(path.join(ROOT, 'test', 'fixtures', 'tiny-bert', 'vocab.txt'), path.join(dir, 'vocab.txt'));
  const words = {
    pos: ['good', 'great', 'excellent', 'fun', 'loved'],
    neg: ['bad', 'terrible', 'awful', 'boring', 'hated'],
  };
  const rows = Array.from({ length: 40 }, (_, i) => {
    const label = i % 2 === 0 ? 'pos' : 'neg';
    return JSON.stringify({ text: `this movie was really ${words[label][i % 5]}`, label });
  });
  fs.writeFileSync(path.join(dir, 'train.jsonl'), `${rows.join('\n')}\n`);
  const config = {
    name: 'smoke',
    model: {
      scratch: { vocab: 'vocab.txt', layers: 1, hiddenSize: 16, heads: 2, intermediateSize: 32, maxPositions: 64 },
    },
    task: { type: 'classification' },
    data: { train: 'train.jsonl', maxLength: 32 },
    method: { type: 'houlsby', bottleneck: 4 },
    training: { epochs: 1, batchSize: 8, logEvery: 1 },
    output: { runsDir: 'runs' },
  };
  const file = path.join(dir, 'smoke.peft.json');
  fs.writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

/**
 * Unpacks the VSIX into a temp folder and checks that it works there with nothing else:
 *   - `node extension/dist/cli.js train` finishes with --backend wasm and with --backend cpu; with
 *     --backend wasm on the packaged native kernels when the VSIX carries the addon;
 *   - `node extension/dist/worker.js` loads (it then exits 2: it wants an IPC parent);
 *   - requiring extension/dist/extension.js fails only on `vscode`, and with a stand-in `vscode`
 *     it loads and exports activate().
 * Every process runs with the GUARD preloaded, so nothing may come from the repo's node_modules.
 * Returns what each step printed; throws with the output when a step fails.
 */
export async function smokeTest(vsixFile, { keep = false, log = () => {} } = {}) {
  const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-vsix-')));
  const results = {};
  try {
    extractZip(vsixFile, tmp);
    const extension = path.join(tmp, 'extension');
    const work = path.join(tmp, 'work');
    fs.mkdirSync(work);
    const guard = path.join(tmp, 'guard.cjs');
    fs.writeFileSync(guard, GUARD);
    const config = writeTinyExperiment(work);
    const stub = path.join(tmp, 'vscode-stub.cjs');
    fs.writeFileSync(stub, VSCODE_STUB);
    // Only these two helper files may load from outside extension/.
    const allow = [guard, stub].join(path.delimiter);
    const env = {
      ...process.env,
      PEFT_LAB_SMOKE_ROOT: extension,
      PEFT_LAB_SMOKE_ALLOW: allow,
      HOME: tmp,
      USERPROFILE: tmp,
    };
    for (const name of [
      'NODE_PATH',
      'NODE_OPTIONS',
      'PEFT_LAB_BACKEND',
      'PEFT_LAB_DEBUG',
      'PEFT_LAB_NATIVE',
      'PEFT_LAB_NATIVE_ADDON',
    ])
      delete env[name];
    const fail = (what, result) => {
      throw new Error(`${what} (exit ${result.code})\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`);
    };

    for (const backend of ['wasm', 'cpu']) {
      log(`smoke: train --backend ${backend}`);
      const result = await runNode(
        ['--require', guard, path.join(extension, 'dist', 'cli.js'), 'train', config, '--backend', backend],
        { cwd: work, env },
      );
      results[backend] = result;
      if (result.code !== 0 || !/finished in/.test(result.stdout))
        fail(`training with --backend ${backend} from the unpacked VSIX failed`, result);
      if (!new RegExp(`backend: ${backend}\\b`).test(result.stdout))
        fail(`training did not report backend ${backend}`, result);
    }
    results.nativePackaged = fs.existsSync(path.join(extension, NATIVE_ADDON));
    if (results.nativePackaged && !/backend: wasm \+ native kernels/.test(results.wasm.stdout)) {
      fail('the VSIX carries the native addon but training from it did not use it', results.wasm);
    }

    log('smoke: worker.js loads');
    results.worker = await runNode(['--require', guard, path.join(extension, 'dist', 'worker.js')], { cwd: work, env });
    if (results.worker.code !== 2 || !/not meant to be run directly/.test(results.worker.stderr))
      fail('dist/worker.js did not load', results.worker);

    log('smoke: extension.js needs only vscode');
    const probe = `try { require(${JSON.stringify(path.join(extension, 'dist', 'extension.js'))}); console.log('loaded'); }
      catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message.split('\\n')[0] })); }`;
    results.extension = await runNode(['--require', guard, '-e', probe], { cwd: work, env });
    const expected = JSON.stringify({ code: 'MODULE_NOT_FOUND', message: "Cannot find module 'vscode'" });
    if (results.extension.code !== 0 || results.extension.stdout.trim() !== expected)
      fail(`requiring dist/extension.js should fail only with ${expected}`, results.extension);

    const activate = `const m = require(${JSON.stringify(path.join(extension, 'dist', 'extension.js'))}); console.log(typeof m.activate);`;
    results.extensionWithVscode = await runNode(['--require', guard, '--require', stub, '-e', activate], {
      cwd: work,
      env,
    });
    if (results.extensionWithVscode.code !== 0 || results.extensionWithVscode.stdout.trim() !== 'function') {
      fail('dist/extension.js did not load with a stand-in vscode module', results.extensionWithVscode);
    }
    return { dir: tmp, ...results };
  } finally {
    if (!keep) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---- command line ---------------------------------------------------------------------------------

async function main(argv) {
  const outIndex = argv.indexOf('--out');
  const out = outIndex >= 0 ? path.resolve(argv[outIndex + 1]) : defaultVsixPath();
  const started = Date.now();
  const { file, bytes, entries, target } = packageVsix({ out, build: !argv.includes('--no-build') });
  const files = entries.filter((entry) => !entry.name.endsWith('/'));
  console.log(
    `\n${path.relative(process.cwd(), file) || file}: ${formatBytes(bytes)} (${bytes} bytes), ${files.length} files`,
  );
  console.log(
    target
      ? `  a ${target} VSIX with the native kernels (${NATIVE_ADDON})`
      : '  universal (no native addon built: it trains on plain wasm)',
  );
  for (const [group, { files: count, size, compressed }] of summarize(files)) {
    console.log(
      `  ${group.padEnd(18)} ${String(count).padStart(4)} files  ${formatBytes(size).padStart(9)} -> ${formatBytes(compressed).padStart(9)}`,
    );
  }
  if (argv.includes('--smoke')) {
    await smokeTest(file, { keep: argv.includes('--keep'), log: (line) => console.log(line) });
    console.log('smoke test passed: trains from the unpacked VSIX (wasm, cpu) with no npm install');
  }
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`package: ${err instanceof Error ? err.message : err}`);
    process.exitCode = 1;
  });
}
