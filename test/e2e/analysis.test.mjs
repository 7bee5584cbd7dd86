/**
 * The Experiments table's analysis in a real VS Code 1.100 workbench, PEFT Lab installed from its
 * VSIX, on a workspace with six finished tiny runs trained by the CLI before the editor starts:
 * Houlsby and LoRA, seeds 1, 2 and 3 each.
 *
 *  1. "Group seeds": two groups of N = 3 with the mean ± sd of best accuracy computed here from the
 *     runs' status.json; a group expands to its three runs; the importance panel names its method;
 *  2. brushing the method axis of the parallel coordinates keeps the LoRA runs in the table;
 *  3. two runs selected and diffed: only the differing parameters, with both runs' metrics;
 *  4. the table exported as CSV and the parallel coordinates as SVG through the save dialog;
 *  5. the Houlsby group opened in the dashboard: one mean line per curve with its band (an SVG path),
 *     the legend naming the group and N = 3; the loss chart saved as CSV with the group's mean, sd
 *     and n per step, the mean checked against the three runs' metrics.jsonl;
 *  6. two runs selected in the Runs sidebar and "Show Differences" from its context menu: the diff
 *     lists only parameters whose values differ.
 *
 * Screenshots: .test-artifacts/analysis-*.png. No Content-Security-Policy violation may be logged.
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

/** Six runs: houlsby and lora x seeds 1..3, each trained once by the CLI. */
function seedGridWorkspace(dir) {
  const folder = copyFixtureWorkspace(dir);
  const tiny = JSON.parse(readFileSync(join(folder, 'tiny.peft.json'), 'utf8'));
  for (const method of ['houlsby', 'lora']) {
    for (const seed of [1, 2, 3]) {
      const name = `${method}-s${seed}`;
      const config = {
        ...tiny,
        name,
        method: method === 'lora' ? { type: 'lora', rank: 4 } : tiny.method,
        training: { ...tiny.training, epochs: 1, seed },
      };
      writeFileSync(join(folder, `${name}.peft.json`), `${JSON.stringify(config, null, 2)}\n`);
      const trained = spawnSync(process.execPath, [CLI, 'train', `${name}.peft.json`, '--backend', 'cpu'], {
        cwd: folder,
        encoding: 'utf8',
        timeout: 120_000,
      });
      assert.equal(trained.status, 0, `the CLI trained ${name}:\n${trained.stdout}\n${trained.stderr}`);
    }
  }
  const runs = join(folder, 'runs');
  const best = {};
  for (const d of readdirSync(runs)) {
    const method = d.split('-')[0];
    const metrics = JSON.parse(readFileSync(join(runs, d, 'status.json'), 'utf8')).bestMetrics;
    for (const [name, value] of Object.entries(metrics)) ((best[method] ??= {})[name] ??= []).push(value);
  }
  return { folder, runs, best };
}

/** The training loss of a run's metrics.jsonl by step. */
function trainLoss(runDir) {
  const out = new Map();
  for (const line of readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    if (r.kind === 'train' && typeof r.loss === 'number') out.set(r.step, r.loss);
  }
  return out;
}

/** Rows of a CSV file (RFC 4180: quoted fields may hold commas, line breaks and doubled quotes). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  const endField = () => {
    row.push(field);
    field = '';
  };
  const endRow = () => {
    endField();
    rows.push(row);
    row = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c !== '"') field += c;
      else if (text[i + 1] === '"') {
        field += '"';
        i++;
      } else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ',') endField();
    else if (c === '\n') endRow();
    else if (c !== '\r') field += c;
  }
  if (field || row.length) endRow();
  return rows;
}

/** Right-clicks `target` and picks `title` from its context menu. */
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

/** "mean ± sd" as the table prints it (4 digits, sample sd). */
function meanSd(values) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1));
  return `${mean.toFixed(4)} ± ${sd.toFixed(4)}`;
}

async function waitForFile(file, ms = UI_TIMEOUT) {
  const start = Date.now();
  while (!existsSync(file)) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${file}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 200)); // the write may still be under way
  return readFileSync(file, 'utf8');
}

