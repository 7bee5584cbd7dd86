/**
 * What the webview benchmarks (dashboard-render.mjs, experiments-table.mjs) share: a webview's
 * built bundle in a plain page, with a stand-in for acquireVsCodeApi and VS Code's dark theme
 * variables, opened in Debian's Chromium (headless, through playwright-core, as the UI tests use
 * it); and the JSON report they print.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { CHROMIUM_PATH, loadPlaywright } from '../scripts/vscode-test/code-server.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MEDIA = join(ROOT, 'media');
const HEIGHT = 900;

/** A numeric command-line option: `--runs 5000`. */
export function numberArg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** The variables VS Code's Dark Modern theme gives a webview, as far as the two pages use them. */
const DARK_THEME = {
  '--vscode-font-family': 'system-ui, sans-serif',
  '--vscode-font-size': '13px',
  '--vscode-foreground': '#cccccc',
  '--vscode-descriptionForeground': '#9d9d9d',
  '--vscode-editor-background': '#1f1f1f',
  '--vscode-list-hoverBackground': '#2a2d2e',
  '--vscode-list-activeSelectionBackground': '#04395e',
  '--vscode-focusBorder': '#0078d4',
  '--vscode-input-background': '#313131',
  '--vscode-charts-blue': '#3794ff',
  '--vscode-charts-orange': '#d18616',
  '--vscode-charts-green': '#89d185',
  '--vscode-charts-purple': '#b180d7',
  '--vscode-charts-red': '#f14c4c',
  '--vscode-charts-yellow': '#cca700',
  '--vscode-button-background': '#0078d4',
  '--vscode-button-foreground': '#ffffff',
};

/** Builds media/ first when the bundle is missing or `--build` is given (a stale bundle would measure old code). */
function ensureBuilt(bundle) {
  if (existsSync(join(MEDIA, `${bundle}.js`)) && !process.argv.includes('--build')) return;
  const built = spawnSync(process.execPath, [join(ROOT, 'esbuild.mjs')], { stdio: 'inherit' });
  if (built.status !== 0) process.exit(1);
}

/** The webview's page in `dir`: media/`bundle`.js and .css, the codicons, then `extraScripts`; returns its file URL. */
function writePage(dir, bundle, extraScripts) {
  for (const f of [`${bundle}.js`, `${bundle}.css`]) copyFileSync(join(MEDIA, f), join(dir, f));
  mkdirSync(join(dir, 'codicons'));
  for (const f of ['codicon.css', 'codicon.ttf']) copyFileSync(join(MEDIA, 'codicons', f), join(dir, 'codicons', f));
  const vars = Object.entries(DARK_THEME)
    .map(([k, v]) => `${k}: ${v};`)
    .join(' ');
  const scripts = [`${bundle}.js`, ...extraScripts].map((src) => `<script src="${src}"></script>`).join('');
  const html = `<!DOCTYPE html><html><head><meta charset="UTF-8">
<link rel="stylesheet" href="codicons/codicon.css" id="vscode-codicon-stylesheet">
<link rel="stylesheet" href="${bundle}.css">
<style>body { ${vars} }</style>
<script>
  window.posted = [];
  window.acquireVsCodeApi = () => ({ postMessage: (m) => window.posted.push(m), getState: () => undefined, setState: () => {} });
</script></head>
<body class="vscode-dark"><main id="app"></main>${scripts}</body></html>`;
  writeFileSync(join(dir, 'index.html'), html);
  return pathToFileURL(join(dir, 'index.html')).href;
}

/** Numbers to two decimals: what a millisecond timing is worth reporting. */
export function rounded(o) {
  return JSON.parse(JSON.stringify(o, (_k, v) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v)));
}

/**
 * Opens the `bundle` webview's page in a fresh headless Chromium, `width` pixels wide, runs
 * `measure(page)` and prints its report as JSON, framed by the benchmark's name, the browser and
 * the viewport before and the page's uncaught errors after (any error fails the run).
 * `prepare(dir)` may add files to the page's folder first (e.g. a script named in `extraScripts`).
 */
export async function benchWebview({ name, bundle, width, extraScripts = [], prepare }, measure) {
  ensureBuilt(bundle);
  const { chromium } = loadPlaywright();
  const dir = mkdtempSync(join(tmpdir(), `peft-${name}-bench-`));
  await prepare?.(dir);
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    env: { ...process.env, HOME: dir },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--no-first-run',
    ],
  });
  try {
    const page = await (await browser.newContext({ viewport: { width, height: HEIGHT } })).newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(writePage(dir, bundle, extraScripts));
    const report = await measure(page);
    console.log(
      JSON.stringify(
        {
          benchmark: name,
          browser: `Chromium ${browser.version()} (headless, no GPU)`,
          viewport: `${width}x${HEIGHT}`,
          ...report,
          pageErrors: errors,
        },
        null,
        2,
      ),
    );
    if (errors.length) process.exitCode = 1;
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
