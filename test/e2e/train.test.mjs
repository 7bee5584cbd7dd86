/**
 * The editor path as a user meets it, in a real VS Code 1.100 workbench with PEFT Lab installed
 * from its VSIX (as a user installs it): open a config, see the Train lens, click it, watch the
 * status bar and the progress notification, see the run finish; then type a bad value and find it
 * in the Problems panel. Screenshots go to .test-artifacts/.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { screenshot } from '../../scripts/vscode-test/code-server.mjs';
import {
  ExtensionUiTest,
  UI_TIMEOUT,
  codeLens,
  copyFixtureWorkspace,
  openFile,
  runCommand,
} from '../../scripts/vscode-test/workbench.mjs';

const TRAIN_TIMEOUT = 180_000;

/** A copy of the fixture workspace, with a config big enough that a person could watch it train. */
function workspaceCopy(dir) {
  const folder = copyFixtureWorkspace(dir);
  const config = JSON.parse(readFileSync(join(folder, 'tiny.peft.json'), 'utf8'));
  config.name = 'watch';
  config.model.scratch = { ...config.model.scratch, layers: 2, hiddenSize: 64, heads: 4, intermediateSize: 128 };
  config.method = { type: 'adamix', bottleneck: 16 };
  config.training = { ...config.training, epochs: 60, logEvery: 2 };
  writeFileSync(join(folder, 'watch.peft.json'), JSON.stringify(config, null, 2) + '\n');
  return folder;
}

test(
  'VS Code UI: Train from the CodeLens, watch it, see it finish; a bad value shows in Problems',
  { timeout: 600_000 },
  async () => {
    const ui = new ExtensionUiTest('ui-train', 'peft-lab-under-test.vsix');
    const folder = workspaceCopy(ui.dir);
    await ui.run({ folder, file: 'watch.peft.json', failureShot: 'ui-train-failure.png' }, async (page) => {
      await openFile(page, 'watch.peft.json');
      const train = codeLens(page, 'Train');
      await train.waitFor({ timeout: 60_000 });
      assert.match(await train.innerText(), /^\s*Train\s*$/);
      await screenshot(page, 'ui-train-lens.png');

      await train.click();
      const status = page.locator('.statusbar-item', { hasText: /watch: step \d+\/\d+/ }).first();
      await status.waitFor({ timeout: 60_000 });
      assert.match(await status.innerText(), /watch: step \d+\/\d+ · loss \d+\.\d{4} · [\d.]+ ex\/s/);
      await page
        .locator('.notifications-toasts', { hasText: 'PEFT Lab: training watch.peft.json' })
        .waitFor({ timeout: UI_TIMEOUT });
      await codeLens(page, 'Stop').waitFor({ timeout: UI_TIMEOUT });
      await page.locator('.editor-actions [aria-label="Stop Training"]').first().waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'ui-training.png');

      const finished = page.locator('.notifications-toasts', { hasText: /watch\.peft\.json finished; best accuracy/ });
      await finished.waitFor({ timeout: TRAIN_TIMEOUT });
      await screenshot(page, 'ui-train-finished.png');
      const runs = readdirSync(join(folder, 'runs')).filter((d) => d.startsWith('watch-'));
      assert.equal(runs.length, 1);
      const runStatus = JSON.parse(readFileSync(join(folder, 'runs', runs[0], 'status.json'), 'utf8'));
      assert.equal(runStatus.state, 'finished');
      await codeLens(page, '1 run: latest finished').waitFor({ timeout: UI_TIMEOUT });
      assert.equal(await status.isVisible(), false, 'the status bar item goes when nothing trains');
      assert.equal(
        await page.locator('.editor-actions [aria-label="Stop Training"]').count(),
        0,
        'no Stop button when nothing trains',
      );

      // Type a bottleneck as large as the hidden size: the Problems panel names it.
      const lines = readFileSync(join(folder, 'watch.peft.json'), 'utf8').split('\n');
      const line = lines.findIndex((l) => l.includes('"bottleneck": 16'));
      const column = lines[line].indexOf('16') + 1;
      await page.locator('.editor-group-container.active .monaco-editor .view-lines').first().click();
      await page.keyboard.press('Control+G');
      await page.keyboard.type(`${line + 1}:${column}`);
      await page.keyboard.press('Enter');
      await page.keyboard.press('Shift+End');
      await page.keyboard.type('64');
      await runCommand(page, 'View: Focus Problems');
      const problem = page.locator('.markers-panel .monaco-list-row', {
        hasText: "bottleneck 64 must be smaller than the model's hidden size 64",
      });
      await problem.waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'ui-problems.png');
      // back at the top, where the lens sits: Train now says what stops it
      await page.locator('.editor-group-container.active .monaco-editor .view-lines').first().click();
      await page.keyboard.press('Control+Home');
      await codeLens(page, 'Train: fix 1 problem first').waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'ui-train-blocked.png');
    });
  },
);
