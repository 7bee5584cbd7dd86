#!/usr/bin/env node
/**
 * How fast the Experiments table draws a workspace of many runs, in a real browser (Debian's
 * Chromium, headless, through playwright-core, as the UI tests use it). Prints JSON.
 *
 *   npm run build && node bench/experiments-table.mjs            (or: --runs 5000)
 *
 * The page is the webview's: the built media/experiments.js and .css with a stand-in for
 * acquireVsCodeApi and VS Code's dark theme variables. Times are measured inside the page with
 * performance.now(), from handing the message to the webview's handler (validation included) to
 * the end of the synchronous render, and "toFrame" up to the next animation frame (layout, paint).
 *
 * Measured (N synthetic runs: 4 methods, 30 config fields of which 6 differ, 4 metrics, half of
 * them in two sweeps):
 *   firstRender     every row received and drawn from nothing
 *   sort            a click on the "best accuracy" header (sort), median of 5
 *   reverse         a second click on it (reverse), median of 5
 *   filter          the text filter set to a word matching a quarter of the runs
 *   columnFilter    a per-column filter `>0.8` on best accuracy
 *   scroll          a jump to the middle of the table (the rows in view drawn again)
 *   liveUpdate      10 changed rows arriving (the live case), median of 20
 *   parallelCoordinates  the Analysis panel's chart of every run, drawn (once the panel is
 *                   opened) in the frame after the table, so the table does not wait for it
 *   vscodeTable     for comparison: the same rows and shown columns as @vscode-elements'
 *                   <vscode-table> (every row a web component), drawn from nothing
 */
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { ROOT, benchWebview, numberArg, rounded } from './browser.mjs';

const RUNS = numberArg('--runs', 1000);
const WIDTH = numberArg('--width', 1400);

/** <vscode-table> and its parts as a classic script (the package ships ES modules, which file:// pages cannot import). */
async function bundleVscodeTable(dir) {
  await esbuild.build({
    stdin: {
      contents: ['table', 'table-header', 'table-header-cell', 'table-body', 'table-row', 'table-cell']
        .map((c) => `import '@vscode-elements/elements/dist/vscode-${c}/index.js';`)
        .join('\n'),
      resolveDir: ROOT,
    },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    outfile: join(dir, 'vscode-table.js'),
    logLevel: 'silent',
  });
}

