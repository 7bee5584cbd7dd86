/**
 * The three charts of the dashboard as data: loss (training, raw and smoothed, plus validation
 * loss), validation metric(s), and learning rate, against step. One run: every validation metric;
 * several runs: each run's primary metric, one colour per run. No DOM and no uPlot here.
 */
import { alignSeries, decimateMinMax, mergeSteps, MinMaxDecimator, positiveOnly, SmoothingCache, type SmoothingKind, type Values, type XY } from './series';
import { primaryMetric, runLabels, validationMetricNames, type RunModel } from './store';

export type ChartId = 'loss' | 'metric' | 'lr';
export type SeriesRole = 'raw' | 'smoothed' | 'line' | 'eval';

export interface SeriesSpec {
  readonly label: string;
  /** Index of the run (its colour in a comparison). */
  readonly run: number;
  /** Index of the metric among a single run's metrics (its colour then). */
  readonly metric: number;
  readonly role: SeriesRole;
}

export interface ChartModel {
  readonly id: ChartId;
  readonly title: string;
  /** Ascending steps. */
  readonly x: number[];
  readonly series: readonly SeriesSpec[];
  /** One array per series, aligned with x. */
  readonly ys: (number | null)[][];
  /** The chart can switch to a log y axis. */
  readonly logCapable: boolean;
  /** Logged points drawn (training steps for loss and learning rate, evaluations for metrics). */
  readonly points: number;
}

export interface ChartOptions {
  /** EMA weight in [0, 1); 0 turns smoothing (and the faint raw line) off. */
  readonly smoothing: number;
  /** Which smoothing the weight drives (default EMA); 'none' draws the raw curve alone. */
  readonly smoother?: SmoothingKind;
  readonly logScale: boolean;
  /**
   * Draw at most about this many buckets (the plot's width in device pixels) of min/max points per
   * series: a run of 100,000 steps then costs uPlot a few thousand points. Undefined: every point.
   */
  readonly buckets?: number;
  /** Zoomed step range: decimation keeps full detail inside it (and one point either side). */
  readonly zoom?: readonly [number, number];
}

export function buildCharts(runs: readonly RunModel[], options: ChartOptions, cache: SmoothingCache): ChartModel[] {
  return [lossChart(runs, options, cache), metricChart(runs), lrChart(runs, options)];
}

/**
 * Min/max decimation of long series before they are aligned: the parts that share an x array
 * (a run's raw loss, smoothed loss...) keep the union of their min/max indices, so they still share
 * one (shorter) x array. Short series (evaluations) are kept whole.
 */
export function decimate(parts: readonly XY[], { buckets, zoom }: ChartOptions): XY[] {
  if (!buckets) return [...parts];
  const byX = new Map<ArrayLike<number>, number[]>();
  parts.forEach((p, i) => {
    if (p.x.length > 4 * buckets) byX.set(p.x, [...(byX.get(p.x) ?? []), i]);
  });
  const out = [...parts];
  for (const [x, members] of byX) {
    let idx: number[] = [];
    if (zoom) {
      const from = Math.max(0, lowerBound(x, zoom[0]) - 1);
      const to = Math.min(x.length, upperBound(x, zoom[1]) + 1);
      for (const i of members) idx = mergeSteps(idx, decimateMinMax(x, parts[i]!.y, buckets, from, to));
    } else {
      for (const i of members) idx = mergeSteps(idx, decimatorFor(parts[i]!.y).indices(x, parts[i]!.y, buckets));
    }
    const newX = idx.map((k) => x[k]!);
    for (const i of members) {
      const y = parts[i]!.y;
      out[i] = { x: newX, y: idx.map((k) => y[k] ?? null) };
    }
  }
  return out;
}

/** One incremental decimator per series array (a run's loss, its smoothed loss...), dropped with it. */
const decimators = new WeakMap<object, MinMaxDecimator>();

function decimatorFor(y: Values): MinMaxDecimator {
  let d = decimators.get(y);
  if (!d) {
    d = new MinMaxDecimator();
    decimators.set(y, d);
  }
  return d;
}

