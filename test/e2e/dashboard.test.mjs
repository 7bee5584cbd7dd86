/**
 * The dashboard webview in a real VS Code 1.100 workbench, PEFT Lab installed from its VSIX:
 *
 *  1. a finished AdaMix run (trained with the CLI before the editor starts; 3 layers, layer 2 left
 *     out) opened from its config's "Open dashboard" lens: the placement diagram (rows, adapters,
 *     experts with routing counts, the empty left-out slots, totals) and the curves' point counts
 *     are read from inside the webview frame; smoothing kept across hide/show and a window reload
 *     (the panel serializer), in the dark and the light theme;
 *  2. a run started with the Train lens: its dashboard shows the placement at once and the curve
 *     grows while it trains (live), the Stop button stops it;
 *  3. both runs compared in one panel.
 *
 * Screenshots: .test-artifacts/dashboard-*.png. No Content-Security-Policy violation may be logged.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, screenshot, writeUserSettings } from '../../scripts/vscode-test/code-server.mjs';
import {
  ExtensionUiTest,
  UI_TIMEOUT,
  codeLens,
  copyFixtureWorkspace,
  openFile,
  runCommand,
  webviewContent,
} from '../../scripts/vscode-test/workbench.mjs';

const DARK = { 'workbench.colorTheme': 'Default Dark Modern' };

function writeSettings(userDataDir, extra = {}) {
  writeUserSettings(userDataDir, { ...DARK, ...extra });
}

/** The fixture workspace with two more configs: a finished AdaMix run (trained here) and a long one to watch. */
function workspaceCopy(dir) {
  const folder = copyFixtureWorkspace(dir);
  const tiny = JSON.parse(readFileSync(join(folder, 'tiny.peft.json'), 'utf8'));
  const finished = {
    ...tiny,
    name: 'finished',
    model: { scratch: { ...tiny.model.scratch, layers: 3 } },
    method: { type: 'adamix', bottleneck: 4, experts: 4, leaveOut: [2] },
    training: { ...tiny.training, epochs: 12, batchSize: 8, logEvery: 1 },
  };
  writeFileSync(join(folder, 'finished.peft.json'), `${JSON.stringify(finished, null, 2)}\n`);
  const watch = {
    ...tiny,
    name: 'watch',
    model: { scratch: { ...tiny.model.scratch, layers: 2, hiddenSize: 64, heads: 4, intermediateSize: 128 } },
    method: { type: 'adamix', bottleneck: 16 },
    training: { ...tiny.training, epochs: 60, logEvery: 2 },
  };
  writeFileSync(join(folder, 'watch.peft.json'), `${JSON.stringify(watch, null, 2)}\n`);
  // the finished run, from the command line (the editor must show runs it did not start)
  const cli = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'cli.js'), 'train', 'finished.peft.json'], {
    cwd: folder,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(cli.status, 0, `training finished.peft.json failed:\n${cli.stdout}\n${cli.stderr}`);
  const [runName] = readdirSync(join(folder, 'runs')).filter((d) => d.startsWith('finished-'));
  return { folder, finishedRun: join(folder, 'runs', runName) };
}

async function reloadWindow(page) {
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.waitForSelector('.monaco-workbench', { timeout: 90_000 });
  await page
    .locator('.explorer-folders-view .monaco-list-row', { hasText: 'watch.peft.json' })
    .waitFor({ timeout: 60_000 });
}

async function waitForDashboard(page, runName) {
  const view = webviewContent(page);
  await view.locator('body[data-ready="true"]').waitFor({ timeout: 60_000 });
  if (runName) await view.locator('.run-title h1', { hasText: runName }).waitFor({ timeout: UI_TIMEOUT });
  return view;
}

async function points(view, chart) {
  return Number(await view.locator(`[data-chart="${chart}"]`).getAttribute('data-points'));
}

