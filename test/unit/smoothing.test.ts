/** The dashboard's smoothing choices (webview/model/series.ts): TensorBoard's EMA, the moving average, none; the raw series kept. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chartCsv, chartSvg } from '../../webview/model/chart-export';
import { emaSmooth, movingAverage, SmoothingCache, windowForWeight } from '../../webview/model/series';

test('EMA as TensorBoard computes it: debiased, so the first point is the first value', () => {
  // tensorboard/webapp/widgets/line_chart_v2/lib/data_transformer.ts: last = last * w + (1 - w) * v; v_s = last / (1 - w^n)
  const w = 0.6;
  const values = [1, 2, 3, NaN, 4];
  const out = emaSmooth(values, w);
  assert.equal(out[0], 1);
  const second = (0.4 * 1 * 0.6 + 0.4 * 2) / (1 - 0.36);
  assert.ok(Math.abs(out[1]! - second) < 1e-12);
  assert.ok(Number.isNaN(out[3]), 'a non-finite value passes through');
});

test('moving average: a trailing window, shorter at the start; its window follows the EMA weight (span = 2 / (1 - w) - 1)', () => {
  assert.deepEqual(movingAverage([2, 4, 6, 8, null, 10], 2), [2, 3, 5, 7, null, 9]);
  assert.equal(windowForWeight(0.6), 4);
  assert.equal(windowForWeight(0.9), 19);
  assert.equal(windowForWeight(0), 1);
  const cache = new SmoothingCache();
  assert.deepEqual(cache.smooth('k', [1, 3], 0.6, 'none'), [1, 3]);
  assert.deepEqual(cache.smooth('k', [1, 3, 5, 7, 9], 0.6, 'moving'), [1, 2, 3, 4, 6]);
});

test('chart export: CSV with every series (raw kept), SVG with a line per series and the legend', () => {
  const model = {
    id: 'loss' as const,
    title: 'Loss',
    x: [1, 2, 3],
    logCapable: true,
    points: 3,
    series: [
      { label: 'training loss (raw)', run: 0, metric: 0, role: 'raw' as const },
      { label: 'training loss (smoothed)', run: 0, metric: 0, role: 'smoothed' as const },
    ],
    ys: [
      [0.9, 0.7, null],
      [0.9, 0.8, 0.75],
    ],
  };
  assert.equal(
    chartCsv(model),
    'step,training loss (raw),training loss (smoothed)\r\n1,0.9,0.9\r\n2,0.7,0.8\r\n3,,0.75\r\n',
  );
  const svg = chartSvg(model, {
    colors: ['#f00', '#0f0'],
    background: '#000',
    foreground: '#fff',
    grid: '#333',
    font: 'sans-serif',
  });
  assert.match(svg, /^<\?xml/);
  assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
  assert.match(svg, /stroke="#f00" stroke-width="1" stroke-opacity="0\.35"/, 'the raw line faint');
  assert.match(svg, />training loss \(smoothed\)</);
});
