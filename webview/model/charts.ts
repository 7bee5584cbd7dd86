/**
 * The three charts of the dashboard as data: loss (training, raw and smoothed, plus validation
 * loss), validation metric(s), and learning rate, against step. One run: every validation metric;
 * several runs: each run's primary metric, one colour per run. No DOM and no uPlot here.
 */
import {
  alignSeries,
  decimateMinMax,
  mergeSteps,
  MinMaxDecimator,
  positiveOnly,
  SmoothingCache,
  type SmoothingKind,
  type Values,
  type XY,
} from './series';
import type { DashboardBand, DashboardGroup } from '../../src/protocol/dashboard';
import { primaryMetric, runLabels, validationMetricNames, type RunModel } from './store';

export type ChartId = 'loss' | 'metric' | 'lr';
/** `mean`: a seed group's mean (its band around it); `edge`: a band's lower or upper edge, not drawn as a line. */
export type SeriesRole = 'raw' | 'smoothed' | 'line' | 'eval' | 'mean' | 'edge';

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
  /** Seed groups: the band around each mean series, aligned with x. */
  readonly bands?: readonly ChartBand[];
}

/** A group's band on a chart: its edges as drawn (smoothed like the mean) and the raw statistics per step. */
export interface ChartBand {
  /** Index of the mean series the band belongs to (its colour); the edges are series too (role `edge`, for the y range). */
  readonly series: number;
  readonly lowerSeries: number;
  readonly upperSeries: number;
  /** The group and curve, for file columns: "method.type lora training loss". */
  readonly name: string;
  readonly kind: BandKind;
  /** Unsmoothed statistics over the runs that logged the step (null: no run did). */
  readonly mean: (number | null)[];
  readonly sd: (number | null)[];
  readonly n: (number | null)[];
  readonly min: (number | null)[];
  readonly max: (number | null)[];
}

/** The band around a group's mean: ±1 sample sd, or from the runs' min to their max. */
export type BandKind = 'sd' | 'minmax';

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
  /** Seed groups: what the band spans (default ±1 sd). */
  readonly band?: BandKind;
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
      series.push({
        label: compare ? `${labels[r]} (validation)` : 'validation loss',
        run: r,
        metric: 1,
        role: 'eval',
      });
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
    const names = compare
      ? [primaryMetric(run)].filter((m): m is string => m !== undefined)
      : validationMetricNames(run);
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
  const series: SeriesSpec[] = runs.map((_run, r) => ({
    label: compare ? labels[r]! : 'learning rate',
    run: r,
    metric: 0,
    role: 'line' as const,
  }));
  const { x, ys } = alignSeries(decimate(parts, options));
  const logScale = options.logScale;
  const points = runs.reduce((n, run) => n + run.train.step.length, 0);
  return {
    id: 'lr',
    title: 'Learning rate',
    x,
    series,
    ys: logScale ? ys.map(positiveOnly) : ys,
    logCapable: true,
    points,
  };
}

// ---- seed groups: a mean line with a band per group ---------------------------------------------------

/** "N = 3", or "N = 2–3" where a run ended early (the hover shows N per step). */
export function groupN(band: DashboardBand): string {
  if (!band.n.length) return 'N = 0';
  const lo = Math.min(...band.n);
  const hi = Math.max(...band.n);
  return lo === hi ? `N = ${hi}` : `N = ${lo}–${hi}`;
}

interface BandBuild {
  readonly parts: XY[];
  readonly series: SeriesSpec[];
  /** Per band: the series indices and the parts holding its raw statistics. */
  readonly bands: { series: number; lowerSeries: number; upperSeries: number; name: string; stats: number }[];
  readonly stats: XY[];
}

/**
 * Adds a group's curve: the mean (smoothed as the runs' loss is, the raw mean kept faint beside it),
 * and its band's edges, smoothed with the same smoother so the band surrounds the line drawn (the EMA
 * and the moving average are linear: the smoothed mean ± smoothed sd is the smoothed mean ± sd).
 */
