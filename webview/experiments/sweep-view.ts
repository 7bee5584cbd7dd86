/**
 * A sweep's parameter-vs-metric scatter, as SVG (a few dozen points: no chart library needed, and
 * every colour comes from the theme through CSS classes). A numeric parameter spanning two decades
 * or more (learning rates) gets a log axis; a text one (method type) a category axis. Clicking a
 * point focuses its run in the table.
 */
import type { SweepChart } from '../model/experiments-table';
import { formatNumber } from '../model/experiments-table';
import { formatMetricValue } from '../../src/protocol/format';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 560;
const HEIGHT = 200;
const M = { left: 64, right: 16, top: 12, bottom: 40 };

export interface SweepChartOptions {
  xLabel: string;
  yLabel: string;
  onPick(dir: string): void;
}

function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

interface Axis {
  scale(v: number): number;
  ticks: { at: number; label: string }[];
}

export function renderSweepChart(chart: SweepChart, opts: SweepChartOptions): SVGSVGElement {
  const svg = el('svg', {
    class: 'sweep-chart',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    width: WIDTH,
    height: HEIGHT,
    role: 'img',
    'aria-label': `${opts.yLabel} against ${opts.xLabel}`,
    'data-points': chart.points.length,
  });
  const plotW = WIDTH - M.left - M.right;
  const plotH = HEIGHT - M.top - M.bottom;
  const x = chart.categories
    ? categoryAxis(chart.categories, plotW)
    : numericAxis(
        chart.points.map((p) => p.x),
        plotW,
        true,
      );
  const y = numericAxis(
    chart.points.map((p) => p.y),
    plotH,
    false,
  );
  const g = el('g', { transform: `translate(${M.left},${M.top})` });
  svg.appendChild(g);
  for (const t of y.ticks) {
    const py = plotH - y.scale(t.at);
    g.append(
      el('line', { class: 'grid-line', x1: 0, x2: plotW, y1: py, y2: py }),
      el('text', { class: 'tick', x: -6, y: py + 4, 'text-anchor': 'end' }, t.label),
    );
  }
  for (const t of x.ticks)
    g.appendChild(el('text', { class: 'tick', x: x.scale(t.at), y: plotH + 16, 'text-anchor': 'middle' }, t.label));
  g.append(
    el('line', { class: 'axis', x1: 0, x2: plotW, y1: plotH, y2: plotH }),
    el('line', { class: 'axis', x1: 0, x2: 0, y1: 0, y2: plotH }),
    el('text', { class: 'axis-label', x: plotW / 2, y: plotH + 34, 'text-anchor': 'middle' }, opts.xLabel),
    el(
      'text',
      { class: 'axis-label', transform: `translate(${-50},${plotH / 2}) rotate(-90)`, 'text-anchor': 'middle' },
      opts.yLabel,
    ),
  );
  const best = chart.best;
  chart.points.forEach((p, i) => {
    const dot = el('circle', {
      class: `point${i === best ? ' best' : ''}`,
      cx: x.scale(p.x),
      cy: plotH - y.scale(p.y),
      r: i === best ? 6 : 4.5,
      tabindex: 0,
      'data-dir': p.dir,
    });
    dot.appendChild(
      el('title', {}, `${p.name}\n${opts.xLabel} = ${p.xText}\n${opts.yLabel} = ${formatMetricValue(p.y)}`),
    );
    dot.addEventListener('click', () => opts.onPick(p.dir));
    g.appendChild(dot);
  });
  return svg;
}

function categoryAxis(categories: string[], length: number): Axis {
  const step = length / Math.max(1, categories.length);
  return { scale: (v) => step * (v + 0.5), ticks: categories.map((label, i) => ({ at: i, label })) };
}

/** A linear axis with a little padding, or (x only) a log axis when every value is positive and they span 100x or more. */
function numericAxis(values: number[], length: number, allowLog: boolean): Axis {
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (allowLog && lo > 0 && hi / lo >= 100) {
    const a = Math.log10(lo) - 0.15;
    const b = Math.log10(hi) + 0.15;
    const ticks = [];
    for (let e = Math.ceil(a); e <= Math.floor(b); e++) ticks.push({ at: 10 ** e, label: formatNumber(10 ** e) });
    return { scale: (v) => ((Math.log10(v) - a) / (b - a)) * length, ticks };
  }
  if (lo === hi) {
    lo -= Math.abs(lo) * 0.1 || 1;
    hi += Math.abs(hi) * 0.1 || 1;
  }
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const ticks = niceTicks(lo, hi, 5).map((at) => ({ at, label: formatNumber(at) }));
  return { scale: (v) => ((v - lo) / (hi - lo)) * length, ticks };
}

function niceTicks(lo: number, hi: number, count: number): number[] {
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}