/** First index whose step is > value. */
function upperBound(x: ArrayLike<number>, value: number): number {
  let lo = 0;
  let hi = x.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x[mid]! <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index whose step is >= value. */
function lowerBound(x: ArrayLike<number>, value: number): number {
  let lo = 0;
  let hi = x.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lossChart(runs: readonly RunModel[], options: ChartOptions, cache: SmoothingCache): ChartModel {
  const { logScale } = options;
  const smoother = options.smoother ?? 'ema';
  const smoothing = smoother === 'none' ? 0 : options.smoothing;
  const compare = runs.length > 1;
  const labels = runLabels(runs);
  const parts: XY[] = [];
  const series: SeriesSpec[] = [];
  let points = 0;
  runs.forEach((run, r) => {
    const x = run.train.step;
    const loss = run.train.loss;
    points += x.length;
    const name = compare ? labels[r]! : 'training loss';
    if (smoothing > 0) {
      parts.push({ x, y: loss });
      series.push({ label: `${name} (raw)`, run: r, metric: 0, role: 'raw' });
      // the raw series stays (drawn faint): smoothing never hides a spike
      parts.push({ x, y: cache.smooth(`${run.dir}\nloss`, loss, smoothing, smoother) });
      series.push({ label: compare ? name : `${name} (smoothed)`, run: r, metric: 0, role: 'smoothed' });
    } else {
      parts.push({ x, y: loss });
      series.push({ label: name, run: r, metric: 0, role: 'line' });
    }
    const evals = run.evals.filter((e) => e.split === 'validation' && e.metrics.loss !== undefined);
    if (evals.length) {
      parts.push({ x: evals.map((e) => e.step), y: evals.map((e) => e.metrics.loss ?? null) });
      series.push({ label: compare ? `${labels[r]} (validation)` : 'validation loss', run: r, metric: 1, role: 'eval' });
    }
  });
  const { x, ys } = alignSeries(decimate(parts, options));
  return { id: 'loss', title: 'Loss', x, series, ys: logScale ? ys.map(positiveOnly) : ys, logCapable: true, points };
}

function metricChart(runs: readonly RunModel[]): ChartModel {
  const compare = runs.length > 1;
  const labels = runLabels(runs);
  const parts: XY[] = [];
  const series: SeriesSpec[] = [];
  let points = 0;
  runs.forEach((run, r) => {
    const validation = run.evals.filter((e) => e.split === 'validation');
    const names = compare ? [primaryMetric(run)].filter((m): m is string => m !== undefined) : validationMetricNames(run);
    names.forEach((name, m) => {
      const evals = validation.filter((e) => e.metrics[name] !== undefined);
      if (!evals.length) return;
      points += evals.length;
      parts.push({ x: evals.map((e) => e.step), y: evals.map((e) => e.metrics[name] ?? null) });
      series.push({ label: compare ? `${labels[r]} ${name}` : name, run: r, metric: m, role: 'eval' });
    });
  });
  const { x, ys } = alignSeries(parts);
  const title = compare ? 'Validation metric' : 'Validation metrics';
  return { id: 'metric', title, x, series, ys, logCapable: false, points };
}

function lrChart(runs: readonly RunModel[], options: ChartOptions): ChartModel {
  const compare = runs.length > 1;
  const parts: XY[] = runs.map((run) => ({ x: run.train.step, y: run.train.learningRate }));
  const labels = runLabels(runs);
  const series: SeriesSpec[] = runs.map((_run, r) => ({ label: compare ? labels[r]! : 'learning rate', run: r, metric: 0, role: 'line' as const }));
  const { x, ys } = alignSeries(decimate(parts, options));
  const logScale = options.logScale;
  const points = runs.reduce((n, run) => n + run.train.step.length, 0);
  return { id: 'lr', title: 'Learning rate', x, series, ys: logScale ? ys.map(positiveOnly) : ys, logCapable: true, points };
}
