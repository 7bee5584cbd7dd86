/**
 * Parallel coordinates as SVG (a line per run, an axis per varying parameter and the metric), with
 * brushing: drag along an axis to keep the runs whose value lies in the range, click the axis
 * outside the brush to clear it. Lines are coloured by the metric (the theme's chart colours);
 * runs outside the brushes stay as faint lines for context. Keyboard users get the same filtering
 * from the table's column filters.
 */
import type { ExperimentRow } from '../../src/protocol/experiments';
import { MISSING_POSITION, type Brushes, type ParallelAxis } from '../model/parallel';

const SVG = 'http://www.w3.org/2000/svg';
const HEIGHT = 240;
const M = { left: 30, right: 60, top: 28, bottom: 24 };
const AXIS_GAP = 150;

export interface ParallelOptions {
  brushes: Brushes;
  /** Rows inside every brush (drawn strong); the others faint. */
  kept: ReadonlySet<string>;
  onBrush(axisId: string, range: readonly [number, number] | undefined): void;
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

export function renderParallel(
  rows: readonly ExperimentRow[],
  axes: readonly ParallelAxis[],
  opts: ParallelOptions,
): SVGSVGElement {
  const width = M.left + M.right + AXIS_GAP * Math.max(1, axes.length - 1);
  const plotH = HEIGHT - M.top - M.bottom;
  const svg = el('svg', {
    class: 'parallel-chart',
    viewBox: `0 0 ${width} ${HEIGHT}`,
    width,
    height: HEIGHT,
    role: 'img',
    'aria-label': `Parallel coordinates over ${axes.map((a) => a.label).join(', ')}`,
    'data-axes': axes.length,
    'data-lines': rows.length,
  });
  const x = (i: number) => M.left + i * AXIS_GAP;
  // an axis with a "missing" slot gets room for it below its range (every axis the same scale)
  const lowest = axes.some((a) => a.hasMissing) ? MISSING_POSITION : 0;
  const y = (p: number) => M.top + ((1 - p) / (1 - lowest)) * plotH;
  const metric = axes[axes.length - 1];
  const lines = el('g', { class: 'lines' });
  svg.appendChild(lines);
  // faint lines first, so the kept ones are drawn on top
  const ordered = [...rows].sort((a, b) => Number(opts.kept.has(a.dir)) - Number(opts.kept.has(b.dir)));
  for (const row of ordered) {
    const points: string[] = [];
    axes.forEach((a, i) => points.push(`${x(i)},${y(a.position(row))}`));
    if (points.length < 2) continue;
    const metricValue = metric?.position(row);
    const level = metricValue === undefined || metricValue < 0 ? undefined : metricValue;
    const kept = opts.kept.has(row.dir);
    const band = level === undefined ? 'none' : level >= 2 / 3 ? 'high' : level >= 1 / 3 ? 'mid' : 'low';
    const line = el('polyline', {
      class: `run-line level-${band}${kept ? ' kept' : ' dimmed'}`,
      points: points.join(' '),
      'data-dir': row.dir,
    });
    if (rows.length <= 200) line.appendChild(el('title', {}, row.name)); // a tooltip per line is noise (and cost) beyond that
    lines.appendChild(line);
  }
  axes.forEach((a, i) => svg.appendChild(axisGroup(a, x(i), y, plotH, opts)));
  return svg;
}

function axisGroup(
  a: ParallelAxis,
  ax: number,
  y: (p: number) => number,
  plotH: number,
  opts: ParallelOptions,
): SVGGElement {
  const g = el('g', { class: 'pc-axis', 'data-axis': a.id });
  g.appendChild(el('line', { class: 'axis', x1: ax, x2: ax, y1: y(0), y2: y(1) }));
  for (const t of a.ticks()) {
    const missing = t.at < 0;
    g.append(
      el('line', {
        class: missing ? 'axis missing-slot' : 'axis',
        x1: ax - 3,
        x2: ax + (missing ? 3 : 0),
        y1: y(t.at),
        y2: y(t.at),
      }),
      el(
        'text',
        { class: missing ? 'tick missing' : 'tick', x: ax + 5, y: y(t.at) + 3 },
        t.label.length > 18 ? `${t.label.slice(0, 17)}…` : t.label,
      ),
    );
  }
  const bottom = a.hasMissing ? MISSING_POSITION : 0;
  g.appendChild(
    el(
      'text',
      { class: 'axis-label', x: ax, y: 14, 'text-anchor': 'middle' },
      a.label.length > 24 ? `…${a.label.slice(-23)}` : a.label,
    ),
  );
  const brush = opts.brushes.get(a.id);
  const rect = el('rect', {
    class: 'brush',
    x: ax - 7,
    width: 14,
    y: brush ? y(brush[1]) : 0,
    height: brush ? Math.max(2, y(brush[0]) - y(brush[1])) : 0,
    'data-axis': a.id,
  });
  if (!brush) rect.setAttribute('visibility', 'hidden');
  // the hit area: a wide transparent strip along the axis
  const hit = el('rect', {
    class: 'brush-area',
    x: ax - 12,
    width: 24,
    y: y(1) - 4,
    height: y(bottom) - y(1) + 8,
    'data-axis': a.id,
  });
  hit.appendChild(el('title', {}, `${a.label}: drag to keep a range, click to clear`));
  g.append(rect, hit);
  const toPosition = (event: PointerEvent) => {
    const svg = hit.ownerSVGElement!;
    const point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    const local = point.matrixTransform(svg.getScreenCTM()!.inverse());
    const span = y(0) - y(1);
    return Math.max(bottom, Math.min(1, 1 - (local.y - y(1)) / span));
  };
  hit.addEventListener('pointerdown', (down: PointerEvent) => {
    down.preventDefault();
    hit.setPointerCapture(down.pointerId);
    const start = toPosition(down);
    let end = start;
    const draw = () => {
      rect.setAttribute('visibility', 'visible');
      rect.setAttribute('y', String(y(Math.max(start, end))));
      rect.setAttribute('height', String(Math.max(2, Math.abs(y(start) - y(end)))));
    };
    const move = (e: PointerEvent) => {
      end = toPosition(e);
      draw();
    };
    const up = (e: PointerEvent) => {
      hit.removeEventListener('pointermove', move);
      hit.removeEventListener('pointerup', up);
      end = toPosition(e);
      // a click (no drag) clears the axis's brush
      if (Math.abs(end - start) * plotH < 3) opts.onBrush(a.id, undefined);
      else opts.onBrush(a.id, [Math.min(start, end), Math.max(start, end)]);
    };
    hit.addEventListener('pointermove', move);
    hit.addEventListener('pointerup', up);
  });
  return g;
}
