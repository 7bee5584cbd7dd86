/**
 * UI smoke test through a real VS Code 1.100 workbench (code-server on 127.0.0.1, headless Debian
 * Chromium via playwright-core): open README.md from the fixture workspace with the command
 * palette and check the editor shows it. Screenshot: .test-artifacts/ui-smoke.png.
 *
 *   npm run test:ui          (node --test test/e2e/; install first: npm run test:vscode:install)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  FIXTURE_WORKSPACE,
  gotoWorkbench,
  launchBrowser,
  makeRunDir,
  newPage,
  screenshot,
  startCodeServer,
  workbenchUrl,
} from '../../scripts/vscode-test/code-server.mjs';

const UI_TIMEOUT = 30_000;

/** The text of the active editor as a person sees it (Monaco renders spaces as U+00A0). */
async function visibleEditorText(page) {
  const text = await page.locator('.editor-group-container.active .monaco-editor .view-lines').first().innerText();
  return text.replace(/\u00a0/g, ' ');
}

test('VS Code UI: open README.md from the command palette', { timeout: 240_000 }, async () => {
  const runDir = makeRunDir('ui');
  let server;
  let browser;
  let page;
  try {
    server = await startCodeServer({
      folder: FIXTURE_WORKSPACE,
      userDataDir: join(runDir.dir, 'user-data'),
      extensionsDir: join(runDir.dir, 'extensions'),
      runDir,
    });
    browser = await launchBrowser({ home: runDir.home });
    page = await newPage(browser, server.baseUrl);
    await gotoWorkbench(page, workbenchUrl(server, { folder: FIXTURE_WORKSPACE }));

    // The Explorer lists the workspace once the workbench has restored: keybindings work by then.
    await page
      .locator('.explorer-folders-view .monaco-list-row', { hasText: 'README.md' })
      .waitFor({ timeout: 60_000 });

    // F1 → "Go to File..." → README.md
    const input = page.locator('.quick-input-widget input');
    await page.keyboard.press('F1');
    await input.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await input.fill('>Go to File');
    await page
      .locator('.quick-input-widget .monaco-list-row', { hasText: 'Go to File' })
      .first()
      .waitFor({ timeout: UI_TIMEOUT });
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('.quick-input-widget input')?.value === '', undefined, {
      timeout: UI_TIMEOUT,
    });
    await input.fill('README.md');
    await page
      .locator('.quick-input-widget .monaco-list-row', { hasText: 'README.md' })
      .first()
      .waitFor({ timeout: UI_TIMEOUT });
    await page.keyboard.press('Enter');

    // The editor tab is README.md and the editor shows the file's first lines.
    await page
      .locator('.editor-group-container.active .tab.active', { hasText: 'README.md' })
      .waitFor({ timeout: UI_TIMEOUT });
    const firstLine = readFileSync(join(FIXTURE_WORKSPACE, 'README.md'), 'utf8').split('\n')[0];
    await page.waitForFunction(
      (expected) => {
        const lines = document.querySelector('.editor-group-container.active .monaco-editor .view-lines');
        return lines?.textContent?.replace(/\u00a0/g, ' ').includes(expected);
      },
      firstLine,
      { timeout: UI_TIMEOUT },
    );
    const text = await visibleEditorText(page);
    assert.match(text, /# PEFT Lab test workspace/);
    assert.match(text, /real-VS Code tests/);
    assert.equal(await page.locator('.quick-input-widget input').isVisible(), false, 'quick input still open');

    const file = await screenshot(page, 'ui-smoke.png');
    assert.ok(file, 'screenshot not written');
  } catch (err) {
    if (page) await screenshot(page, 'ui-smoke-failure.png');
    throw err;
  } finally {
    await browser?.close().catch(() => {});
    await server?.stop();
    runDir.remove();
  }
});
