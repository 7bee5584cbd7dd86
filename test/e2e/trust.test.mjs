/**
 * Workspace trust as a user meets it in a real VS Code 1.100 workbench: decline trust for the
 * folder, and configs are still validated, but Train is disabled with the reason.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  REPO_ROOT,
  gotoWorkbench,
  launchBrowser,
  makeRunDir,
  newPage,
  screenshot,
  startCodeServer,
  workbenchUrl,
} from '../../scripts/vscode-test/code-server.mjs';
import { UI_TIMEOUT, codeLens, copyFixtureWorkspace, openFile } from '../../scripts/vscode-test/workbench.mjs';

test(
  'VS Code UI: in an untrusted workspace configs are validated but Train is disabled with the reason',
  { timeout: 300_000 },
  async () => {
    const runDir = makeRunDir('ui-trust');
    const folder = copyFixtureWorkspace(runDir.dir);
    let server;
    let browser;
    let page;
    try {
      server = await startCodeServer({
        folder,
        userDataDir: join(runDir.dir, 'user-data'),
        extensionsDir: join(runDir.dir, 'extensions'),
        runDir,
        workspaceTrust: true,
      });
      browser = await launchBrowser({ home: runDir.home });
      page = await newPage(browser, server.baseUrl);
      await gotoWorkbench(page, workbenchUrl(server, { folder, extensionDevelopmentPath: REPO_ROOT }));

      const decline = page.getByRole('button', { name: /No, I don't trust the authors/ });
      await decline.waitFor({ timeout: 60_000 });
      await screenshot(page, 'ui-trust-prompt.png');
      await decline.click();
      await page
        .locator('.explorer-folders-view .monaco-list-row', { hasText: 'tiny.peft.json' })
        .waitFor({ timeout: 60_000 });

      await openFile(page, 'tiny.peft.json');
      const blocked = codeLens(page, 'Train: disabled in an untrusted workspace');
      await blocked.waitFor({ timeout: 60_000 });
      assert.equal(await codeLens(page, /^\s*Train\s*$/).count(), 0, 'no plain Train lens');

      await openFile(page, 'semantic-errors.peft.json');
      await page.keyboard.press('F1');
      await page.locator('.quick-input-widget input').fill('>View: Focus Problems');
      await page
        .locator('.quick-input-widget .monaco-list-row', { hasText: 'View: Focus Problems' })
        .first()
        .waitFor({ timeout: UI_TIMEOUT });
      await page.keyboard.press('Enter');
      await page
        .locator('.markers-panel .monaco-list-row', { hasText: 'attention heads do not divide the hidden size' })
        .waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'ui-untrusted.png');
    } catch (err) {
      if (page) await screenshot(page, 'ui-trust-failure.png');
      throw err;
    } finally {
      await browser?.close().catch(() => {});
      await server?.stop();
      runDir.remove();
    }
  },
);
