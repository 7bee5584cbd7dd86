/**
 * A dashboard chart as files (no DOM): CSV with a column per series (the raw series included,
 * empty where a series has no point at a step) and a standalone SVG drawn from the same data with
 * the colours the chart uses, so a figure can go into a paper as it looks on screen. A seed group's
 * band is a filled path in both the SVG and the chart; the CSV gets its mean, sd, n, min and max.
 */
import type { ChartBand, ChartModel } from './charts';
import { formatTick } from './format';

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const BAND_COLUMNS = ['mean', 'sd', 'n', 'min', 'max'] as const;

export function chartCsv(model: ChartModel): string {
  // a band's edges are not columns of their own: mean and sd (or min and max) give them
  const shown = model.series.map((s, k) => ({ s, y: model.ys[k]! })).filter(({ s }) => s.role !== 'edge');
  const bands = model.bands ?? [];
  const header = [
    'step',
    ...shown.map(({ s }) => s.label),
    ...bands.flatMap((b) => BAND_COLUMNS.map((c) => `${b.name} ${c}`)),
  ];
  const cell = (v: number | null | undefined) => (v === null || v === undefined ? '' : String(v));
  const lines = [header.map(csvField).join(',')];
  model.x.forEach((step, i) =>
    lines.push(
      [
        String(step),
        ...shown.map(({ y }) => cell(y[i])),
        ...bands.flatMap((b) => BAND_COLUMNS.map((c) => cell(b[c][i]))),
      ].join(','),
    ),
  );
  return `${lines.join('\r\n')}\r\n`;
}

/** Half the width of a band drawn at a lone point (in the path's units: CSS pixels on screen). */
const LONE_HALF_WIDTH = 3;

/**
 * A band as an SVG path: along the upper edge left to right, back along the lower edge, one closed
 * piece per stretch of steps with both edges (a gap ends a piece, except between evaluations, which
 * are joined as their line is); a lone point gets a narrow bar. Coordinates from the given scales;
 * undefined when nothing is drawn.
 */
