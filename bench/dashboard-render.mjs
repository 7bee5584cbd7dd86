#!/usr/bin/env node
/**
 * How fast the dashboard webview draws a long run, in a real browser (Debian's Chromium, headless,
 * through playwright-core, as the UI tests use it). Prints JSON.
 *
 *   npm run build && npm run bench:dashboard            (or: node bench/dashboard-render.mjs --steps 100000)
 *
 * The page is media/dashboard.html's equivalent: the built media/dashboard.js and .css with a
 * stand-in for acquireVsCodeApi and VS Code's dark theme variables. Every time is measured inside
 * the page with performance.now(), from handing the message to the webview's message handler
 * (validation included) to the end of the synchronous render (uPlot draws inside it), and "toFrame"
 * up to the next animation frame (layout and paint).
 *
 * Measured:
 *   snapshot        a run with N logged steps (and an evaluation every N/100 steps) drawn from nothing
 *   append1         one new step appended to that run (the live case), median of 60
 *   append10        ten new steps at once, median of 30
 *   smoothing       the smoothing slider moved (every EMA recomputed), median of 10
 *   zoom            a zoom to the middle 10% of steps (all three charts), median of 10
 *   hover           a cursor move over the loss chart (synced read-out on all charts), median of 60
 *   compare3        three such runs overlaid, drawn from nothing
 */
import { benchWebview, numberArg, rounded } from './browser.mjs';

const STEPS = numberArg('--steps', 100_000);
const WIDTH = numberArg('--width', 1200);

