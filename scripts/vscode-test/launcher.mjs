#!/usr/bin/env node
/**
 * A stand-in "VS Code executable" for @vscode/test-electron (`useInstallation: { fromPath }` in
 * .vscode-test.mjs points at launcher.sh, which execs this file).
 *
 * test-electron cannot download desktop VS Code here (no internet), so this takes the command line
 * it would give VS Code and runs the same tests in a real VS Code 1.100.3 served by code-server on
 * 127.0.0.1, shown in headless Debian Chromium through playwright-core:
 *
 *   --extensionDevelopmentPath=P   loaded through the workbench URL's payload (vscode-remote://)
 *   --extensionTestsPath=T         the test runner module (test-cli's runner.cjs); run by the
 *                                  extension host, result reported via window.codeAutomationExit
 *   --user-data-dir=U, --extensions-dir=E   handed to code-server
 *   --disable-extensions           a fresh, empty extensions dir for this run
 *   FOLDER | X.code-workspace      the workspace opened in the window
 *   --no-sandbox, --disable-gpu-sandbox, --disable-updates, --skip-welcome,
 *   --skip-release-notes, --disable-workspace-trust, ...   desktop-only switches: ignored
 *
 * Environment (all optional):
 *   PEFT_LAB_TEST_VSIX=path.vsix   install this VSIX (code-server --install-extension) into a fresh
 *                                  extensions dir of this run and test it instead of extensionDevelopmentPath
 *                                  (which is replaced by an empty placeholder extension: the web
 *                                  workbench runs extensionTestsPath only in development mode)
 *   PEFT_LAB_TEST_TIMEOUT_S        whole run, default 900
 *   PEFT_LAB_TEST_VERBOSE=1        also print code-server's own log and the workbench console
 *
 * Everything the extension host prints (the mocha reporter) goes to stdout. On failure a
 * screenshot and the logs go to .test-artifacts/. The exit code is the tests' (0 = all passed).
 */
import { existsSync, mkdirSync, mkdtempSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ARTIFACTS_DIR,
  extensionHostConsoleText,
  gotoWorkbench,
  installVsix,
  launchBrowser,
  log,
  makeRunDir,
  newPage,
  screenshot,
  startCodeServer,
  workbenchUrl,
} from './code-server.mjs';

const VALUE_OPTIONS = new Set(['extensionDevelopmentPath', 'extensionTestsPath', 'user-data-dir', 'extensions-dir']);
const FLAG_OPTIONS = new Set(['disable-extensions', 'verbose']);
/** Desktop options that take a value (as `--name value` too), ignored here with their value. */
const IGNORED_VALUE_OPTIONS = new Set([
  'locale',
  'profile',
  'log',
  'sync',
  'inspect-extensions',
  'inspect-brk-extensions',
  'crash-reporter-directory',
  'enable-proposed-api',
]);

/** Parses test-electron's arguments (both `--name=value` and `--name value`). */
export function parseArgs(argv) {
  const out = { extensionDevelopmentPath: [], positional: [], ignored: [], flags: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) {
      out.positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (VALUE_OPTIONS.has(name)) {
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      if (name === 'extensionDevelopmentPath') out.extensionDevelopmentPath.push(resolve(value));
      else out[name] = resolve(value);
    } else if (FLAG_OPTIONS.has(name)) {
      out.flags.add(name);
    } else if (
      IGNORED_VALUE_OPTIONS.has(name) &&
      eq < 0 &&
      argv[i + 1] !== undefined &&
      !argv[i + 1].startsWith('--')
    ) {
      out.ignored.push(`${arg} ${argv[++i]}`);
    } else {
      out.ignored.push(arg);
    }
  }
  return out;
}

