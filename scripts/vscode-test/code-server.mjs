/**
 * Shared helpers for driving a real VS Code (code-server 4.100.3 = VS Code 1.100.3) from Node:
 * start/stop the server on 127.0.0.1, install a VSIX, build workbench URLs, launch Debian's
 * Chromium through playwright-core. Used by launcher.mjs (the "VS Code executable" for
 * @vscode/test-electron) and by the Playwright UI tests in test/e2e/.
 *
 * Install the server first: `npm run test:vscode:install` (scripts/vscode-test/install.sh).
 * Facts behind every choice here: shared/design/real-vscode-tests.md.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { format } from 'node:util';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CODE_SERVER_DIR = process.env.PEFT_LAB_CODE_SERVER_DIR
  ? resolve(process.env.PEFT_LAB_CODE_SERVER_DIR)
  : join(REPO_ROOT, '.vscode-test', 'code-server');
export const ARTIFACTS_DIR = join(REPO_ROOT, '.test-artifacts');
export const CHROMIUM_PATH = process.env.PEFT_LAB_CHROMIUM || '/usr/bin/chromium';
export const FIXTURE_WORKSPACE = join(REPO_ROOT, 'test', 'fixtures', 'workspace');

const HOST = '127.0.0.1';
const INSTALL_HINT = 'run `npm run test:vscode:install` (bash scripts/vscode-test/install.sh) first';

/** Settings for a quiet, deterministic workbench; written only into a user-data dir that has none. */
const DEFAULT_SETTINGS = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'git.enabled': false,
  'chat.commandCenter.enabled': false,
};

export function log(...args) {
  console.log('[vscode-test]', ...args);
}

