/**
 * The Runs sidebar as a user meets it, in a real VS Code 1.100 workbench with PEFT Lab installed
 * from its VSIX: open the PEFT Lab view from the activity bar, see the runs of a workspace (one
 * trained with the CLI, one corrupt), expand a run to its checkpoints, hover it for its summary,
 * run context-menu actions (Open Config, Copy Path, Delete with its confirmation), and watch a run
 * started from the CLI appear live with a spinner and end as stopped. Screenshots go to
 * .test-artifacts/ui-sidebar-*.png.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, screenshot } from '../../scripts/vscode-test/code-server.mjs';
import {
  ExtensionUiTest,
  PEFT_LAB_VIEW,
  UI_TIMEOUT,
  copyFixtureWorkspace,
  showPeftLabView,
} from '../../scripts/vscode-test/workbench.mjs';

const CLI = join(REPO_ROOT, 'dist', 'cli.js');

/** A copy of the fixture workspace with one finished run (trained by the CLI) and one corrupt run folder. */
function workspaceWithRuns(dir) {
  const folder = copyFixtureWorkspace(dir);
  const trained = spawnSync(process.execPath, [CLI, 'train', join(folder, 'tiny.peft.json'), '--backend', 'cpu'], {
    cwd: folder,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(trained.status, 0, `the CLI trained tiny.peft.json:\n${trained.stdout}\n${trained.stderr}`);
  const runs = join(folder, 'runs');
  const [finished] = readdirSync(runs);
  const broken = join(runs, 'tiny-20260101-000000');
  mkdirSync(join(broken, 'checkpoints'), { recursive: true });
  writeFileSync(join(broken, 'config.json'), readFileSync(join(runs, finished, 'config.json')));
  writeFileSync(join(broken, 'status.json'), '{"state": "runn'); // cut off mid-write by hand
  return { folder, runs, finished, broken: 'tiny-20260101-000000' };
}

function row(page, text) {
  return page.locator(`${PEFT_LAB_VIEW} .monaco-list-row`, { hasText: text }).first();
}

/**
 * An action in the Runs view's own header. The PEFT Lab container holds two views (Runs and
 * Queue), so each has a pane header of its own, whose actions show while the pointer is over it.
 */
async function runsViewAction(page, label) {
  const header = page.locator(`${PEFT_LAB_VIEW} .pane-header`, {
    has: page.locator('h3.title', { hasText: /^Runs$/ }),
  });
  await header.hover();
  const action = header.locator(`a.action-label[aria-label^="${label}"]`);
  await action.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  await action.click();
}

/** Drags the sash between the sidebar and the editor so descriptions are readable in the screenshots. */
async function widenSidebar(page, width = 640) {
  const box = await page.locator('.part.sidebar').boundingBox();
  if (!box) return;
  const x = box.x + box.width - 1;
  await page.mouse.move(x, box.y + 300);
  await page.mouse.down();
  await page.mouse.move(width, box.y + 300, { steps: 10 });
  await page.mouse.up();
  await page.mouse.move(900, 450);
}

async function center(locator, dx = 0) {
  const box = await locator.boundingBox();
  return [box.x + box.width / 2 + dx, box.y + box.height / 2];
}

async function contextAction(page, target, title) {
  await target.click({ button: 'right' });
  const item = page.locator('.context-view .monaco-menu .action-item', { hasText: title }).first();
  await item.waitFor({ timeout: UI_TIMEOUT });
  // the menu ignores a click that comes right after it opened (a guard against the opening right-click)
  await page.waitForTimeout(300);
  await item.hover();
  await item.click();
  await item.waitFor({ state: 'detached', timeout: UI_TIMEOUT });
}

test(
  'VS Code UI: the Runs sidebar shows runs live, expands to checkpoints, and runs context actions',
  { timeout: 600_000 },
  async () => {
    const ui = new ExtensionUiTest('ui-sidebar', 'peft-lab-sidebar-under-test.vsix');
    const ws = workspaceWithRuns(ui.dir);
    await ui.run({ folder: ws.folder, file: 'tiny.peft.json', failureShot: 'ui-sidebar-failure.png' }, async (page) => {
      // the PEFT Lab container in the activity bar
      await showPeftLabView(page);
      await row(page, 'tiny.peft.json').waitFor({ timeout: 60_000 });
      await widenSidebar(page);
      const finished = row(page, ws.finished);
      await finished.waitFor({ timeout: UI_TIMEOUT });
      assert.match(await finished.innerText(), /houlsby · cpu · accuracy \d\.\d{4} · \d+s/);
      assert.equal(await finished.locator('.codicon-pass').count(), 1, 'the finished icon');
      const broken = row(page, ws.broken);
      await broken.waitFor({ timeout: UI_TIMEOUT });
      assert.match(await broken.innerText(), /status\.json is not valid JSON/);
      assert.equal(await broken.locator('.codicon-warning').count(), 1, 'the warning icon');
      await screenshot(page, 'ui-sidebar-runs.png');

      // expand the run: its checkpoints, the best one starred
      await finished.click();
      await row(page, /step \d+ ★ best/).waitFor({ timeout: UI_TIMEOUT });
      assert.ok(
        await row(page, /step \d+ ★ best/)
          .locator('.codicon-star-full')
          .count(),
        'the best checkpoint has a star',
      );
      assert.match(await row(page, /step \d+ ★ best/).innerText(), /accuracy \d\.\d{4} · loss \d\.\d{4} · [\d.]+ kB/);
      await screenshot(page, 'ui-sidebar-expanded.png');

      // hover: the Markdown summary
      await page.mouse.move(800, 450);
      await finished.locator('.label-name').hover();
      await page.mouse.move(...(await center(finished.locator('.label-name'), 4)));
      const hover = page.locator('.monaco-hover, .workbench-hover', { hasText: 'Trainable parameters' }).first();
      await hover.waitFor({ timeout: UI_TIMEOUT });
      assert.match(await hover.innerText(), /Houlsby adapters, bottleneck 4/);
      assert.match(await hover.innerText(), /of the base model/);
      await screenshot(page, 'ui-sidebar-tooltip.png');
      await page.mouse.move(900, 500);
      await page.keyboard.press('Escape');

      // context menu: Open Config opens the run's *.peft.json
      await contextAction(page, finished, 'Open Config');
      await page
        .locator('.editor-group-container.active .tab.active', { hasText: 'tiny.peft.json' })
        .waitFor({ timeout: UI_TIMEOUT });

      // context menu: Copy Path (the status bar confirms)
      await contextAction(page, finished, 'Copy Path');
      await page
        .locator('.statusbar-item', { hasText: `Copied ${ws.finished}` })
        .first()
        .waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'ui-sidebar-context-action.png');

      // context menu: Delete the corrupt run, after the modal confirmation
      await contextAction(page, broken, 'Delete Run');
      const dialog = page.locator('.monaco-dialog-box');
      await dialog.waitFor({ timeout: UI_TIMEOUT });
      assert.match(await dialog.innerText(), /Delete run tiny-20260101-000000\?/);
      await screenshot(page, 'ui-sidebar-delete-confirm.png');
      await dialog.locator('.monaco-button', { hasText: 'Delete' }).first().click();
      await broken.waitFor({ state: 'detached', timeout: UI_TIMEOUT });
      assert.equal(existsSync(join(ws.runs, ws.broken)), false, 'the folder is gone from disk');

      // a run started from the CLI appears live, with a spinner, and ends as stopped
      const cli = spawn(process.execPath, [CLI, 'train', join(ws.folder, 'slow.peft.json'), '--backend', 'cpu'], {
        cwd: ws.folder,
        stdio: 'ignore',
      });
      ui.atEnd(() => cli.kill('SIGKILL'));
      const live = row(page, /slow-\d{8}-\d{6}/);
      await live.waitFor({ timeout: 60_000 });
      await live
        .locator('.codicon-sync.codicon-modifier-spin, .codicon-sync\\~spin')
        .first()
        .waitFor({ timeout: UI_TIMEOUT });
      await page.waitForFunction(
        (sel) =>
          /step [1-9]\d*\/\d+ · loss/.test([...document.querySelectorAll(sel)].map((e) => e.textContent).join('\n')),
        `${PEFT_LAB_VIEW} .monaco-list-row`,
        { timeout: 60_000 },
      );
      await screenshot(page, 'ui-sidebar-live.png');
      cli.kill('SIGTERM');
      await live.locator('.codicon-debug-stop').waitFor({ timeout: 60_000 });
      assert.match(await live.innerText(), /stopped/);
      await screenshot(page, 'ui-sidebar-stopped.png');

      // the Runs view's title bar: the filter, only stopped runs
      await runsViewAction(page, 'Filter Runs');
      const input = page.locator('.quick-input-widget');
      await input.locator('.monaco-list-row', { hasText: 'stopped' }).first().waitFor({ timeout: UI_TIMEOUT });
      await input.locator('.monaco-list-row', { hasText: 'stopped' }).first().click();
      await screenshot(page, 'ui-sidebar-filter.png');
      await page.keyboard.press('Enter');
      await finished.waitFor({ state: 'detached', timeout: UI_TIMEOUT });
      await page.locator(PEFT_LAB_VIEW, { hasText: 'Filtered by state: stopped.' }).waitFor({ timeout: UI_TIMEOUT });
      assert.equal(await live.isVisible(), true, 'the stopped run stays');
      await screenshot(page, 'ui-sidebar-filtered.png');
      await runsViewAction(page, 'Clear Runs Filter');
      await finished.waitFor({ timeout: UI_TIMEOUT });
    });
  },
);