function envSeconds(name, fallback) {
  const n = Number(process.env[name]);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

async function main() {
  const started = Date.now();
  const args = parseArgs(process.argv.slice(2));
  const verbose = process.env.PEFT_LAB_TEST_VERBOSE === '1' || args.flags.has('verbose');
  const timeoutS = envSeconds('PEFT_LAB_TEST_TIMEOUT_S', 900);
  const vsix = process.env.PEFT_LAB_TEST_VSIX ? resolve(process.env.PEFT_LAB_TEST_VSIX) : undefined;

  if (!args.extensionTestsPath) throw new Error('no --extensionTestsPath given: nothing to run');
  if (args.ignored.length && verbose) log(`ignoring desktop-only arguments: ${args.ignored.join(' ')}`);
  if (args.extensionDevelopmentPath.length > 1) {
    log(`the web workbench loads one development extension; using ${args.extensionDevelopmentPath.at(-1)}`);
  }
  const target = args.positional[0] ? resolve(args.positional[0]) : undefined;
  if (target && !existsSync(target)) throw new Error(`workspace not found: ${target}`);
  const isWorkspaceFile = target?.endsWith('.code-workspace') && statSync(target).isFile();
  const folder = isWorkspaceFile ? undefined : target;
  // Private HOME/TMPDIR for code-server and Chromium; with no folder, the server starts in its tmp.
  const runDir = makeRunDir('it');

  const userDataDir = args['user-data-dir'] ?? join(runDir.dir, 'user-data');
  // A fresh, empty extensions dir for --disable-extensions, and for a VSIX (so the installed copy
  // does not linger in test-electron's shared .vscode-test/extensions and shadow later runs).
  const extensionsDir =
    args.flags.has('disable-extensions') || vsix
      ? mkdtempSync(join(runDir.dir, 'extensions-'))
      : (args['extensions-dir'] ?? join(runDir.dir, 'extensions'));
  mkdirSync(ARTIFACTS_DIR, { recursive: true });

  const serverLog = [];
  const consoleLog = [];
  let server;
  let browser;
  let page;
  let printing = Promise.resolve(); // the extension host's output, printed in order

  // Whatever ends the run first wins: the tests' result, a crash, a timeout, a signal.
  let finish;
  const outcome = new Promise((r) => (finish = r));
  const SIGNAL_CODES = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };
  for (const signal of Object.keys(SIGNAL_CODES)) {
    // Ctrl+C reaches us as SIGINT from test-electron; a kill as SIGTERM.
    process.once(signal, () => finish({ code: SIGNAL_CODES[signal], reason: `interrupted by ${signal}`, quiet: true }));
  }
  const overall = setTimeout(
    () =>
      finish({
        code: 1,
        reason: `TIMEOUT: no test result within ${timeoutS} s (set PEFT_LAB_TEST_TIMEOUT_S to change)`,
      }),
    timeoutS * 1000,
  );

  const run = async () => {
    if (vsix) {
      log(`installing ${vsix} into ${extensionsDir}`);
      await installVsix(vsix, { runDir, userDataDir, extensionsDir });
    }
    server = await startCodeServer({
      folder: folder ?? runDir.tmp,
      userDataDir,
      extensionsDir,
      runDir,
      onOutput: (line) => {
        serverLog.push(line);
        if (verbose) console.log(`[code-server] ${line}`);
      },
    });
    server.whenExited.then((e) =>
      finish({ code: 1, reason: `code-server exited (${e.code ?? e.signal}) during the tests` }),
    );
    log(`code-server ${server.baseUrl} (pid ${server.pid}) ready after ${seconds(started)} s`);

    browser = await launchBrowser({ home: runDir.home });
    page = await newPage(browser, server.baseUrl);
    page.on('console', (msg) => {
      consoleLog.push(`[${msg.type()}] ${msg.text()}`);
      if (verbose) console.log(`[workbench ${msg.type()}] ${msg.text()}`);
      printing = printing
        .then(() => extensionHostConsoleText(msg))
        .then((text) => {
          if (text === undefined) return;
          countResults(text);
          if (msg.type() === 'error') process.stderr.write(`${text}\n`);
          else process.stdout.write(`${text}\n`);
        })
        .catch(() => {});
    });
    page.on('pageerror', (err) => consoleLog.push(`[pageerror] ${err.stack ?? err}`));
    page.on('crash', () => finish({ code: 1, reason: 'the workbench page crashed' }));
    // The workbench calls this when the extension host's test runner is done (0 = passed).
    await page.exposeFunction('codeAutomationExit', (code) => finish({ code: Number(code) }));

    const url = workbenchUrl(server, {
      folder,
      workspace: isWorkspaceFile ? target : undefined,
      extensionDevelopmentPath: vsix ? placeholderExtension(runDir.dir) : args.extensionDevelopmentPath.at(-1),
      extensionTestsPath: args.extensionTestsPath,
      labelExtensionHostConsole: true,
    });
    if (verbose) log(`opening ${url}`);
    await gotoWorkbench(page, url);
    log(`workbench up after ${seconds(started)} s; running ${args.extensionTestsPath}`);
  };
  run().catch((err) => finish({ code: 1, reason: `ERROR: ${err.message}` }));

  const { code, reason, quiet } = await outcome;
  clearTimeout(overall);
  await Promise.race([printing, sleep(2_000)]);
  const exitCode = Number.isInteger(code) ? code : 1;
  if (reason) log(quiet ? reason : `FAILED: ${reason}`);
  if (exitCode !== 0 && !quiet) {
    if (page) log(`screenshot: ${await screenshot(page, 'integration-failure')}`);
    writeFileSync(join(ARTIFACTS_DIR, 'integration-code-server.log'), `${serverLog.join('\n')}\n`);
    writeFileSync(join(ARTIFACTS_DIR, 'integration-workbench-console.log'), `${consoleLog.join('\n')}\n`);
    log(`logs: .test-artifacts/integration-code-server.log, .test-artifacts/integration-workbench-console.log`);
  }
  await browser?.close().catch(() => {});
  await server?.stop();
  runDir.remove();
  log(`tests exited with code ${exitCode} after ${seconds(started)} s`);
  // mocha's "N passing / N failing" as the plain closing line CI reads.
  if (counts.seen) console.log(`integration: ${counts.passed} passed, ${counts.failed} failed`);
  process.exit(exitCode);
}

/**
 * The web workbench runs extensionTestsPath only in extension-development mode, which needs an
 * extensionDevelopmentPath. With a VSIX the extension under test is the installed one, so the
 * development path is this empty extension with an id of its own (it contributes nothing).
 */
function placeholderExtension(dir) {
  const ext = join(dir, 'placeholder-extension');
  mkdirSync(ext, { recursive: true });
  const manifest = {
    name: 'vsix-test-placeholder',
    publisher: 'peft-lab-tests',
    version: '0.0.0',
    engines: { vscode: '*' },
    description: 'Lets the tests of an installed VSIX run in extension-development mode.',
  };
  writeFileSync(join(ext, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return ext;
}

const counts = { seen: false, passed: 0, failed: 0 };
/** Picks mocha's summary ("  3 passing (1s)", "  1 failing") out of the extension host's output. */
function countResults(text) {
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, '');
  for (const m of plain.matchAll(/^\s*(\d+) (passing|failing)\b/gm)) {
    counts.seen = true;
    counts[m[2] === 'passing' ? 'passed' : 'failed'] += Number(m[1]);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const seconds = (since) => ((Date.now() - since) / 1000).toFixed(1);

if (process.argv[1] && realpathSync(resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url))) {
  main().catch((err) => {
    console.error('[vscode-test]', err);
    process.exit(1);
  });
}
