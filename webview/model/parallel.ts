/**
 * Parallel coordinates of the shown runs (no DOM): one axis per config parameter that varies among
 * them (the seed left out: it is noise, not a choice) and one for the chosen metric; each run is a
 * line through its values. Brushing an axis keeps the runs whose value lies in the brushed range,
 * and the table shows only those. Numbers get a linear axis (log when positive and spanning 100x or
 * more, as learning rates do), text and booleans a category axis.
 *
 * A run without a value on an axis (LoRA has no bottleneck; a run not evaluated yet has no metric)
 * passes through the axis's "missing" slot, below its range, instead of skipping the axis: its line
 * stays readable, and a brush that reaches down to the slot keeps (only then) the runs missing there.
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
  /** Some shown run has no value on this axis: the axis has a "missing" slot at MISSING_POSITION. */
  readonly hasMissing: boolean;
  /** A row's value on the axis as a position from 0 (bottom) to 1 (top); MISSING_POSITION when it has none. */
  position(row: ExperimentRow): number;
  /** A position back as the text the axis shows. */
  tick(position: number): string;
  /** A brushed range in words: `0.7 … 0.84`, or the categories inside it. */
  describe(lo: number, hi: number): string;
  ticks(): { at: number; label: string }[];
}

/** Where a run without a value crosses an axis: a slot below the axis's range. */
export const MISSING_POSITION = -0.15;
export const MISSING_LABEL = 'missing';

/** A brushed range on an axis, in positions (MISSING_POSITION..1, lo <= hi). */
export type Brushes = ReadonlyMap<string, readonly [number, number]>;

export function isSeedPath(path: string): boolean {
  return path === 'seed' || path.endsWith('.seed');
}

/** The axes: varying parameters but the seed, then the metric column. */
export function parallelAxes(rows: readonly ExperimentRow[], metric: Column | undefined): ParallelAxis[] {
  const axes: ParallelAxis[] = [];
  for (const p of diffParameters(rows)) {
    if (p.constant || isSeedPath(p.path)) continue;
    axes.push(
      axisOf(
        `param:${p.path}`,
        p.path,
        rows.map((r) => r.params[p.path]),
        (r) => r.params[p.path],
      ),
    );
  }
  if (metric)
    axes.push(
      axisOf(
        metric.id,
        metric.label,
        rows.map((r) => metric.value(r)),
        (r) => metric.value(r),
        true,
      ),
    );
  return axes;
}

const isMissing = (v: CellValue | undefined): boolean => v === undefined || v === null || v === '';

function axisOf(
  id: string,
  label: string,
  values: readonly (CellValue | undefined)[],
  get: (r: ExperimentRow) => CellValue | undefined,
  isMetric = false,
): ParallelAxis {
  return withMissingSlot(valueAxis(id, label, values, get, isMetric), values.some(isMissing));
}

/** The axis with its "missing" slot: position, ticks and brush descriptions include it when a run needs it. */
function withMissingSlot(
  axis: Omit<ParallelAxis, 'hasMissing' | 'position'> & { position(row: ExperimentRow): number | undefined },
  hasMissing: boolean,
): ParallelAxis {
  const inSlot = (lo: number) => hasMissing && lo <= MISSING_POSITION + 1e-9;
  return {
    ...axis,
    hasMissing,
    position: (r) => axis.position(r) ?? MISSING_POSITION,
    tick: (t) => (t < 0 ? MISSING_LABEL : axis.tick(t)),
    describe: (lo, hi) => {
      const values = hi >= 0 ? axis.describe(Math.max(0, lo), hi) : '';
      return (
        [values && values !== 'none' ? values : '', inSlot(lo) ? MISSING_LABEL : ''].filter(Boolean).join(', ') ||
        'none'
      );
    },
    ticks: () => [...axis.ticks(), ...(hasMissing ? [{ at: MISSING_POSITION, label: MISSING_LABEL }] : [])],
  };
}

function valueAxis(
  id: string,
  label: string,
  values: readonly (CellValue | undefined)[],
  get: (r: ExperimentRow) => CellValue | undefined,
  isMetric: boolean,
): Omit<ParallelAxis, 'hasMissing' | 'position'> & { position(row: ExperimentRow): number | undefined } {
  const present = values.filter((v): v is CellValue => !isMissing(v));
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
      id,
      label,
      kind: log ? 'log' : 'linear',
      min,
      max,
      position: (r) => {
        const v = get(r);
        return typeof v === 'number' ? position(v) : undefined;
      },
      // one value (the others runs' missing) sits mid-axis: the axis has no range to read off
      tick: (t) => (hi === lo ? fmt(min) : fmt(Number(back(t).toPrecision(4)))),
      describe: (a, b) =>
        hi === lo
          ? a <= 0.5 && b >= 0.5
            ? fmt(min)
            : 'none'
          : `${fmt(Number(back(a).toPrecision(4)))} … ${fmt(Number(back(b).toPrecision(4)))}`,
      ticks: () =>
        hi === lo
          ? [{ at: 0.5, label: fmt(min) }]
          : [0, 0.25, 0.5, 0.75, 1].map((at) => ({ at, label: fmt(Number(back(at).toPrecision(4))) })),
    };
  }
  const categories = [...new Set(present.map(String))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const step = categories.length > 1 ? 1 / (categories.length - 1) : 0;
  const position = (text: string) => (categories.length > 1 ? categories.indexOf(text) * step : 0.5);
  return {
    id,
    label,
    kind: 'category',
    categories,
    min: 0,
    max: Math.max(0, categories.length - 1),
    position: (r) => {
      const v = get(r);
      return v === undefined || v === null || v === '' ? undefined : position(String(v));
    },
    tick: (t) => categories[Math.round(categories.length > 1 ? t / step : 0)] ?? '',
    describe: (a, b) =>
      categories.filter((c) => position(c) >= a - 1e-9 && position(c) <= b + 1e-9).join(', ') || 'none',
    ticks: () => categories.map((label) => ({ at: position(label), label })),
  };
}

/** Rows inside every brush (a row without a value on a brushed axis is inside only if the brush reaches its "missing" slot). */
export function brushRows(
  rows: readonly ExperimentRow[],
  axes: readonly ParallelAxis[],
  brushes: Brushes,
): ExperimentRow[] {
  const active = axes.filter((a) => brushes.has(a.id));
  if (!active.length) return [...rows];
  return rows.filter((r) =>
    active.every((a) => {
      const p = a.position(r);
      const [lo, hi] = brushes.get(a.id)!;
      return p >= lo - 1e-9 && p <= hi + 1e-9;
    }),
  );
}
