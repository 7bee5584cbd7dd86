/**
 * A dashboard chart as files (no DOM): CSV with a column per series (the raw series included,
 * empty where a series has no point at a step) and a standalone SVG drawn from the same data with
 * the colours the chart uses, so a figure can go into a paper as it looks on screen.
 */
import type { ChartModel } from './charts';
import { formatTick } from './format';

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function chartCsv(model: ChartModel): string {
  const lines = [['step', ...model.series.map((s) => s.label)].map(csvField).join(',')];
  model.x.forEach((step, i) => lines.push([String(step), ...model.ys.map((y) => (y[i] === null || y[i] === undefined ? '' : String(y[i])))].join(',')));
  return `${lines.join('\r\n')}\r\n`;
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
}

const W = 640;
const H = 360;
const M = { left: 64, right: 16, top: 32, bottom: 70 };

export function chartSvg(model: ChartModel, style: SvgStyle): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const values = model.ys.flat().filter((v): v is number => v !== null && Number.isFinite(v) && (!style.logScale || v > 0));
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
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="${style.grid}"/>`,
      `<text x="${M.left - 6}" y="${y + 4}" text-anchor="end" fill="${style.foreground}" font-family="${escapeXml(style.font)}" font-size="10">${escapeXml(label)}</text>`);
  }
  for (const x of [x0, (x0 + x1) / 2, x1]) {
    parts.push(`<text x="${sx(x)}" y="${M.top + ph + 16}" text-anchor="middle" fill="${style.foreground}" font-family="${escapeXml(style.font)}" font-size="10">${escapeXml(formatTick(Math.round(x)))}</text>`);
  }
  parts.push(`<text x="${M.left + pw / 2}" y="${M.top + ph + 32}" text-anchor="middle" fill="${style.foreground}" font-family="${escapeXml(style.font)}" font-size="11">step</text>`);
  model.series.forEach((s, k) => {
    const color = style.colors[k] ?? style.foreground;
    const y = model.ys[k]!;
    // a gap (null) ends a line, except for evaluations, which are joined as uPlot draws them
    let points: string[] = [];
    const flush = () => {
      if (points.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="${s.role === 'raw' ? 1 : 1.6}"${s.role === 'raw' ? ' stroke-opacity="0.35"' : ''}${s.role === 'eval' ? ' stroke-dasharray="5 4"' : ''} points="${points.join(' ')}"/>`);
      points = [];
    };
    model.x.forEach((step, i) => {
      const v = y[i];
      if (v === null || v === undefined || !Number.isFinite(v) || (style.logScale && v <= 0)) {
        if (s.role !== 'eval') flush();
        return;
      }
      points.push(`${sx(step).toFixed(1)},${sy(v).toFixed(1)}`);
      if (s.role === 'eval') parts.push(`<circle cx="${sx(step).toFixed(1)}" cy="${sy(v).toFixed(1)}" r="2.5" fill="${color}"/>`);
    });
    flush();
    const lx = M.left + (k % 3) * 200;
    const ly = H - 22 + Math.floor(k / 3) * 14 - (Math.ceil(model.series.length / 3) - 1) * 7;
    parts.push(`<line x1="${lx}" x2="${lx + 16}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${lx + 20}" y="${ly}" fill="${style.foreground}" font-family="${escapeXml(style.font)}" font-size="10">${escapeXml(s.label)}</text>`);
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">\n${parts.join('\n')}\n</svg>\n`;
}
