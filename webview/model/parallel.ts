/**
 * Parallel coordinates of the shown runs (no DOM): one axis per config parameter that varies among
 * them (the seed left out: it is noise, not a choice) and one for the chosen metric; each run is a
 * line through its values. Brushing an axis keeps the runs whose value lies in the brushed range,
 * and the table shows only those. Numbers get a linear axis (log when positive and spanning 100x or
 * more, as learning rates do), text and booleans a category axis.
 */
import type { CellValue, ExperimentRow } from '../../src/protocol/experiments';
import { diffParameters, formatNumber, type Column } from './experiments-table';
import { formatMetricValue } from '../../src/protocol/format';

export interface ParallelAxis {
  /** The column id (`param:method.type`, `best:accuracy`). */
  readonly id: string;
  readonly label: string;
  readonly kind: 'linear' | 'log' | 'category';
  /** For category axes, in order. */
  readonly categories?: readonly string[];
  /** Data range of a numeric axis (log axes: of the values, not their logs). */
  readonly min: number;
  readonly max: number;
  /** A row's value on the axis as a position from 0 (bottom) to 1 (top); undefined when it has none. */
  position(row: ExperimentRow): number | undefined;
  /** A position back as the text the axis shows. */
  tick(position: number): string;
  /** A brushed range in words: `0.7 … 0.84`, or the categories inside it. */
  describe(lo: number, hi: number): string;
  ticks(): { at: number; label: string }[];
}

/** A brushed range on an axis, in positions (0..1, lo <= hi). */
export type Brushes = ReadonlyMap<string, readonly [number, number]>;

export function isSeedPath(path: string): boolean {
  return path === 'seed' || path.endsWith('.seed');
}

/** The axes: varying parameters but the seed, then the metric column. */
export function parallelAxes(rows: readonly ExperimentRow[], metric: Column | undefined): ParallelAxis[] {
  const axes: ParallelAxis[] = [];
  for (const p of diffParameters(rows)) {
    if (p.constant || isSeedPath(p.path)) continue;
    axes.push(axisOf(`param:${p.path}`, p.path, rows.map((r) => r.params[p.path]), (r) => r.params[p.path]));
  }
  if (metric) axes.push(axisOf(metric.id, metric.label, rows.map((r) => metric.value(r)), (r) => metric.value(r), true));
  return axes;
}

function axisOf(id: string, label: string, values: readonly (CellValue | undefined)[], get: (r: ExperimentRow) => CellValue | undefined, isMetric = false): ParallelAxis {
  const present = values.filter((v): v is CellValue => v !== undefined && v !== null && v !== '');
  if (present.length && present.every((v) => typeof v === 'number')) {
    const nums = present as number[];
    const min = Math.min(...nums);
    const max = Math.max(...nums);
    const log = !isMetric && min > 0 && max / min >= 100;
    const f = log ? Math.log10 : (v: number) => v;
    const lo = f(min);
    const hi = f(max);
    const span = hi - lo || 1;
    const position = (v: number) => (hi === lo ? 0.5 : (f(v) - lo) / span);
    const back = (t: number) => (log ? 10 ** (lo + t * span) : lo + t * span);
    const fmt = isMetric ? formatMetricValue : formatNumber;
    return {
      id, label, kind: log ? 'log' : 'linear', min, max,
      position: (r) => {
        const v = get(r);
        return typeof v === 'number' ? position(v) : undefined;
      },
      tick: (t) => fmt(Number(back(t).toPrecision(4))),
      describe: (a, b) => `${fmt(Number(back(a).toPrecision(4)))} … ${fmt(Number(back(b).toPrecision(4)))}`,
      ticks: () => (hi === lo ? [{ at: 0.5, label: fmt(min) }] : [0, 0.25, 0.5, 0.75, 1].map((at) => ({ at, label: fmt(Number(back(at).toPrecision(4))) }))),
    };
  }
  const categories = [...new Set(present.map(String))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const step = categories.length > 1 ? 1 / (categories.length - 1) : 0;
  const position = (text: string) => (categories.length > 1 ? categories.indexOf(text) * step : 0.5);
  return {
    id, label, kind: 'category', categories, min: 0, max: Math.max(0, categories.length - 1),
    position: (r) => {
      const v = get(r);
      return v === undefined || v === null || v === '' ? undefined : position(String(v));
    },
    tick: (t) => categories[Math.round(categories.length > 1 ? t / step : 0)] ?? '',
    describe: (a, b) => categories.filter((c) => position(c) >= a - 1e-9 && position(c) <= b + 1e-9).join(', ') || 'none',
    ticks: () => categories.map((label) => ({ at: position(label), label })),
  };
}

/** Rows inside every brush (a row without a value on a brushed axis is outside it). */
export function brushRows(rows: readonly ExperimentRow[], axes: readonly ParallelAxis[], brushes: Brushes): ExperimentRow[] {
  const active = axes.filter((a) => brushes.has(a.id));
  if (!active.length) return [...rows];
  return rows.filter((r) => active.every((a) => {
    const p = a.position(r);
    const [lo, hi] = brushes.get(a.id)!;
    return p !== undefined && p >= lo - 1e-9 && p <= hi + 1e-9;
  }));
}
