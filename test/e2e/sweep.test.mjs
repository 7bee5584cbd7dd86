/**
 * A sweep from start to finish in a real VS Code 1.100 workbench, PEFT Lab installed from its VSIX:
 *
 *  1. a tiny config with a 4-point `sweep` section (a 2x2 grid of method.bottleneck and
 *     training.learningRate) is copied into the workspace; its **Sweep** CodeLens queues the four
 *     points, and the Queue view lists the ones waiting (one trains at a time, the default
 *     `peftLab.maxConcurrentRuns`);
 *  2. the Experiments table shows four rows with the sweep's id appear and finish;
 *  3. sorted by the sweep's metric (best accuracy, best first);
 *  4. the two best selected and opened in the dashboard, overlaid (checked inside its webview);
 *  5. the sweep chart: the four points, the best one marked as the sweep ranks it (and as the Runs
 *     view marks it "best of sweep").
 *
 * Screenshots: .test-artifacts/sweep-{queue,rows,sorted,compare,chart}.png. No Content-Security-Policy
 * violation may be logged.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { screenshot, writeUserSettings } from '../../scripts/vscode-test/code-server.mjs';
import {
  ExtensionUiTest,
  PEFT_LAB_VIEW,
  UI_TIMEOUT,
  codeLens,
  copyFixtureWorkspace,
  openFile,
  runCommand,
  showPeftLabView,
  webviewContent,
} from '../../scripts/vscode-test/workbench.mjs';

/** Four points of the tiny model, one after the other, on a machine that may be busy. */
const SWEEP_TIMEOUT = 420_000;
const SWEEP_ID = /^grid-sweep-\d{8}-\d{6}$/;

/** The fixture workspace with `grid.peft.json`: the tiny config and a 2x2 grid sweep. */
function workspaceWithSweep(dir) {
  const folder = copyFixtureWorkspace(dir);
  const tiny = JSON.parse(readFileSync(join(folder, 'tiny.peft.json'), 'utf8'));
  const grid = {
    ...tiny,
    name: 'grid',
    sweep: {
      method: 'grid',
      parameters: { 'method.bottleneck': { values: [2, 4] }, 'training.learningRate': { values: [0.001, 0.0001] } },
      metric: 'accuracy',
      goal: 'maximize',
    },
  };
  writeFileSync(join(folder, 'grid.peft.json'), `${JSON.stringify(grid, null, 2)}\n`);
  return { folder, runs: join(folder, 'runs') };
}

/** The sweep's run folders as written on disk: config.json `sweepPoint` and status.json. */
function sweepRuns(runs) {
  return readdirSync(runs)
    .filter((d) => d.startsWith('grid-'))
    .map((folder) => {
      const config = JSON.parse(readFileSync(join(runs, folder, 'config.json'), 'utf8'));
      const status = JSON.parse(readFileSync(join(runs, folder, 'status.json'), 'utf8'));
      return { folder, point: config.sweepPoint, status };
    });
}

async function cellTexts(view, column) {
  return view.locator(`tbody tr.row td[data-column="${column}"]`).allInnerTexts();
}

/** A view of the PEFT Lab container by its title (the container holds Runs and Queue). */
function pane(page, title) {
  return page.locator(`${PEFT_LAB_VIEW} .pane`, {
    has: page.locator('.pane-header h3.title', { hasText: new RegExp(`^${title}$`) }),
  });
}