export function bandPath(
  model: ChartModel,
  band: ChartBand,
  sx: (step: number) => number,
  sy: (value: number) => number,
): string | undefined {
  const lower = model.ys[band.lowerSeries]!;
  const upper = model.ys[band.upperSeries]!;
  const joinGaps = model.series[band.series]?.role === 'eval';
  const pieces: string[] = [];
  let run: number[] = [];
  const flush = () => {
    if (run.length === 1) {
      // a lone point (one evaluation so far): the band as an error bar across it
      const i = run[0]!;
      const x = sx(model.x[i]!);
      const [top, bottom] = [sy(upper[i]!).toFixed(1), sy(lower[i]!).toFixed(1)];
      pieces.push(
        `M${(x - LONE_HALF_WIDTH).toFixed(1)},${top}L${(x + LONE_HALF_WIDTH).toFixed(1)},${top}L${(x + LONE_HALF_WIDTH).toFixed(1)},${bottom}L${(x - LONE_HALF_WIDTH).toFixed(1)},${bottom}Z`,
      );
    } else if (run.length > 1) {
      const top = run.map((i) => `${sx(model.x[i]!).toFixed(1)},${sy(upper[i]!).toFixed(1)}`);
      const bottom = [...run].reverse().map((i) => `${sx(model.x[i]!).toFixed(1)},${sy(lower[i]!).toFixed(1)}`);
      pieces.push(`M${top.join('L')}L${bottom.join('L')}Z`);
    }
    run = [];
  };
  for (let i = 0; i < model.x.length; i++) {
    const lo = lower[i];
    const hi = upper[i];
    if (
      lo === null ||
      lo === undefined ||
      hi === null ||
      hi === undefined ||
      !Number.isFinite(lo) ||
      !Number.isFinite(hi)
    ) {
      if (!joinGaps) flush();
      continue;
    }
    run.push(i);
  }
  flush();
  return pieces.length ? pieces.join('') : undefined;
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export interface SvgStyle {
  /** One colour per series (CSS colour text). */
  readonly colors: readonly string[];
  readonly background: string;
  readonly foreground: string;
  readonly grid: string;
  readonly font: string;
  readonly logScale?: boolean;
  /** Opacity of a group's band (its colour is its mean line's). */
  readonly bandAlpha?: number;
}

const W = 640;
const H = 360;
const M = { left: 64, right: 16, top: 32, bottom: 70 };

export function chartSvg(model: ChartModel, style: SvgStyle): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const values = model.ys
    .flat()
    .filter((v): v is number => v !== null && Number.isFinite(v) && (!style.logScale || v > 0));
  const f = style.logScale ? Math.log10 : (v: number) => v;
  let lo = values.length ? f(Math.min(...values)) : 0;
  let hi = values.length ? f(Math.max(...values)) : 1;
  if (lo === hi) [lo, hi] = [lo - 1, hi + 1];
  const x0 = model.x[0] ?? 0;
  const x1 = model.x[model.x.length - 1] ?? 1;
  const sx = (x: number) => M.left + (x1 === x0 ? pw / 2 : ((x - x0) / (x1 - x0)) * pw);
  const sy = (y: number) => M.top + (1 - (f(y) - lo) / (hi - lo)) * ph;
  const parts: string[] = [
    `<rect x="0" y="0" width="${W}" height="${H}" fill="${style.background}"/>`,
    `<text x="${M.left}" y="20" fill="${style.foreground}" font-family="${escapeXml(style.font)}" font-size="13" font-weight="600">${escapeXml(model.title)}</text>`,
  ];
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    const y = M.top + (1 - k / 4) * ph;
    const label = formatTick(style.logScale ? 10 ** v : v);
    parts.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="${style.grid}"/>`,
      `<text x="${M.left - 6}" y="${y + 4}" text-anchor="end" fill="${style.foreground}" font-family="${escapeXml(style.font)}" font-size="10">${escapeXml(label)}</text>`,
    );
  }
  for (const x of [x0, (x0 + x1) / 2, x1]) {
    parts.push(
      `<text x="${sx(x)}" y="${M.top + ph + 16}" text-anchor="middle" fill="${style.foreground}" font-family="${escapeXml(style.font)}" font-size="10">${escapeXml(formatTick(Math.round(x)))}</text>`,
    );
  }
  parts.push(
    `<text x="${M.left + pw / 2}" y="${M.top + ph + 32}" text-anchor="middle" fill="${style.foreground}" font-family="${escapeXml(style.font)}" font-size="11">step</text>`,
  );
  for (const band of model.bands ?? []) {
    const d = bandPath(model, band, sx, (v) => sy(style.logScale ? Math.max(v, Number.MIN_VALUE) : v));
    if (d)
      parts.push(
        `<path class="band" d="${d}" fill="${style.colors[band.series] ?? style.foreground}" fill-opacity="${style.bandAlpha ?? 0.22}" stroke="none"/>`,
      );
  }
  const legend = model.series.map((s, k) => ({ s, k })).filter(({ s }) => s.role !== 'edge');
  legend.forEach(({ s, k }, at) => {
    const color = style.colors[k] ?? style.foreground;
    const y = model.ys[k]!;
    // a gap (null) ends a line, except for evaluations, which are joined as uPlot draws them
    let points: string[] = [];
    const flush = () => {
      if (points.length > 1)
        parts.push(
          `<polyline fill="none" stroke="${color}" stroke-width="${s.role === 'raw' ? 1 : 1.6}"${s.role === 'raw' ? ' stroke-opacity="0.35"' : ''}${s.role === 'eval' ? ' stroke-dasharray="5 4"' : ''} points="${points.join(' ')}"/>`,
        );
      points = [];
    };
    model.x.forEach((step, i) => {
      const v = y[i];
      if (v === null || v === undefined || !Number.isFinite(v) || (style.logScale && v <= 0)) {
        if (s.role !== 'eval') flush();
        return;
      }
      points.push(`${sx(step).toFixed(1)},${sy(v).toFixed(1)}`);
      if (s.role === 'eval')
        parts.push(`<circle cx="${sx(step).toFixed(1)}" cy="${sy(v).toFixed(1)}" r="2.5" fill="${color}"/>`);
    });
    flush();
    const lx = M.left + (at % 3) * 200;
    const ly = H - 22 + Math.floor(at / 3) * 14 - (Math.ceil(legend.length / 3) - 1) * 7;
    parts.push(
      `<line x1="${lx}" x2="${lx + 16}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${lx + 20}" y="${ly}" fill="${style.foreground}" font-family="${escapeXml(style.font)}" font-size="10">${escapeXml(s.label)}</text>`,
    );
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">\n${parts.join('\n')}\n</svg>\n`;
}