/** Accepts VS Code's save dialog (the simple dialog in the browser) at its proposed path. */
async function acceptSaveDialog(page) {
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  await page.keyboard.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
}

test(
  'VS Code UI: seed groups with mean ± sd, a brushed parallel-coordinates axis, a diff, CSV and SVG exports',
  { timeout: 900_000 },
  async () => {
    const ui = new ExtensionUiTest('ui-analysis', 'peft-lab-analysis-test.vsix');
    const ws = seedGridWorkspace(ui.dir);
    writeUserSettings(ui.userDataDir, { 'workbench.colorTheme': 'Default Dark Modern' });
    await ui.run(
      { folder: ws.folder, file: 'lora-s1.peft.json', failureShot: 'analysis-failure.png' },
      async (page) => {
        await showPeftLabView(page);
        const firstRun = page.locator(`${PEFT_LAB_VIEW} .monaco-list-row`, { hasText: 'lora' }).first();
        await firstRun.waitFor({ timeout: 60_000 });
        await firstRun.click();
        await page.locator('.part.sidebar a.action-label[aria-label^="Open Experiments"]').click();
        await page.locator('.tab.active', { hasText: 'Experiments' }).waitFor({ timeout: UI_TIMEOUT });
        const view = webviewContent(page);
        await view.locator('body[data-ready="true"][data-rows="6"]').waitFor({ timeout: 60_000 });
        // the Analysis panel is folded until opened (the table keeps the room)
        await view.locator('details.analysis-panel > summary').click();
        await view.locator('details.analysis-panel[open] svg.parallel-chart').waitFor({ timeout: UI_TIMEOUT });

        // ---- 1. group by everything but the seed ----------------------------------------------------------
        await view.locator('vscode-checkbox.group-toggle').click();
        await view.locator('body[data-groups="2"]').waitFor({ timeout: UI_TIMEOUT });
        await view.locator('.group-view:not([hidden]) table.group-table').waitFor({ timeout: UI_TIMEOUT });
        for (const method of ['houlsby', 'lora']) {
          const row = view.locator('tr.group-row', {
            has: view.locator(`.key-part[data-param="method.type"]`, { hasText: method }),
          });
          assert.equal(await row.locator('td.group-n').innerText(), '3', `${method}: N = 3`);
          // the seeds' losses differ (the tiny task's accuracies may not)
          for (const metric of ['accuracy', 'loss']) {
            assert.equal(
              await row.locator(`td[data-metric="best:${metric}"] .mean-sd`).innerText(),
              meanSd(ws.best[method][metric]),
              `${method}: mean ± sd of best ${metric}`,
            );
          }
        }
        const caption = await view.locator('.groups-caption').innerText();
        assert.match(caption, /2 groups by .*method\.type/);
        assert.doesNotMatch(caption, /seed,|training\.seed/, 'the seed is not a grouping parameter');
        await view.locator('tr.group-row').first().locator('button.group-expand').click();
        await view.locator('tr.group-member').nth(2).waitFor({ timeout: UI_TIMEOUT });
        assert.equal(await view.locator('tr.group-member').count(), 3);
        assert.match(
          await view.locator('.importance-method').innerText(),
          /Method: permutation importance .*random forest.*Pearson \/ Spearman/,
        );
        await screenshot(page, 'analysis-groups.png');
        await view.locator('vscode-checkbox.group-toggle').click();
        await view.locator('.grid-wrap:not([hidden]) tbody tr.row').first().waitFor({ timeout: UI_TIMEOUT });

        // ---- 2. brush the method axis: its top half is 'lora' ----------------------------------------------
        const axis = view.locator('.parallel-chart rect.brush-area[data-axis="param:method.type"]');
        await axis.waitFor({ timeout: UI_TIMEOUT });
        const box = await axis.boundingBox();
        await page.mouse.move(box.x + box.width / 2, box.y + 2);
        await page.mouse.down();
        await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.3, { steps: 5 });
        await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.55, { steps: 5 });
        await page.mouse.up();
        await view.locator('body[data-rows="3"]').waitFor({ timeout: UI_TIMEOUT });
        assert.deepEqual(await view.locator('tbody tr.row td[data-column="param:method.type"]').allInnerTexts(), [
          'lora',
          'lora',
          'lora',
        ]);
        assert.match(await view.locator('.brush-summary').innerText(), /3 of 6 runs inside: method\.type lora/);
        await screenshot(page, 'analysis-brushed.png');
        await view.locator('vscode-button.clear-brushes').click();
        await view.locator('body[data-rows="6"]').waitFor({ timeout: UI_TIMEOUT });

        // ---- 3. diff a Houlsby and a LoRA run ---------------------------------------------------------------
        for (const name of ['houlsby-s1', 'lora-s2'])
          await view.locator('tbody tr.row', { hasText: name }).locator('input.row-select').click();
        await view.locator('.counts', { hasText: '2 selected' }).waitFor({ timeout: UI_TIMEOUT });
        await view.locator('vscode-button.diff-button').click();
        await view.locator('.diff-panel:not([hidden]) table.diff-table').waitFor({ timeout: UI_TIMEOUT });
        const methodRow = await view.locator('tr.diff-param[data-param="method.type"]').innerText();
        assert.match(methodRow, /houlsby/);
        assert.match(methodRow, /lora/);
        assert.equal(
          await view.locator('tr.diff-param[data-param="training.seed"]').count(),
          1,
          'seeds 1 and 2 differ',
        );
        assert.equal(
          await view.locator('tr.diff-param[data-param="training.epochs"]').count(),
          0,
          'equal parameters are left out',
        );
        assert.equal(await view.locator('tr.diff-metric[data-metric="best:accuracy"] td.num').count(), 2);
        await screenshot(page, 'analysis-diff.png');
        await view.locator('vscode-button.close-diff').click();

        // ---- 4. export the table as CSV and the parallel coordinates as SVG -----------------------------------
        await view.locator('vscode-button.export-csv').click();
        await acceptSaveDialog(page);
        const csv = await waitForFile(join(ws.folder, 'experiments.csv'));
        const lines = csv.trim().split(/\r?\n/);
        assert.equal(lines.length, 7, 'a header and six runs');
        assert.match(lines[0], /^run,.*method\.type.*,best accuracy/);
        await view.locator('vscode-button.export-svg').click();
        await acceptSaveDialog(page);
        const svg = await waitForFile(join(ws.folder, 'parallel-coordinates.svg'));
        assert.match(svg, /^<\?xml/);
        assert.equal((svg.match(/<polyline/g) ?? []).length, 6, 'a line per run');
        assert.match(svg, /<polyline[^>]* stroke="rgb\(/, 'colours written out, so it looks the same outside VS Code');
        await screenshot(page, 'analysis-exported.png');

        // ---- 5. the Houlsby group in the dashboard: its mean with a band ---------------------------------------
        await view.locator('vscode-checkbox.group-toggle').click();
        await view.locator('body[data-groups="2"]').waitFor({ timeout: UI_TIMEOUT });
        const houlsby = view.locator('tr.group-row', {
          has: view.locator('.key-part[data-param="method.type"]', { hasText: 'houlsby' }),
        });
        await houlsby.locator('button.group-open').click();
        await page.locator('.tab.active', { hasText: 'Group: method.type houlsby' }).waitFor({ timeout: 60_000 });
        const dashboard = webviewContent(page);
        await dashboard.locator('body[data-ready="true"][data-mode="groups"]').waitFor({ timeout: 60_000 });
        const lossChart = dashboard.locator('section.chart[data-chart="loss"]');
        await lossChart.locator('svg.band-layer path.band').first().waitFor({ timeout: UI_TIMEOUT });
        const meanLabels = await lossChart.locator('.u-legend .mean-row .u-label').allInnerTexts();
        // named by the grouping column that tells it from the LoRA group, and N
        assert.equal(
          meanLabels[0],
          'method.type houlsby (N = 3)',
          'one training-loss mean, named by the group and its N',
        );
        assert.ok(
          meanLabels.slice(1).every((l) => /validation \(N = 3\)$/.test(l)),
          `the rest is the validation loss: ${meanLabels}`,
        );
        const bands = lossChart.locator('svg.band-layer path.band');
        assert.equal(await bands.count(), meanLabels.length, 'a band per mean line');
        assert.equal(await bands.first().getAttribute('data-series'), meanLabels[0]);
        assert.match(await bands.first().getAttribute('d'), /^M[\d.,L-]+Z/, 'a closed path around the mean');
        const metricChart = dashboard.locator('section.chart[data-chart="metric"]');
        assert.equal(
          await metricChart.locator('svg.band-layer path.band').count(),
          1,
          'the validation metric: one mean with its band',
        );
        assert.match(
          await metricChart.locator('.u-legend .mean-row .u-label').innerText(),
          /^method\.type houlsby accuracy \(N = 3\)$/,
        );
        await screenshot(page, 'analysis-group-dashboard.png');
        await lossChart.locator('button.export-csv').click();
        await acceptSaveDialog(page);
        const groupCsv = parseCsv(await waitForFile(join(ws.folder, 'group-loss.csv')));
        const header = groupCsv[0];
        const col = (name) => header.indexOf(`method.type houlsby training loss ${name}`);
        for (const c of ['mean', 'sd', 'n']) assert.ok(col(c) > 0, `a ${c} column: ${header.join(' | ')}`);
        const losses = readdirSync(ws.runs)
          .filter((d) => d.startsWith('houlsby-'))
          .map((d) => trainLoss(join(ws.runs, d)));
        const row = groupCsv.find((r, i) => i > 0 && r[col('n')] === '3');
        assert.ok(row, 'a step that all three runs logged');
        const values = losses.map((l) => l.get(Number(row[0])));
        const mean = values.reduce((a, b) => a + b, 0) / 3;
        const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / 2);
        assert.ok(
          Math.abs(Number(row[col('mean')]) - mean) < 1e-9,
          `mean at step ${row[0]}: ${row[col('mean')]} vs ${mean}`,
        );
        assert.ok(Math.abs(Number(row[col('sd')]) - sd) < 1e-9, `sd at step ${row[0]}: ${row[col('sd')]} vs ${sd}`);
        await page.locator('.tab.active .tab-actions a.action-label[aria-label^="Close"]').click();
        await page.locator('.tab.active', { hasText: 'Experiments' }).waitFor({ timeout: UI_TIMEOUT });

        // ---- 6. "Show Differences" from the Runs sidebar ----------------------------------------------------------
        const sidebarRun = (name) =>
          page.locator(`${PEFT_LAB_VIEW} .monaco-list-row`, { hasText: new RegExp(`${name}-\\d{8}`) }).first();
        await sidebarRun('houlsby-s2').click();
        await sidebarRun('lora-s3').click({ modifiers: ['Control'] });
        await page.locator(`${PEFT_LAB_VIEW} .monaco-list-row.selected`).nth(1).waitFor({ timeout: UI_TIMEOUT });
        await contextAction(page, sidebarRun('lora-s3'), 'Show Differences');
        const diffView = webviewContent(page);
        await diffView.locator('.diff-panel:not([hidden]) table.diff-table').waitFor({ timeout: 60_000 });
        const diffRows = diffView.locator('tr.diff-param');
        assert.ok((await diffRows.count()) >= 2, 'at least the method and the seed differ');
        for (const param of ['method.type', 'training.seed'])
          assert.equal(await diffView.locator(`tr.diff-param[data-param="${param}"]`).count(), 1, `${param} differs`);
        for (let i = 0; i < (await diffRows.count()); i++) {
          const cells = await diffRows.nth(i).locator('td:not(:first-child)').allInnerTexts();
          assert.equal(cells.length, 2, 'a value per run');
          assert.notEqual(
            cells[0],
            cells[1],
            `${await diffRows.nth(i).getAttribute('data-param')}: only differing fields are listed`,
          );
        }
        assert.equal(
          await diffView.locator('tr.diff-param[data-param="training.epochs"]').count(),
          0,
          'equal parameters are left out',
        );
        const diffHead = await diffView.locator('table.diff-table thead').innerText();
        assert.match(diffHead, /houlsby-s2/);
        assert.match(diffHead, /lora-s3/);
        await screenshot(page, 'analysis-sidebar-diff.png');

        assert.deepEqual(ui.cspViolations, [], 'no Content-Security-Policy violations');
      },
    );
  },
);