function addBand(
  b: BandBuild,
  band: DashboardBand,
  g: number,
  label: string,
  name: string,
  smooth: { weight: number; kind: SmoothingKind; cache: SmoothingCache; key: string } | undefined,
  kind: BandKind,
): void {
  const x = band.step;
  const lowerRaw = kind === 'minmax' ? band.min : band.mean.map((m, i) => m - band.sd[i]!);
  const upperRaw = kind === 'minmax' ? band.max : band.mean.map((m, i) => m + band.sd[i]!);
  const fit = (y: readonly number[], part: string) =>
    smooth ? smooth.cache.smooth(`${smooth.key}\n${part}`, y, smooth.weight, smooth.kind) : y;
  const role = smooth ? 'mean' : 'eval';
  if (smooth && smooth.weight > 0 && smooth.kind !== 'none') {
    b.parts.push({ x, y: band.mean });
    b.series.push({ label: `${label} (raw mean)`, run: g, metric: 0, role: 'raw' });
  }
  const meanIndex = b.series.length;
  b.parts.push({ x, y: fit(band.mean, 'mean') });
  b.series.push({ label, run: g, metric: 0, role });
  b.parts.push({ x, y: fit(lowerRaw, 'lower') }, { x, y: fit(upperRaw, 'upper') });
  b.series.push(
    { label: `${label} lower`, run: g, metric: 0, role: 'edge' },
    { label: `${label} upper`, run: g, metric: 0, role: 'edge' },
  );
  b.bands.push({
    series: meanIndex,
    lowerSeries: meanIndex + 1,
    upperSeries: meanIndex + 2,
    name,
    stats: b.stats.length,
  });
  for (const key of ['mean', 'sd', 'n', 'min', 'max'] as const) b.stats.push({ x, y: band[key] });
}

function finishBands(
  id: ChartId,
  title: string,
  b: BandBuild,
  options: ChartOptions,
  logCapable: boolean,
  points: number,
): ChartModel {
  const all = decimate([...b.parts, ...b.stats], options);
  const { x, ys } = alignSeries(all);
  const shown = ys.slice(0, b.parts.length);
  const stat = ys.slice(b.parts.length);
  const bands: ChartBand[] = b.bands.map((band) => ({
    series: band.series,
    lowerSeries: band.lowerSeries,
    upperSeries: band.upperSeries,
    name: band.name,
    kind: options.band ?? 'sd',
    mean: stat[band.stats]!,
    sd: stat[band.stats + 1]!,
    n: stat[band.stats + 2]!,
    min: stat[band.stats + 3]!,
    max: stat[band.stats + 4]!,
  }));
  const log = logCapable && options.logScale;
  return { id, title, x, series: b.series, ys: log ? shown.map(positiveOnly) : shown, logCapable, points, bands };
}

/**
 * The charts of a groups panel: per group, its mean training loss (and validation loss), its mean
 * primary validation metric and its mean learning rate, each with its band. One colour per group.
 */
export function buildGroupCharts(
  groups: readonly DashboardGroup[],
  options: ChartOptions,
  cache: SmoothingCache,
): ChartModel[] {
  const smoother = options.smoother ?? 'ema';
  const kind = options.band ?? 'sd';
  const empty = (): BandBuild => ({ parts: [], series: [], bands: [], stats: [] });
  const loss = empty();
  const metric = empty();
  const lr = empty();
  let lossPoints = 0;
  let metricPoints = 0;
  let lrPoints = 0;
  groups.forEach((group, g) => {
    const train = group.bands.loss;
    if (train?.step.length) {
      lossPoints += train.step.length;
      addBand(
        loss,
        train,
        g,
        `${group.label} (${groupN(train)})`,
        `${group.label} training loss`,
        { weight: options.smoothing, kind: smoother, cache, key: `group ${g}\nloss\n${kind}` },
        kind,
      );
    }
    const validationLoss = group.bands['validation:loss'];
    if (validationLoss?.step.length)
      addBand(
        loss,
        validationLoss,
        g,
        `${group.label} validation (${groupN(validationLoss)})`,
        `${group.label} validation loss`,
        undefined,
        kind,
      );
    const name =
      group.primaryMetric ??
      Object.keys(group.bands)
        .find((k) => k.startsWith('validation:') && k !== 'validation:loss')
        ?.slice('validation:'.length);
    const primary = name ? group.bands[`validation:${name}`] : undefined;
    if (name && primary?.step.length) {
      metricPoints += primary.step.length;
      addBand(
        metric,
        primary,
        g,
        `${group.label} ${name} (${groupN(primary)})`,
        `${group.label} ${name}`,
        undefined,
        kind,
      );
    }
    const rate = group.bands.learningRate;
    if (rate?.step.length) {
      lrPoints += rate.step.length;
      addBand(
        lr,
        rate,
        g,
        `${group.label} (${groupN(rate)})`,
        `${group.label} learning rate`,
        { weight: 0, kind: 'none', cache, key: `group ${g}\nlr` },
        kind,
      );
    }
  });
  return [
    finishBands('loss', 'Loss', loss, options, true, lossPoints),
    finishBands('metric', 'Validation metric', metric, { ...options, buckets: undefined }, false, metricPoints),
    finishBands('lr', 'Learning rate', lr, options, true, lrPoints),
  ];
}
