/**
 * The Experiments table in a real VS Code 1.100 workbench, PEFT Lab installed from its VSIX, on a
 * workspace with three finished tiny runs (trained with the CLI before the editor starts: Houlsby
 * bottleneck 4, Houlsby bottleneck 8 with another learning rate, LoRA; two of them tagged by hand
 * as the points of one sweep, the way `peft-lab sweep` records them in config.json):
 *
 *  1. opened from the Runs view's title bar: one row per run, the differing config parameters shown
 *     and the constant ones hidden, the sweep column and chart; filtered by text and by one column;
 *  2. sorted by the metric (best accuracy: best first, again: reversed), and by best loss after
 *     showing it with the column picker;
 *  3. two runs selected with the keyboard (Space, ↓, Space) and opened overlaid in the dashboard;
 *  4. one run starred, noted (N) and renamed (F2) from the table: the table shows it after the host
 *     wrote annotations.json, and the Runs view shows the new name and, on hover, the note.
 *
 * Screenshots: .test-artifacts/experiments-*.png. No Content-Security-Policy violation may be logged.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, screenshot, writeUserSettings } from '../../scripts/vscode-test/code-server.mjs';
import {
  ExtensionUiTest,
  PEFT_LAB_VIEW,
  UI_TIMEOUT,
  copyFixtureWorkspace,
  showPeftLabView,
  webviewContent,
} from '../../scripts/vscode-test/workbench.mjs';

const CLI = join(REPO_ROOT, 'dist', 'cli.js');
const SWEEP = 'demo-sweep';

/** The fixture workspace with three configs, each trained once by the CLI; two runs tagged with a sweep. */
function workspaceWithRuns(dir) {
  const folder = copyFixtureWorkspace(dir);
  const tiny = JSON.parse(readFileSync(join(folder, 'tiny.peft.json'), 'utf8'));
  const configs = {
    tiny: null,
    wide: {
      ...tiny,
      name: 'wide',
      method: { type: 'houlsby', bottleneck: 8 },
      training: { ...tiny.training, epochs: 3, learningRate: 0.003 },
    },
    lora: {
      ...tiny,
      name: 'lora',
      method: { type: 'lora', rank: 4 },
      training: { ...tiny.training, epochs: 3, learningRate: 0.01 },
    },
  };
  for (const [name, config] of Object.entries(configs)) {
    if (config) writeFileSync(join(folder, `${name}.peft.json`), `${JSON.stringify(config, null, 2)}\n`);
    const trained = spawnSync(process.execPath, [CLI, 'train', `${name}.peft.json`, '--backend', 'cpu'], {
      cwd: folder,
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(trained.status, 0, `the CLI trained ${name}.peft.json:\n${trained.stdout}\n${trained.stderr}`);
  }
  const runs = join(folder, 'runs');
  const byName = Object.fromEntries(readdirSync(runs).map((d) => [d.split('-')[0], d]));
  // as `peft-lab sweep` records a point in its run's config.json
  ['tiny', 'wide'].forEach((name, index) => {
    const file = join(runs, byName[name], 'config.json');
    const config = JSON.parse(readFileSync(file, 'utf8'));
    const values = { 'training.learningRate': config.training.learningRate };
    const sweepPoint = {
      sweepId: SWEEP,
      index,
      total: 2,
      method: 'grid',
      values,
      baseName: 'tiny',
      metric: 'accuracy',
      goal: 'maximize',
    };
    writeFileSync(file, JSON.stringify({ ...config, sweepPoint }, null, 2));
  });
  const bestLoss = Object.fromEntries(
    Object.entries(byName).map(([name, d]) => [
      name,
      JSON.parse(readFileSync(join(runs, d, 'status.json'), 'utf8')).bestMetrics.loss,
    ]),
  );
  return { folder, runs, byName, bestLoss };
}

async function waitForTable(page, rows) {
  const view = webviewContent(page);
  await view.locator(`body[data-ready="true"][data-rows="${rows}"]`).waitFor({ timeout: 60_000 });
  return view;
}

async function cellTexts(view, column) {
  return view.locator(`tbody tr.row td[data-column="${column}"]`).allInnerTexts();
}

function treeRow(page, text) {
  return page.locator(`${PEFT_LAB_VIEW} .monaco-list-row`, { hasText: text }).first();
}

test(
  'VS Code UI: the Experiments table lists runs, sorts, overlays two in the dashboard, and stars and notes a run',
  { timeout: 900_000 },
  async () => {
    const ui = new ExtensionUiTest('ui-exp', 'peft-lab-experiments-test.vsix');
    const ws = workspaceWithRuns(ui.dir);
    writeUserSettings(ui.userDataDir, { 'workbench.colorTheme': 'Default Dark Modern' });
    await ui.run(
      { folder: ws.folder, file: 'lora.peft.json', failureShot: 'experiments-failure.png' },
      async (page) => {
        // ---- 1. open it from the Runs view's title bar ------------------------------------------------------
        await showPeftLabView(page);
        await treeRow(page, ws.byName.lora).waitFor({ timeout: 60_000 });
        // the Runs view's title bar: its actions show while the view has the focus (the container holds more than one view)
        await treeRow(page, ws.byName.lora).click();
        await page.locator('.part.sidebar a.action-label[aria-label^="Open Experiments"]').click();
        await page.locator('.tab.active', { hasText: 'Experiments' }).waitFor({ timeout: UI_TIMEOUT });
        let view = await waitForTable(page, 3);
        assert.equal(await view.locator('tbody tr.row').count(), 3, 'one row per run');
        const heads = await view
          .locator('thead tr.head-row th[data-column]')
          .evaluateAll((ths) => ths.map((th) => th.dataset.column));
        for (const id of [
          'starred',
          'name',
          'state',
          'config',
          'sweep',
          'param:method.type',
          'param:method.bottleneck',
          'param:method.rank',
          'param:training.learningRate',
          'param:training.epochs',
          'best:accuracy',
          'final:accuracy',
          'trainableParams',
          'duration',
          'speed',
          'backend',
          'note',
        ]) {
          assert.ok(heads.includes(id), `column ${id} shown (${heads.join(', ')})`);
        }
        for (const id of ['param:data.maxLength', 'param:training.batchSize', 'param:task.type', 'best:loss'])
          assert.ok(!heads.includes(id), `constant or secondary column ${id} hidden`);
        assert.deepEqual((await cellTexts(view, 'param:method.type')).sort(), ['houlsby', 'houlsby', 'lora']);
        assert.deepEqual(await cellTexts(view, 'backend'), ['cpu', 'cpu', 'cpu']);
        // the sweep chart: the two tagged runs, learning rate against best accuracy
        await view.locator(`.sweep-panel svg.sweep-chart[data-points="2"]`).waitFor({ timeout: UI_TIMEOUT });
        assert.deepEqual((await cellTexts(view, 'sweep')).filter(Boolean), [SWEEP, SWEEP]);
        await screenshot(page, 'experiments-table.png');

        // the text filter across columns, and a column's own filter
        await view.locator('vscode-textfield.text-filter input').fill('lora');
        await view.locator('body[data-rows="1"]').waitFor({ timeout: UI_TIMEOUT });
        assert.deepEqual(await cellTexts(view, 'param:method.type'), ['lora']);
        await view.locator('vscode-textfield.text-filter input').fill('');
        await view.locator('input.column-filter[data-column="param:method.type"]').fill('houlsby');
        await view.locator('body[data-rows="2"]').waitFor({ timeout: UI_TIMEOUT });
        await screenshot(page, 'experiments-filtered.png');
        await view.locator('input.column-filter[data-column="param:method.type"]').fill('');
        await view.locator('body[data-rows="3"]').waitFor({ timeout: UI_TIMEOUT });

        // ---- 2. sort by the metric, then by best loss shown with the column picker -------------------------
        const sortBy = async (column, direction) => {
          await view.locator(`button.sort-button[data-column="${column}"]`).click();
          await view.locator(`th[data-column="${column}"][aria-sort="${direction}"]`).waitFor({ timeout: UI_TIMEOUT });
          return (await cellTexts(view, column)).map(Number);
        };
        const accuracy = await sortBy('best:accuracy', 'descending');
        assert.deepEqual(
          accuracy,
          [...accuracy].sort((a, b) => b - a),
          'best accuracy first',
        );
        const reversed = await sortBy('best:accuracy', 'ascending');
        assert.deepEqual(reversed, [...accuracy].reverse(), 'a second click reverses');
        await view.locator('vscode-button.columns-button').click();
        await view.locator('.column-picker vscode-checkbox[data-column="best:loss"]').click();
        await view.locator('thead th[data-column="best:loss"]').waitFor({ timeout: UI_TIMEOUT });
        await view.locator('.column-picker vscode-button.close-picker').click();
        const losses = await sortBy('best:loss', 'ascending');
        const expected = Object.values(ws.bestLoss)
          .sort((a, b) => a - b)
          .map((v) => Number(v.toFixed(4)));
        assert.deepEqual(losses, expected, 'lowest loss first');
        await screenshot(page, 'experiments-sorted.png');

        // ---- 3. select two with the keyboard and open them overlaid in the dashboard --------------------------
        await view.locator('tbody tr.row').first().locator('td[data-column="state"]').click();
        await page.keyboard.press('Space');
        await page.keyboard.press('ArrowDown');
        await page.keyboard.press('Space');
        await view.locator('.counts', { hasText: '2 selected' }).waitFor({ timeout: UI_TIMEOUT });
        assert.equal(await view.locator('tbody tr.row.selected').count(), 2);
        const chosen = await view.locator('tbody tr.row.selected td[data-column="name"]').allInnerTexts();
        await screenshot(page, 'experiments-selected.png');
        await view.locator('vscode-button.open-dashboard').click();
        await page.locator('.tab.active', { hasText: 'Compare 2 runs' }).waitFor({ timeout: 60_000 });
        const dashboard = webviewContent(page);
        await dashboard.locator('body[data-ready="true"][data-mode="compare"]').waitFor({ timeout: 60_000 });
        assert.equal(await dashboard.locator('table.comparison tbody tr').count(), 2);
        const compared = await dashboard.locator('table.comparison tbody').innerText();
        for (const name of chosen) assert.ok(compared.includes(name), `${name} is overlaid`);
        await screenshot(page, 'experiments-compare.png');

        // ---- 4. star, note and rename a run from the table -------------------------------------------------
        await page.locator('.tab', { hasText: 'Experiments' }).click();
        view = await waitForTable(page, 3);
        await view.locator('th[data-column="best:loss"][aria-sort="ascending"]').waitFor({ timeout: UI_TIMEOUT }); // the sort survived the tab switch
        const target = view.locator('tbody tr.row', { hasText: ws.byName.lora });
        await target.locator('.star-toggle').click();
        await target.locator('.star-toggle.on').waitFor({ timeout: UI_TIMEOUT });
        await target.locator('td[data-column="state"]').click();
        await page.keyboard.press('n');
        const editor = view.locator('input.cell-editor');
        await editor.waitFor({ timeout: UI_TIMEOUT });
        await editor.fill('rank 4 looks promising');
        await page.keyboard.press('Enter');
        await page.keyboard.press('F2');
        await editor.waitFor({ timeout: UI_TIMEOUT });
        await editor.fill('lora r4');
        await page.keyboard.press('Enter');
        // written by the host into the run folder, and read back through the model
        const annotations = join(ws.runs, ws.byName.lora, 'annotations.json');
        await waitFor(
          () => existsSync(annotations) && JSON.parse(readFileSync(annotations, 'utf8')).name === 'lora r4',
          'annotations.json with the name',
        );
        assert.deepEqual(JSON.parse(readFileSync(annotations, 'utf8')), {
          starred: true,
          note: 'rank 4 looks promising',
          name: 'lora r4',
        });
        const renamed = view.locator('tbody tr.row', { hasText: 'lora r4' });
        await renamed
          .locator('td[data-column="note"]', { hasText: 'rank 4 looks promising' })
          .waitFor({ timeout: UI_TIMEOUT });
        assert.equal(await renamed.locator('.star-toggle.on').count(), 1);
        await screenshot(page, 'experiments-annotated.png');

        // the Runs view: the new name as the label, ★ and the folder in the description, the note on hover
        const tree = treeRow(page, 'lora r4');
        await tree.waitFor({ timeout: UI_TIMEOUT });
        assert.match(await tree.innerText(), new RegExp(`★ ${ws.byName.lora}`));
        await page.mouse.move(900, 500);
        await tree.locator('.label-name').hover();
        const box = await tree.locator('.label-name').boundingBox();
        await page.mouse.move(box.x + box.width / 2 + 4, box.y + box.height / 2);
        const hover = page.locator('.monaco-hover, .workbench-hover', { hasText: 'rank 4 looks promising' }).first();
        await hover.waitFor({ timeout: UI_TIMEOUT });
        assert.match(await hover.innerText(), /lora r4/);
        await screenshot(page, 'experiments-tree-tooltip.png');

        assert.deepEqual(ui.cspViolations, [], 'no Content-Security-Policy violations');
      },
    );
  },
);

/** Polls a condition on disk (the host writes the file; nothing in the page says when). */
async function waitFor(check, what, ms = UI_TIMEOUT) {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