/** Runs in the page: synthetic rows and the timed operations. */
async function measure({ runs }) {
  const now = () => performance.now();
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const app = window.peftLabExperiments;

  let seed = 7;
  const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];
  const METHODS = ['houlsby', 'pfeiffer', 'lora', 'adamix'];
  function row(i, version = 0) {
    const method = pick(METHODS);
    const acc = 0.5 + 0.4 * rand();
    const params = {
      'model.scratch.layers': 2,
      'model.scratch.hiddenSize': 128,
      'model.scratch.heads': 2,
      'model.scratch.intermediateSize': 512,
      'model.scratch.vocab': '/work/vocab.txt',
      'task.type': 'classification',
      'task.metric': 'accuracy',
      'task.labels': '[negative, positive]',
      'data.train': '/work/data/train.jsonl',
      'data.validation': '/work/data/validation.jsonl',
      'data.textField': 'text',
      'data.labelField': 'label',
      'data.maxLength': 64,
      'method.type': method,
      'method.activation': 'gelu',
      'method.initStd': 0.001,
      'method.leaveOut': '[]',
      'training.epochs': 3,
      'training.batchSize': pick([16, 32]),
      'training.learningRate': pick([1e-4, 3e-4, 1e-3, 3e-3]),
      'training.seed': 1 + (i % 5),
      'training.warmupRatio': 0.06,
      'training.weightDecay': 0.01,
      'training.maxGradNorm': 1,
      'training.evalEvery': 'epoch',
      'training.logEvery': 10,
      'training.keepCheckpoints': 2,
      'training.backend': 'auto',
    };
    if (method === 'lora') params['method.rank'] = pick([4, 8, 16]);
    else params['method.bottleneck'] = pick([8, 16, 32, 64]);
    if (method === 'adamix') params['method.experts'] = 4;
    const metrics = { accuracy: acc, f1: acc - 0.02, mcc: 2 * acc - 1, loss: 1 - acc };
    const started = Date.UTC(2026, 10, 1) + i * 60_000;
    return {
      dir: `/runs/run-${i}`,
      folder: `run-${i}`,
      name: i % 10 === 0 ? `renamed ${i}` : `run-${i}`,
      starred: i % 13 === 0,
      note: i % 7 === 0 ? `note ${i} v${version}` : '',
      state: i % 50 === 0 ? 'running' : 'finished',
      stateText: i % 50 === 0 ? 'running' : 'finished',
      config: `${method}.peft.json`,
      started,
      durationMs: 60_000 + i * 10,
      step: 225,
      totalSteps: 225,
      backend: 'wasm',
      examplesPerSecond: 40 + 10 * rand(),
      trainableParams: 100_000 + Math.round(50_000 * rand()),
      metric: 'accuracy',
      lowerIsBetter: false,
      best: metrics,
      final: { ...metrics, accuracy: acc - 0.01 },
      test: {},
      trainLoss: 0.4 + 0.2 * rand(),
      params,
      sweep:
        i % 2 === 0
          ? {
              id: i % 4 === 0 ? 'lr-sweep' : 'bottleneck-sweep',
              point: { 'training.learningRate': params['training.learningRate'] },
            }
          : undefined,
      problems: [],
    };
  }

  const timed = async (fn) => {
    const t0 = now();
    fn();
    app.render();
    const render = now() - t0;
    await frame();
    return { render, toFrame: now() - t0 };
  };

  const results = {};
  const rows = Array.from({ length: runs }, (_, i) => row(i));
  await frame();
  results.firstRender = await timed(() => app.receive({ type: 'rows', rows }));
  results.firstRenderParts = app.lastTimings;
  // the Analysis panel is folded by default: open it, as a user does, and time its chart
  document.querySelector('details.analysis-panel').open = true;
  for (let i = 0; i < 20 && !document.querySelector('.parallel-chart'); i++) await frame();
  results.parallelCoordinates = {
    draw: app.lastParallelMs,
    lines: document.querySelectorAll('.parallel-chart polyline').length,
  };
  document.querySelector('details.analysis-panel').open = false;
  await frame();
  const shownColumns = document.querySelectorAll('thead tr.head-row th[data-column]').length;
  const domRows = document.querySelectorAll('tbody tr.row').length;

  const header = () => document.querySelector('thead button.sort-button[data-column="best:accuracy"]');
  const sorts = [];
  const reverses = [];
  const order = [];
  for (let i = 0; i < 5; i++) {
    const first = await timed(() => header().click());
    if (i === 0)
      order.push(
        ...[...document.querySelectorAll('tbody tr.row td[data-column="best:accuracy"]')]
          .slice(0, 3)
          .map((td) => td.textContent),
      );
    const second = await timed(() => header().click());
    sorts.push(first.toFrame);
    reverses.push(second.toFrame);
    // sorted by another column in between, so the next click on the header is a new sort again
    await timed(() => document.querySelector('thead button.sort-button[data-column="name"]').click());
  }
  results.sort = { toFrame: median(sorts), max: Math.max(...sorts) };
  results.reverse = { toFrame: median(reverses), max: Math.max(...reverses) };

  const field = document.querySelector('vscode-textfield.text-filter');
  results.filter = await timed(() => {
    field.value = 'lora';
    field.dispatchEvent(new Event('input'));
  });
  results.filteredRows = Number(document.body.dataset.rows);
  await timed(() => {
    field.value = '';
    field.dispatchEvent(new Event('input'));
  });
  const box = document.querySelector('input.column-filter[data-column="best:accuracy"]');
  results.columnFilter = await timed(() => {
    box.value = '>0.8';
    box.dispatchEvent(new Event('input'));
  });
  results.columnFilteredRows = Number(document.body.dataset.rows);
  await timed(() => {
    box.value = '';
    box.dispatchEvent(new Event('input'));
  });

  const grid = document.querySelector('.grid-wrap');
  const t0 = now();
  grid.scrollTop = grid.scrollHeight / 2;
  await frame();
  await frame();
  results.scroll = { toFrame: now() - t0, firstRowShown: document.querySelector('tbody tr.row')?.dataset.index };

  const live = [];
  for (let k = 0; k < 20; k++) {
    const changed = Array.from({ length: 10 }, (_, j) => row((k * 37 + j * 101) % runs, k + 1));
    live.push((await timed(() => app.receive({ type: 'rowsChanged', rows: changed, removed: [] }))).toFrame);
  }
  results.liveUpdate = { toFrame: median(live), max: Math.max(...live) };

  // the same rows and shown columns as <vscode-table>
  const ids = [...document.querySelectorAll('thead tr.head-row th[data-column]')].map((th) => th.dataset.column);
  const labels = [...document.querySelectorAll('thead tr.head-row th[data-column] .head-label')].map(
    (s) => s.textContent,
  );
  const cells = rows.map((r) =>
    ids.map((id) => {
      const [kind, key] = id.includes(':') ? id.split(/:(.*)/) : [id, ''];
      const v =
        kind === 'param' ? r.params[key] : kind === 'best' ? r.best[key] : kind === 'final' ? r.final[key] : r[kind];
      return v === undefined || v === null ? '' : typeof v === 'number' ? String(Number(v.toPrecision(6))) : String(v);
    }),
  );
  const host = document.createElement('div');
  host.style.height = '600px';
  document.body.appendChild(host);
  await customElements.whenDefined('vscode-table');
  const t1 = now();
  const table = document.createElement('vscode-table');
  table.setAttribute('zebra', '');
  table.setAttribute('resizable', '');
  const head = document.createElement('vscode-table-header');
  head.setAttribute('slot', 'header');
  for (const label of labels) {
    const c = document.createElement('vscode-table-header-cell');
    c.textContent = label;
    head.appendChild(c);
  }
  const body = document.createElement('vscode-table-body');
  body.setAttribute('slot', 'body');
  for (const values of cells) {
    const tr = document.createElement('vscode-table-row');
    for (const v of values) {
      const td = document.createElement('vscode-table-cell');
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  table.append(head, body);
  host.appendChild(table);
  const built = now() - t1;
  await table.updateComplete;
  await frame();
  await frame();
  results.vscodeTable = { build: built, toFrame: now() - t1, elements: table.querySelectorAll('*').length };

  return { shownColumns, domRows, order, results };
}

await benchWebview(
  {
    name: 'experiments-table',
    bundle: 'experiments',
    width: WIDTH,
    extraScripts: ['vscode-table.js'],
    prepare: bundleVscodeTable,
  },
  async (page) => {
    await page.waitForFunction(() => window.peftLabExperiments !== undefined);
    const { shownColumns, domRows, order, results } = await page.evaluate(measure, { runs: RUNS });
    return {
      runs: RUNS,
      shownColumns,
      rowsInDom: domRows,
      unit: 'ms',
      ...rounded(results),
      bestAccuracyAfterSort: order,
    };
  },
);
