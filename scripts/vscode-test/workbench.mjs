/**
 * What a user does in the workbench, for the Playwright UI tests: install the extension and open a
 * workspace (ExtensionUiTest), open a file, run a command, find a CodeLens, look into a webview, and
 * start from a copy of the fixture workspace.
 */
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { packageVsix } from '../package.mjs';
import {
  ARTIFACTS_DIR,
  FIXTURE_WORKSPACE,
  gotoWorkbench,
  installVsix,
  launchBrowser,
  makeRunDir,
  newPage,
  screenshot,
  startCodeServer,
  workbenchUrl,
} from './code-server.mjs';

export const UI_TIMEOUT = 30_000;

/** The PEFT Lab view container in the side bar (it holds the Runs and the Queue views). */
export const PEFT_LAB_VIEW = '[id="workbench.view.extension.peftLab"]';

/** How Chromium logs a Content-Security-Policy violation (a webview's console reaches the page's). */
const CSP_VIOLATION = /Content Security Policy|Refused to (load|apply|execute)/i;

/**
 * One UI test of the extension as a user gets it: the VSIX packaged from this checkout, installed
 * into code-server with user data and extensions of its own, and the workbench in a headless
 * browser. Create it, prepare the workspace under `dir` (and settings under `userDataDir`), then
 * `run` the test's steps.
 */
export class ExtensionUiTest {
  /** Content-Security-Policy violations logged so far (the tests that open webviews expect none). */
  cspViolations = [];
  #atEnd = [];

  /** `label` names the scratch folder; `vsixName` the package, under .test-artifacts/ (one per test file: they may run at once). */
  constructor(label, vsixName) {
    this.runDir = makeRunDir(label);
    this.vsix = join(ARTIFACTS_DIR, vsixName);
    mkdirSync(ARTIFACTS_DIR, { recursive: true }); // a UI test run alone comes before anything else makes it
    packageVsix({ out: this.vsix });
    this.userDataDir = join(this.runDir.dir, 'user-data');
  }

  /** The scratch folder, removed after the test. */
  get dir() {
    return this.runDir.dir;
  }

  /** Calls `stop` first when the test ends, e.g. to kill a process that writes into the workspace before it is removed. */
  atEnd(stop) {
    this.#atEnd.push(stop);
  }

  /**
   * Installs the VSIX, opens `folder` in the workbench and waits for the explorer to list `file`
   * (the workspace is loaded), then runs `steps(page)`. `onConsole(text)` sees the page's console
   * from the start. On failure the page is saved as `failureShot`; either way the browser and
   * code-server end and the scratch folder and the VSIX are removed.
   */
  async run({ folder, file, failureShot, onConsole }, steps) {
    const dirs = { userDataDir: this.userDataDir, extensionsDir: join(this.dir, 'extensions'), runDir: this.runDir };
    let server;
    let browser;
    let page;
    try {
      await installVsix(this.vsix, dirs);
      server = await startCodeServer({ folder, ...dirs });
      browser = await launchBrowser({ home: this.runDir.home });
      page = await newPage(browser, server.baseUrl);
      page.on('console', (msg) => {
        const text = msg.text();
        onConsole?.(text);
        if (CSP_VIOLATION.test(text)) this.cspViolations.push(text);
      });
      await gotoWorkbench(page, workbenchUrl(server, { folder }));
      await page.locator('.explorer-folders-view .monaco-list-row', { hasText: file }).waitFor({ timeout: 60_000 });
      await steps(page);
    } catch (err) {
      if (page) await screenshot(page, failureShot);
      throw err;
    } finally {
      for (const stop of this.#atEnd) stop();
      await browser?.close().catch(() => {});
      await server?.stop();
      this.runDir.remove();
      if (existsSync(this.vsix)) rmSync(this.vsix);
    }
  }
}

/** Opens the PEFT Lab container from the activity bar, and moves the pointer off the bar so its hover covers nothing. */
export async function showPeftLabView(page) {
  await page.locator('.activitybar .action-item a[aria-label^="PEFT Lab"]').click();
  await page.mouse.move(900, 450);
}

/** The content of the visible webview (VS Code nests it: outer iframe, then #active-frame). */
export function webviewContent(page) {
  return page.frameLocator('iframe.webview.ready').last().frameLocator('#active-frame');
}

/** A copy of the fixture workspace (without its runs) under `dir`; returns its path. */
export function copyFixtureWorkspace(dir) {
  const folder = join(dir, 'workspace');
  cpSync(FIXTURE_WORKSPACE, folder, { recursive: true, filter: (src) => !src.includes(`${FIXTURE_WORKSPACE}/runs`) });
  return folder;
}

/** Quick Open (Ctrl+P) the file `name` and wait for its editor tab. */
export async function openFile(page, name) {
  const input = page.locator('.quick-input-widget input');
  await page.keyboard.press('Control+P');
  await input.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  await input.fill(name);
  await page
    .locator('.quick-input-widget .monaco-list-row', { hasText: name })
    .first()
    .waitFor({ timeout: UI_TIMEOUT });
  await page.keyboard.press('Enter');
  await page.locator('.editor-group-container.active .tab.active', { hasText: name }).waitFor({ timeout: UI_TIMEOUT });
}

/** Runs a command by its title from the command palette (F1). */
export async function runCommand(page, title) {
  const input = page.locator('.quick-input-widget input');
  await page.keyboard.press('F1');
  await input.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  await input.fill(`>${title}`);
  await page
    .locator('.quick-input-widget .monaco-list-row', { hasText: title })
    .first()
    .waitFor({ timeout: UI_TIMEOUT });
  await page.keyboard.press('Enter');
}

/** The active editor's CodeLens whose text matches. */
export function codeLens(page, text) {
  return page
    .locator('.editor-group-container.active .monaco-editor .codelens-decoration a', { hasText: text })
    .first();
}