/** Path of code-server's Node entry point, or a clear error saying how to install it. */
export function codeServerEntry() {
  const entry = join(CODE_SERVER_DIR, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  if (!existsSync(entry) || !existsSync(join(CODE_SERVER_DIR, '.installed'))) {
    throw new Error(`code-server is not installed in ${CODE_SERVER_DIR}: ${INSTALL_HINT}`);
  }
  return entry;
}

/** A port the kernel just handed out on 127.0.0.1 (closed again before it is returned). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * A fresh scratch folder (short, under the system temp dir: VS Code puts IPC sockets in TMPDIR and
 * socket paths are limited to ~107 bytes) holding a private HOME and TMPDIR.
 */
export function makeRunDir(label) {
  const dir = mkdtempSync(join(os.tmpdir(), `peft-vsc-${label}-`));
  for (const sub of ['home', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  return {
    dir,
    home: join(dir, 'home'),
    tmp: join(dir, 'tmp'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The environment for code-server: ours minus what would tie it to another VS Code instance. */
function serverEnv(runDir, extra = {}) {
  const env = {};
  for (const [key, value] of Object.entries({ ...process.env, ...extra })) {
    if (value === undefined) continue;
    if (/^(ELECTRON_|VSCODE_IPC_HOOK|VSCODE_GIT_|VSCODE_INJECTION|VSCODE_CLI|VSCODE_PROXY_URI|CODE_SERVER_)/.test(key))
      continue;
    env[key] = value;
  }
  env.HOME = runDir.home;
  env.TMPDIR = runDir.tmp;
  env.XDG_CONFIG_HOME = join(runDir.home, '.config');
  env.XDG_DATA_HOME = join(runDir.home, '.local', 'share');
  env.XDG_CACHE_HOME = join(runDir.home, '.cache');
  delete env.XDG_RUNTIME_DIR;
  // No extension gallery: code-server would otherwise query open-vsx.org at start (the only network
  // here is 127.0.0.1). Extensions come from a VSIX or the development path.
  env.EXTENSIONS_GALLERY = '{}';
  return env;
}

function writeDefaultSettings(userDataDir, overrides = {}) {
  if (!existsSync(join(userDataDir, 'User', 'settings.json'))) writeUserSettings(userDataDir, overrides);
}

/** Writes the user settings a test workbench starts with: the harness's defaults plus `overrides` (e.g. a colour theme). */
export function writeUserSettings(userDataDir, overrides = {}) {
  const file = join(userDataDir, 'User', 'settings.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ ...DEFAULT_SETTINGS, ...overrides }, null, 2)}\n`);
}

/** With workspace trust on, VS Code asks at start-up whether to trust the folder, as for a user. */
const TRUST_SETTINGS = { 'security.workspace.trust.enabled': true, 'security.workspace.trust.startupPrompt': 'always' };

/** Runs code-server's CLI once (e.g. --install-extension) and resolves with its output. */
export function runCodeServerCli(args, { runDir, userDataDir, extensionsDir, timeoutMs = 120_000 }) {
  const entry = codeServerEntry();
  const fullArgs = [entry, '--user-data-dir', userDataDir, '--extensions-dir', extensionsDir, ...args];
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, fullArgs, {
      env: serverEnv(runDir),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      killGroup(child.pid, 'SIGKILL');
      reject(new Error(`code-server ${args.join(' ')} did not finish within ${timeoutMs / 1000} s:\n${output}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolveRun(output);
      else reject(new Error(`code-server ${args.join(' ')} exited with ${code}:\n${output}`));
    });
  });
}

/** Installs a .vsix into extensionsDir with code-server's own CLI. */
export async function installVsix(vsixPath, opts) {
  const vsix = resolve(vsixPath);
  if (!existsSync(vsix)) throw new Error(`VSIX not found: ${vsix}`);
  mkdirSync(opts.extensionsDir, { recursive: true });
  const output = await runCodeServerCli(['--force', '--install-extension', vsix], opts);
  log(`installed ${vsix}: ${output.trim().split('\n').pop()}`);
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

/**
 * Whether any live (non-zombie) process is left in the group. kill(-pgid, 0) alone also counts
 * zombies, and orphans re-parented to this machine's init can stay zombies for a minute.
 */
function groupAlive(pgid) {
  if (!killGroup(pgid, 0)) return false;
  let pids;
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return true; // no /proc: trust kill(0)
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') return true;
    } catch {
      /* the process just went away */
    }
  }
  return false;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts code-server in a new session/process group (spawn's `detached` calls setsid()), bound to
 * 127.0.0.1 on a free port, with its own HOME and TMPDIR, and waits until /healthz answers.
 *
 * @param {object} o
 * @param {string} o.folder          workspace folder to open
 * @param {string} o.userDataDir
 * @param {string} o.extensionsDir
 * @param {{dir:string,home:string,tmp:string}} o.runDir  from makeRunDir()
 * @param {Record<string,string|undefined>} [o.env]  extra environment (reaches the extension host)
 * @param {(line:string)=>void} [o.onOutput]          each line code-server prints
 * @param {number} [o.startTimeoutMs]
 * @param {boolean} [o.workspaceTrust]  keep VS Code's workspace trust on (default off: every folder is trusted)
 */
export async function startCodeServer({
  folder,
  userDataDir,
  extensionsDir,
  runDir,
  env = {},
  onOutput,
  startTimeoutMs = 60_000,
  workspaceTrust = false,
}) {
  const entry = codeServerEntry();
  mkdirSync(userDataDir, { recursive: true });
  mkdirSync(extensionsDir, { recursive: true });
  writeDefaultSettings(userDataDir, workspaceTrust ? TRUST_SETTINGS : {});
  const port = await freePort();
  const args = [
    entry,
    '--auth',
    'none',
    '--bind-addr',
    `${HOST}:${port}`,
    '--config',
    join(runDir.dir, 'config.yaml'),
    '--disable-telemetry',
    '--disable-update-check',
    ...(workspaceTrust ? [] : ['--disable-workspace-trust']),
    '--disable-getting-started-override',
    '--ignore-last-opened',
    '--user-data-dir',
    userDataDir,
    '--extensions-dir',
    extensionsDir,
    folder,
  ];
  writeFileSync(join(runDir.dir, 'config.yaml'), '');
  const child = spawn(process.execPath, args, {
    cwd: folder,
    env: serverEnv(runDir, env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const recent = [];
  const onLine = (line) => {
    recent.push(line);
    if (recent.length > 200) recent.shift();
    onOutput?.(line);
  };
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    stream.on('end', () => buf && onLine(buf));
  }
  let exited = null;
  const whenExited = new Promise((r) => child.on('exit', (code, signal) => r((exited = { code, signal }))));

  let stopped = false;
  const lastResort = () => killGroup(child.pid, 'SIGKILL');
  process.on('exit', lastResort);

  const server = {
    port,
    pid: child.pid,
    baseUrl: `http://${HOST}:${port}`,
    /** Recent output lines of the server (for error messages). */
    recentOutput: () => recent.join('\n'),
    get exited() {
      return exited;
    },
    /** Resolves with `{ code, signal }` when the server process exits. */
    whenExited,
    /** SIGTERM to the whole process group, SIGKILL after graceMs; resolves when the group is gone. */
    async stop(graceMs = 5_000) {
      if (stopped) return;
      stopped = true;
      process.off('exit', lastResort);
      if (!killGroup(child.pid, 'SIGTERM')) return;
      const deadline = Date.now() + graceMs;
      while (groupAlive(child.pid) && Date.now() < deadline) await sleep(100);
      if (groupAlive(child.pid)) {
        killGroup(child.pid, 'SIGKILL');
        const killDeadline = Date.now() + 5_000;
        while (groupAlive(child.pid) && Date.now() < killDeadline) await sleep(50);
      }
    },
  };

  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (exited) {
      await server.stop();
      throw new Error(
        `code-server exited (${exited.code ?? exited.signal}) before it was ready:\n${server.recentOutput()}`,
      );
    }
    if (await healthy(server.baseUrl)) break;
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(
        `code-server did not answer on ${server.baseUrl}/healthz within ${startTimeoutMs / 1000} s:\n${server.recentOutput()}`,
      );
    }
    await sleep(150);
  }
  return server;
}

async function healthy(baseUrl) {
  try {
    const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
    return res.ok;
  } catch {
    return false;
  }
}

/** A vscode-remote:// URI for an absolute path on the server (what the workbench payload wants). */
export function remoteUri(server, absPath) {
  return `vscode-remote://${HOST}:${server.port}${resolve(absPath)}`;
}

/**
 * The workbench URL for `folder` (or a `.code-workspace` file), with the extension-development
 * payload when given: `{ extensionDevelopmentPath, extensionTestsPath }` as absolute local paths.
 *
 * `labelExtensionHostConsole` adds a `debugId` to the payload. Then the workbench prints the
 * extension host's console (the test reporter's output) to the page console with an
 * "[Extension Host]" label, so it can be told apart from the workbench's own log lines; without it
 * both look alike. No debugger is involved (that would need inspect-extensions too).
 */
export function workbenchUrl(
  server,
  { folder, workspace, extensionDevelopmentPath, extensionTestsPath, labelExtensionHostConsole = false } = {},
) {
  const params = [];
  if (workspace) params.push(`workspace=${encodeURIComponent(resolve(workspace))}`);
  else if (folder) params.push(`folder=${encodeURIComponent(resolve(folder))}`);
  else params.push('ew=true'); // an empty window
  const payload = [];
  if (extensionDevelopmentPath) payload.push(['extensionDevelopmentPath', remoteUri(server, extensionDevelopmentPath)]);
  if (extensionTestsPath) payload.push(['extensionTestsPath', remoteUri(server, extensionTestsPath)]);
  if (labelExtensionHostConsole) payload.push(['debugId', 'peft-lab-tests']);
  if (payload.length) params.push(`payload=${encodeURIComponent(JSON.stringify(payload))}`);
  return `${server.baseUrl}/${params.length ? `?${params.join('&')}` : ''}`;
}

const EXTENSION_HOST_PREFIX = '%c[Extension Host] %c'; // then the first argument, if a string
const EXTENSION_HOST_PREFIX_NONSTRING = '%c[Extension Host]%'; // first argument was not a string

/**
 * The text of a page-console message that the extension host printed (see
 * `labelExtensionHostConsole` above), formatted the way Node's console would (mocha's reporters
 * use printf-style %s/%d); undefined for the workbench's own messages.
 * The workbench logs `['%c[Extension Host] %c' + arg0, 'color: blue', 'color: ', ...rest]`.
 */
export async function extensionHostConsoleText(msg) {
  const handles = msg.args();
  if (handles.length === 0) return undefined;
  const value = (h) => h.jsonValue().catch(() => '[unserializable]');
  const first = await value(handles[0]);
  if (typeof first !== 'string') return undefined;
  if (first.startsWith(EXTENSION_HOST_PREFIX)) {
    const rest = await Promise.all(handles.slice(3).map(value));
    return format(first.slice(EXTENSION_HOST_PREFIX.length), ...rest);
  }
  if (first === EXTENSION_HOST_PREFIX_NONSTRING) {
    const rest = await Promise.all(handles.slice(2).map(value));
    return format(...rest);
  }
  return undefined;
}

/** playwright-core: the project's devDependency, else the copy install.sh put beside code-server. */
export function loadPlaywright() {
  for (const base of [join(REPO_ROOT, 'package.json'), join(CODE_SERVER_DIR, 'package.json')]) {
    try {
      return createRequire(base)('playwright-core');
    } catch {
      /* try the next one */
    }
  }
  throw new Error(`playwright-core not found: run \`npm install\` or ${INSTALL_HINT}`);
}

/** Headless Debian Chromium with its own HOME; no traffic beyond 127.0.0.1 of its own accord. */
export async function launchBrowser({ home }) {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`${CHROMIUM_PATH} not found: ${INSTALL_HINT}`);
  const { chromium } = loadPlaywright();
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    env: { ...process.env, HOME: home },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      '--disable-features=Translate,MediaRouter,OptimizationHints',
    ],
  });
}

/**
 * A 1400x900 page whose requests may only go to `baseUrl` (anything else is aborted and reported
 * once per origin: the workbench must not reach out of 127.0.0.1).
 */
export async function newPage(browser, baseUrl) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const reported = new Set();
  await context.route(
    (url) => url.origin !== new URL(baseUrl).origin && (url.protocol === 'http:' || url.protocol === 'https:'),
    (route) => {
      const { origin } = new URL(route.request().url());
      if (!reported.has(origin)) {
        reported.add(origin);
        log(`blocked a request to ${origin} (only ${baseUrl} is allowed)`);
      }
      return route.abort('blockedbyclient');
    },
  );
  return context.newPage();
}

/** Navigates `page` to `url` and waits for the workbench to render. */
export async function gotoWorkbench(page, url, { timeoutMs = 90_000 } = {}) {
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  try {
    await page.waitForSelector('.monaco-workbench', { timeout: timeoutMs });
  } catch (err) {
    throw new Error(
      `the VS Code workbench (.monaco-workbench) did not appear within ${timeoutMs / 1000} s at ${url}: ${err.message}`,
    );
  }
}

/** Saves a full-page screenshot into .test-artifacts/ and returns its path (never throws). */
export async function screenshot(page, name) {
  try {
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const file = join(ARTIFACTS_DIR, name.endsWith('.png') ? name : `${name}.png`);
    await page.screenshot({ path: file, timeout: 15_000 });
    return file;
  } catch (err) {
    log(`screenshot ${name} failed: ${err.message}`);
    return undefined;
  }
}