/** A screenshot of the workbench and one of the webview scrolled to the placement diagram. */
async function shots(page, view, name) {
  await view.locator('[data-section="curves"]').evaluate((el) => el.scrollIntoView({ block: 'start' }));
  await screenshot(page, `dashboard-${name}.png`);
  await view.locator('[data-section="placement"]').evaluate((el) => el.scrollIntoView({ block: 'start' }));
  await screenshot(page, `dashboard-${name}-placement.png`);
  await view.locator('[data-section="summary"]').evaluate((el) => el.scrollIntoView({ block: 'start' }));
  await screenshot(page, `dashboard-${name}-summary.png`);
  await view.locator('body').evaluate(() => window.scrollTo(0, 0));
}

test(
  'VS Code UI: the dashboard of a finished run and of a running one, live, in dark and light',
  { timeout: 900_000 },
  async () => {
    const timings = {};
    const t0 = Date.now();
    const ui = new ExtensionUiTest('ui-dash', 'peft-lab-dashboard-test.vsix');
    timings.packageMs = Date.now() - t0;
    const { folder, finishedRun } = workspaceCopy(ui.dir);
    const finishedName = finishedRun.split('/').pop();
    const trainLines = readFileSync(join(finishedRun, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const trainPoints = trainLines.filter((l) => l.kind === 'train').length;
    const evalPoints = trainLines.filter((l) => l.kind === 'eval' && l.split === 'validation').length;
    const placement = JSON.parse(readFileSync(join(finishedRun, 'placement.json'), 'utf8'));
    const checkpoints = readdirSync(join(finishedRun, 'checkpoints'))
      .map((n) => Number(n.replace('step-', '')))
      .sort((a, b) => a - b);
    const routing = JSON.parse(
      readFileSync(join(finishedRun, 'checkpoints', `step-${checkpoints.at(-1)}`, 'checkpoint.json'), 'utf8'),
    ).trainer.routing;

    writeSettings(ui.userDataDir);
    const consoleSeen = [];
    const onConsole = (text) => consoleSeen.push(text);
    await ui.run(
      { folder, file: 'finished.peft.json', failureShot: 'dashboard-failure.png', onConsole },
      async (page) => {
        // ---- 1. the finished run, from its config's lens ----------------------------------------------
        let t = Date.now();
        await openFile(page, 'finished.peft.json');
        const open = codeLens(page, 'Open dashboard');
        await open.waitFor({ timeout: 60_000 });
        assert.match(await open.innerText(), /Open dashboard \(1 run: latest finished\)/);
        await open.click();
        let view = await waitForDashboard(page, finishedName);
        timings.openFinishedMs = Date.now() - t;
        assert.equal(
          await page.locator('.tab.active', { hasText: `Dashboard: ${finishedName}` }).count(),
          1,
          'the panel is titled after the run',
        );

        // placement diagram, read from the webview
        const rows = view.locator('.layer-row[data-layer]');
        assert.equal(await rows.count(), 3);
        assert.equal(await view.locator('.layer-row[data-left-out="true"]').count(), 1);
        assert.equal(
          await view.locator('.layer-row[data-layer="2"] .adapter[data-kind="empty"]').count(),
          2,
          'layer 2 is left out: both slots empty',
        );
        assert.equal(
          await view.locator('.adapter[data-kind="adamix"]').count(),
          4,
          'two AdaMix sites in each of layers 0 and 1',
        );
        const firstCard = view.locator(
          '.layer-row[data-layer="0"] [data-block="attention"] .adapter[data-kind="adamix"]',
        );
        assert.match(await firstCard.innerText(), /AdaMix · 4 experts/);
        assert.match(await firstCard.innerText(), /m = 4/);
        assert.match(await firstCard.innerText(), /merged/);
        assert.equal(await firstCard.locator('[data-projection="down"] .expert-bar').count(), 4);
        assert.equal(
          await firstCard.locator('[data-projection="up"] .shared-badge').count(),
          1,
          'the shared up-projection is marked',
        );
        const counts = await firstCard
          .locator('[data-projection="down"] .expert-bar')
          .evaluateAll((bars) => bars.map((b) => Number(b.getAttribute('data-count'))));
        assert.deepEqual(counts, routing['0.attention'].down, 'routing counts of the latest checkpoint');
        const tooltip = await firstCard.getAttribute('title');
        assert.match(tooltip, /down: \[16 × 4\] \+ bias \[4\] × 4 experts/);
        assert.equal(Number(await view.locator('.total-number').getAttribute('data-total')), placement.trainableParams);
        const siteParams = placement.sites.filter((s) => s.layer === 0).reduce((n, s) => n + s.trainableParams, 0);
        assert.equal(
          Number(await view.locator('.layer-row[data-layer="0"] .layer-total').getAttribute('data-params')),
          siteParams,
        );

        // curves: every logged step and evaluation is in the chart
        assert.equal(await points(view, 'loss'), trainPoints);
        assert.equal(await points(view, 'metric'), evalPoints * 3, 'accuracy, f1 and mcc per evaluation');
        assert.equal(await points(view, 'lr'), trainPoints);
        assert.equal(await view.locator('[data-chart="loss"] canvas').count(), 1);
        assert.match(await view.locator('.state-badge').innerText(), /finished/);
        assert.equal(
          await view.locator('vscode-button[data-action="stop"][disabled]').count(),
          1,
          'Stop is disabled for a finished run',
        );

        // hover read-out: the legend shows the values at the cursor
        const over = view.locator('[data-chart="loss"] .u-over');
        const box = await over.boundingBox();
        await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
        await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5);
        const readout = await view.locator('[data-chart="loss"] .u-legend .u-series').first().innerText();
        assert.match(readout, /step\s*\d+/);

        // smoothing survives hide/show (webview state) ...
        const slider = view.locator('.smoothing-slider');
        await slider.evaluate((el) => {
          el.value = '0.9';
          el.dispatchEvent(new Event('input'));
        });
        await shots(page, view, 'finished-dark');
        await openFile(page, 'README.md');
        await page.locator('.tab', { hasText: `Dashboard: ${finishedName}` }).click();
        view = await waitForDashboard(page, finishedName);
        assert.equal(await view.locator('.smoothing-slider').inputValue(), '0.9', 'smoothing kept across hide/show');

        // ... and a window reload (the serializer revives the panel from the saved state), here into
        // the light theme (the user settings are read when the window loads)
        writeSettings(ui.userDataDir, { 'workbench.colorTheme': 'Default Light Modern' });
        t = Date.now();
        await reloadWindow(page);
        await page.locator('.tab', { hasText: `Dashboard: ${finishedName}` }).click({ timeout: 60_000 });
        view = await waitForDashboard(page, finishedName);
        timings.reviveMs = Date.now() - t;
        await view.locator('body.vscode-light').waitFor({ timeout: UI_TIMEOUT });
        assert.equal(await view.locator('.smoothing-slider').inputValue(), '0.9', 'smoothing kept across a reload');
        assert.equal(await points(view, 'loss'), trainPoints);
        assert.equal(await view.locator('.adapter[data-kind="adamix"]').count(), 4);
        await page.waitForTimeout(500);
        await shots(page, view, 'finished-light');
        writeSettings(ui.userDataDir);
        await reloadWindow(page);

        // ---- 2. a run started with the Train lens: live -------------------------------------------------
        await openFile(page, 'watch.peft.json');
        await codeLens(page, 'Train').click();
        t = Date.now();
        const openWatch = codeLens(page, 'Open dashboard');
        await openWatch.waitFor({ timeout: 60_000 });
        await openWatch.click();
        view = await waitForDashboard(page);
        const name = await view.locator('.run-title h1').innerText();
        assert.match(name, /^watch-/);
        await view.locator('.state-badge[data-state="running"]').waitFor({ timeout: UI_TIMEOUT });
        // the placement is there whatever the step (placement.json is written when the run starts)
        assert.equal(await view.locator('.layer-row[data-layer]').count(), 2);
        assert.equal(await view.locator('.adapter[data-kind="adamix"]').count(), 4);
        await view.locator('[data-chart="loss"]:not([data-points="0"])').waitFor({ timeout: 60_000 });
        const before = await points(view, 'loss');
        const grew = Date.now();
        await view.locator(`[data-chart="loss"]`).evaluate(
          (el, n) =>
            new Promise((resolve, reject) => {
              const timer = setTimeout(
                () => reject(new Error(`no new point within 30 s (still ${el.dataset.points})`)),
                30_000,
              );
              const check = () =>
                Number(el.dataset.points) > n ? (clearTimeout(timer), resolve()) : setTimeout(check, 50);
              check();
            }),
          before,
        );
        const after = await points(view, 'loss');
        timings.liveUpdateMs = Date.now() - grew;
        timings.openRunningMs = Date.now() - t;
        assert.ok(after > before, `the curve grows live (${before} -> ${after})`);
        const progress = view.locator('.progress');
        assert.ok(Number(await progress.getAttribute('data-step')) > 0);
        await page.waitForTimeout(1500);
        await shots(page, view, 'running-dark');

        // Stop from the dashboard
        await view.locator('vscode-button[data-action="stop"]').click();
        await view.locator('.state-badge[data-state="stopped"]').waitFor({ timeout: 90_000 });
        const stoppedAt = await points(view, 'loss');
        assert.ok(stoppedAt >= after);
        await screenshot(page, 'dashboard-stopped-dark.png');

        // ---- 3. both runs in one comparison -------------------------------------------------------------
        const watchRun = readdirSync(join(folder, 'runs')).find((d) => d.startsWith('watch-'));
        await runCommand(page, 'PEFT Lab: Compare Runs');
        const pick = page.locator('.quick-input-widget');
        await pick.locator('.monaco-list-row', { hasText: watchRun }).waitFor({ timeout: UI_TIMEOUT });
        await pick.locator('.monaco-list-row', { hasText: finishedName }).waitFor({ timeout: UI_TIMEOUT });
        // one row at a time, waiting for the count: two quick clicks raced the list's re-render
        let selected = 0;
        for (const run of [watchRun, finishedName]) {
          await pick
            .locator('.monaco-list-row', { hasText: run })
            .locator('.monaco-checkbox, input[type=checkbox]')
            .first()
            .click();
          selected += 1;
          await pick.getByText(`${selected} Selected`).waitFor({ timeout: UI_TIMEOUT });
        }
        // OK, as a user confirms a multi-select: Enter after a checkbox click can land on the row instead
        await pick.getByRole('button', { name: 'OK' }).click();
        await pick.waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
        view = await waitForDashboard(page);
        await view.locator('body[data-mode="compare"]').waitFor({ timeout: UI_TIMEOUT });
        assert.equal(await view.locator('table.comparison tbody tr').count(), 2);
        const lossSeries = await view.locator('[data-chart="loss"] .u-legend .u-series:not(.raw-row)').count();
        assert.ok(lossSeries >= 3, 'step + one row per run (and validation loss)');
        await page.waitForTimeout(500);
        await shots(page, view, 'compare-dark');

        // the webview's console reaches this page (so a CSP violation in it would have been seen)
        await view.locator('body').evaluate(() => console.log('peft-lab-console-probe'));
        await page.waitForTimeout(200);
        assert.ok(
          consoleSeen.some((t) => t.includes('peft-lab-console-probe')),
          'webview console messages are captured',
        );
        assert.deepEqual(ui.cspViolations, [], 'no Content-Security-Policy violations');
        console.log(`[dashboard e2e] timings ${JSON.stringify(timings)}`);
      },
    );
  },
);