test(
  'VS Code UI: a 4-point sweep from its CodeLens, queued, run, compared in the Experiments table and the dashboard',
  { timeout: 900_000 },
  async () => {
    const ui = new ExtensionUiTest('ui-sweep', 'peft-lab-sweep-test.vsix');
    const ws = workspaceWithSweep(ui.dir);
    writeUserSettings(ui.userDataDir, { 'workbench.colorTheme': 'Default Dark Modern' });
    await ui.run({ folder: ws.folder, file: 'grid.peft.json', failureShot: 'sweep-failure.png' }, async (page) => {
      // ---- 1. the Sweep lens queues the points; the Queue view shows the ones waiting ----------------------
      await showPeftLabView(page);
      const queue = pane(page, 'Queue');
      await queue.waitFor({ timeout: 60_000 });
      await openFile(page, 'grid.peft.json');
      const sweepLens = codeLens(page, 'Sweep');
      await sweepLens.waitFor({ timeout: 60_000 });
      assert.match(await sweepLens.innerText(), /^\s*Sweep\s*$/);
      await sweepLens.click();
      // the last point waits until the three before it have started
      const last = queue.locator('.monaco-list-row', { hasText: 'point 4 of 4' });
      await last.waitFor({ timeout: 60_000 });
      assert.match(await last.innerText(), /grid-bottleneck=4-lr=1e-4/);
      assert.match(await last.innerText(), /method\.bottleneck=4, training\.learningRate=1e-4/);
      await page
        .locator('.notifications-toasts', { hasText: 'PEFT Lab: sweep of grid' })
        .first()
        .waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'sweep-queue.png');

      // ---- 2. the Experiments table: four rows of the sweep appear and finish --------------------------------
      await runCommand(page, 'PEFT Lab: Open Experiments');
      await page.locator('.tab.active', { hasText: 'Experiments' }).waitFor({ timeout: UI_TIMEOUT });
      let view = webviewContent(page);
      await view.locator('body[data-ready="true"]').waitFor({ timeout: 60_000 });
      await view.locator('body[data-rows="4"]').waitFor({ timeout: SWEEP_TIMEOUT });
      await view.locator('tbody tr.row.state-finished').nth(3).waitFor({ timeout: SWEEP_TIMEOUT });
      assert.deepEqual(await cellTexts(view, 'state'), ['finished', 'finished', 'finished', 'finished']);
      assert.equal(await view.locator('tbody tr.row').count(), 4, 'one row per point');
      const ids = await cellTexts(view, 'sweep');
      assert.equal(new Set(ids).size, 1, `one sweep: ${ids.join(', ')}`);
      const [sweepId] = ids;
      assert.match(sweepId, SWEEP_ID);
      const onDisk = sweepRuns(ws.runs);
      assert.equal(onDisk.length, 4);
      for (const run of onDisk) {
        assert.equal(run.point.sweepId, sweepId, `${run.folder} is a point of the sweep shown`);
        assert.equal(run.status.state, 'finished');
      }
      assert.deepEqual(onDisk.map((r) => r.point.index).sort(), [0, 1, 2, 3]);
      // the swept parameters are columns (they differ), the sweep bookkeeping is not
      const heads = await view
        .locator('thead tr.head-row th[data-column]')
        .evaluateAll((ths) => ths.map((th) => th.dataset.column));
      for (const id of ['sweep', 'param:method.bottleneck', 'param:training.learningRate', 'best:accuracy'])
        assert.ok(heads.includes(id), `column ${id} shown (${heads.join(', ')})`);
      assert.ok(
        !heads.some((id) => id.startsWith('param:sweep')),
        `no sweep bookkeeping among the parameters (${heads.join(', ')})`,
      );
      assert.deepEqual((await cellTexts(view, 'param:method.bottleneck')).sort(), ['2', '2', '4', '4']);
      // the sidebar agrees: nothing waits in the Queue, the config's four runs in the Runs view, none training
      await queue.locator('.monaco-list-row').first().waitFor({ state: 'detached', timeout: UI_TIMEOUT });
      await pane(page, 'Runs')
        .locator('.monaco-list-row', { hasText: /grid\.peft\.json\s*4 runs/, hasNotText: 'running' })
        .waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'sweep-rows.png');

      // ---- 3. sorted by the sweep's metric, best first ---------------------------------------------------------
      await view.locator('button.sort-button[data-column="best:accuracy"]').click();
      await view.locator('th[data-column="best:accuracy"][aria-sort="descending"]').waitFor({ timeout: UI_TIMEOUT });
      const accuracy = (await cellTexts(view, 'best:accuracy')).map(Number);
      assert.equal(accuracy.length, 4);
      assert.ok(
        accuracy.every((v) => Number.isFinite(v)),
        `every point has a best accuracy: ${accuracy.join(', ')}`,
      );
      assert.deepEqual(
        accuracy,
        [...accuracy].sort((a, b) => b - a),
        'best accuracy first',
      );
      await screenshot(page, 'sweep-sorted.png');

      // ---- 4. the two best, overlaid in the dashboard -------------------------------------------------------------
      await view.locator('tbody tr.row').first().locator('td[data-column="state"]').click();
      await page.keyboard.press('Space');
      await page.keyboard.press('ArrowDown');
      await page.keyboard.press('Space');
      await view.locator('.counts', { hasText: '2 selected' }).waitFor({ timeout: UI_TIMEOUT });
      const chosen = await view.locator('tbody tr.row.selected td[data-column="name"]').allInnerTexts();
      assert.equal(chosen.length, 2);
      await view.locator('vscode-button.open-dashboard').click();
      await page.locator('.tab.active', { hasText: 'Compare 2 runs' }).waitFor({ timeout: 60_000 });
      const dashboard = webviewContent(page);
      await dashboard.locator('body[data-ready="true"][data-mode="compare"]').waitFor({ timeout: 60_000 });
      assert.equal(await dashboard.locator('table.comparison tbody tr').count(), 2);
      const compared = await dashboard.locator('table.comparison tbody').innerText();
      for (const name of chosen) assert.ok(compared.includes(name.trim()), `${name} is in the comparison`);
      // one learning-rate line and one validation-metric line per run: the two runs overlaid in each chart
      await dashboard.locator('[data-chart="lr"][data-series="2"]').waitFor({ timeout: UI_TIMEOUT });
      await dashboard.locator('[data-chart="metric"][data-series="2"]').waitFor({ timeout: UI_TIMEOUT });
      assert.ok(
        Number(await dashboard.locator('[data-chart="loss"]').getAttribute('data-points')) > 0,
        'the loss curves have points',
      );
      await screenshot(page, 'sweep-compare.png');

      // ---- 5. the sweep chart: four points, the best one as the sweep ranks it ------------------------------------
      await page.locator('.tab', { hasText: 'Experiments' }).click();
      view = webviewContent(page);
      await view.locator('body[data-ready="true"][data-rows="4"]').waitFor({ timeout: 60_000 });
      const chart = view.locator('.sweep-panel svg.sweep-chart[data-points="4"]');
      await chart.waitFor({ timeout: UI_TIMEOUT });
      assert.equal(
        await chart.getAttribute('aria-label'),
        'best accuracy against method.bottleneck',
        "the sweep's metric by default",
      );
      assert.equal(
        await view.locator('.sweep-panel vscode-single-select.sweep-sweep').evaluate((s) => s.value),
        sweepId,
      );
      // the sweep's ranking: the highest best accuracy (goal maximize), a tie to the earlier point
      const expected = [...onDisk].sort(
        (a, b) => b.status.bestMetrics.accuracy - a.status.bestMetrics.accuracy || a.point.index - b.point.index,
      )[0];
      assert.equal(await chart.locator('circle.point.best').count(), 1);
      assert.equal(
        basename(await chart.locator('circle.point.best').getAttribute('data-dir')),
        expected.folder,
        'the best point of the sweep is marked',
      );
      const best = page.locator(`${PEFT_LAB_VIEW} .monaco-list-row`, { hasText: 'best of sweep' });
      await best.first().waitFor({ timeout: UI_TIMEOUT });
      assert.equal(await best.count(), 1);
      assert.match(
        await best.innerText(),
        new RegExp(expected.folder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
        'the Runs view marks the same run',
      );
      await view.locator('.sweep-panel').evaluate((el) => el.scrollIntoView({ block: 'start' }));
      await screenshot(page, 'sweep-chart.png');

      assert.deepEqual(ui.cspViolations, [], 'no Content-Security-Policy violations');
    });
  },
);