/** Runs in the page: synthetic runs and the timed operations. */
async function measure({ steps }) {
  const now = () => performance.now();
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const app = window.peftLabDashboard;

  let seed = 1;
  const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  function run(name, n, offset = 0) {
    const step = new Array(n),
      epoch = new Array(n),
      loss = new Array(n),
      learningRate = new Array(n),
      eps = new Array(n),
      elapsed = new Array(n);
    const warm = Math.round(0.06 * n);
    for (let i = 0; i < n; i++) {
      const s = i + 1;
      step[i] = s;
      epoch[i] = Math.floor((10 * i) / n);
      loss[i] = 0.3 + 0.4 * Math.exp(-s / (n / 5)) + offset + 0.08 * (rand() - 0.5);
      learningRate[i] = s < warm ? (1e-3 * s) / warm : (1e-3 * (n - s)) / (n - warm);
      eps[i] = 50 + 5 * rand();
      elapsed[i] = s * 600;
    }
    const evals = [];
    for (let s = n / 100; s <= n; s += n / 100) {
      evals.push({
        step: s,
        split: 'validation',
        metrics: {
          accuracy: 0.5 + 0.4 * (1 - Math.exp(-s / (n / 4))),
          f1: 0.5 + 0.35 * (1 - Math.exp(-s / (n / 4))),
          mcc: 0.6 * (1 - Math.exp(-s / (n / 4))),
          loss: 0.35 + 0.3 * Math.exp(-s / (n / 5)) + offset,
        },
        isBest: true,
      });
    }
    const placement = {
      method: 'adamix',
      layers: 12,
      hiddenSize: 768,
      heads: 12,
      intermediateSize: 3072,
      baseParams: 109482240,
      trainableParams: 1200000,
      trainableByGroup: { adapter: 1180000, layerNorm: 18000, head: 1538 },
      leftOut: [],
      sites: Array.from({ length: 12 }, (_, layer) => ({
        layer,
        site: 'ffn',
        kind: 'adamix',
        shapes: { down: [768, 48], up: [48, 768] },
        bottleneck: 48,
        activation: 'gelu',
        experts: { down: 4, up: 1 },
        trainableParams: 185376,
        inferenceParams: 74544,
      })),
    };
    return {
      dir: `/runs/${name}`,
      name,
      configFile: `/work/${name}.peft.json`,
      config: {
        name,
        task: { type: 'classification', metric: 'accuracy' },
        method: { type: 'adamix', bottleneck: 48, experts: 4 },
        training: { epochs: 10, batchSize: 32 },
      },
      status: {
        state: 'running',
        step: n,
        totalSteps: n * 2,
        backend: 'wasm',
        started: new Date().toISOString(),
        followed: true,
      },
      placement,
      train: { step, epoch, loss, learningRate, examplesPerSecond: eps, elapsedMs: elapsed },
      evals,
      checkpoints: [],
      problems: [],
    };
  }

  // uPlot draws in a microtask after setData/setScale: wait for it before reading the clock
  const flush = () => Promise.resolve();
  const timed = async (fn) => {
    const t0 = now();
    fn();
    app.render();
    await flush();
    const render = now() - t0;
    await frame();
    return { render, toFrame: now() - t0 };
  };

  const results = {};
  const single = run('long-run', steps);
  results.snapshot = await timed(() => app.receive({ type: 'snapshot', mode: 'run', runs: [single] }));
  results.snapshotParts = app.lastTimings;
  const points = Number(document.querySelector('[data-chart="loss"]').dataset.points);

  let next = steps;
  const appendOne = (k) => {
    const step = [],
      z = [];
    for (let j = 0; j < k; j++) {
      next++;
      step.push(next);
      z.push(0.3 + 0.05 * Math.random());
    }
    return {
      type: 'append',
      dir: single.dir,
      train: {
        step,
        epoch: step.map(() => 9),
        loss: z,
        learningRate: step.map(() => 1e-5),
        examplesPerSecond: step.map(() => 50),
        elapsedMs: step.map((s) => s * 600),
      },
      evals: [],
    };
  };
  const a1 = [];
  const parts = [];
  for (let i = 0; i < 60; i++) {
    a1.push((await timed(() => app.receive(appendOne(1)))).render);
    parts.push(app.lastTimings);
  }
  results.append1Parts = Object.fromEntries(Object.keys(parts[0]).map((k) => [k, median(parts.map((p) => p[k] ?? 0))]));
  const a10 = [];
  for (let i = 0; i < 30; i++) a10.push((await timed(() => app.receive(appendOne(10)))).render);
  results.append1 = { render: median(a1), max: Math.max(...a1) };
  results.append10 = { render: median(a10), max: Math.max(...a10) };

  const slider = document.querySelector('.smoothing-slider');
  const sm = [];
  for (let i = 0; i < 10; i++) {
    sm.push(
      (
        await timed(() => {
          slider.value = String(0.5 + i * 0.04);
          slider.dispatchEvent(new Event('input'));
        })
      ).render,
    );
  }
  results.smoothing = { render: median(sm) };

  // zoom: uPlot instances are reachable through the select hook; drive it like a drag would
  const over = document.querySelector('[data-chart="loss"] .u-over');
  const rect = over.getBoundingClientRect();
  const zm = [];
  for (let i = 0; i < 10; i++) {
    const t0 = now();
    const x0 = rect.left + rect.width * 0.45,
      x1 = rect.left + rect.width * 0.55,
      y = rect.top + rect.height / 2;
    over.dispatchEvent(new MouseEvent('mousedown', { clientX: x0, clientY: y, bubbles: true, button: 0 }));
    over.dispatchEvent(new MouseEvent('mousemove', { clientX: x1, clientY: y, movementX: x1 - x0, bubbles: true }));
    document.dispatchEvent(new MouseEvent('mouseup', { clientX: x1, clientY: y, bubbles: true, button: 0 }));
    await flush();
    const render = now() - t0;
    await frame();
    if (!app.charts.zoomRange) throw new Error('the synthetic drag did not zoom');
    zm.push(render);
    document.querySelector('.reset-zoom').click();
    await frame();
  }
  results.zoom = { render: median(zm) };

  const hv = [];
  for (let i = 0; i < 60; i++) {
    const t0 = now();
    over.dispatchEvent(
      new MouseEvent('mousemove', {
        clientX: rect.left + (rect.width * (i + 1)) / 62,
        clientY: rect.top + rect.height / 2,
        movementX: 1,
        bubbles: true,
      }),
    );
    await flush();
    hv.push(now() - t0);
    await frame();
  }
  results.hover = { render: median(hv), max: Math.max(...hv) };

  const three = [run('a', steps), run('b', steps, 0.05), run('c', steps, 0.1)];
  results.compare3 = await timed(() => app.receive({ type: 'snapshot', mode: 'compare', runs: three }));
  const c1 = [];
  for (let i = 0; i < 20; i++)
    c1.push((await timed(() => app.receive({ ...appendOne(1), dir: three[i % 3].dir }))).render);
  results.compare3Append1 = { render: median(c1), max: Math.max(...c1) };
  return { points, results };
}

await benchWebview({ name: 'dashboard-render', bundle: 'dashboard', width: WIDTH }, async (page) => {
  await page.waitForFunction(() => window.peftLabDashboard !== undefined);
  const { points, results } = await page.evaluate(measure, { steps: STEPS });
  return { steps: STEPS, lossChartPoints: points, unit: 'ms', ...rounded(results) };
});
