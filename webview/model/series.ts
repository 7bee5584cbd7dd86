/**
 * Curves as uPlot wants them: one ascending x array (steps) per chart and one y array per series,
 * aligned to it, with `null` where a series has no point. Also the smoothing TensorBoard applies
 * and a min/max decimation for very long runs. No DOM here.
 */

export type Values = ArrayLike<number | null>;

/**
 * TensorBoard's smoothing: an exponential moving average with weight w in [0, 1), debiased like
 * Adam's moments (divided by 1 - w^n) so the first points are not pulled towards zero. Non-finite
 * values pass through unsmoothed and do not enter the average.
 *
 * Incremental: `extend` continues where the last call stopped, so a live run costs O(new points).
 */
export class EmaSmoother {
  private last = 0;
  private power = 1;
  readonly out: (number | null)[] = [];

  constructor(readonly weight: number) {
    if (!(weight >= 0 && weight < 1)) throw new RangeError(`smoothing weight must be in [0, 1), got ${weight}`);
  }

  /** Smooths values[out.length ..] and returns the whole smoothed series. */
  extend(values: Values): (number | null)[] {
    const w = this.weight;
    const out = this.out;
    for (let i = out.length; i < values.length; i++) {
      const v = values[i];
      if (v === null || v === undefined || !Number.isFinite(v)) {
        out.push(v ?? null);
        continue;
      }
      if (w === 0) {
        out.push(v);
        continue;
      }
      this.last = this.last * w + (1 - w) * v;
      this.power *= w;
      out.push(this.last / (1 - this.power));
    }
    return out;
  }
}

/** Smooths a whole series at once (see EmaSmoother). */
export function emaSmooth(values: Values, weight: number): (number | null)[] {
  return new EmaSmoother(weight).extend(values);
}

/** How training curves are smoothed: TensorBoard's debiased EMA, a trailing moving average, or not at all. */
export type SmoothingKind = 'ema' | 'moving' | 'none';

/**
 * The moving-average window that smooths about as much as an EMA of weight w: the span of pandas'
 * `ewm(span=...)`, whose alpha = 2 / (span + 1) = 1 - w, so span = 2 / (1 - w) - 1. The one slider
 * thus means comparable smoothing for both kinds.
 */
export function windowForWeight(weight: number): number {
  return Math.max(1, Math.round(2 / (1 - weight) - 1));
}

/**
 * A trailing moving average over the last `window` finite values (fewer at the start); non-finite
 * values pass through and do not enter it, as in the EMA.
 */
export function movingAverage(values: Values, window: number): (number | null)[] {
  const out: (number | null)[] = new Array(values.length);
  const kept: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !Number.isFinite(v)) {
      out[i] = v ?? null;
      continue;
    }
    kept.push(v);
    sum += v;
    if (kept.length > window) sum -= kept.shift()!;
    out[i] = sum / kept.length;
  }
  return out;
}

/** Keeps one smoother per key and restarts it when the weight or the data's identity changes. */
export class SmoothingCache {
  private readonly entries = new Map<string, { source: Values; smoother: EmaSmoother }>();

  /** The series smoothed as `kind` says (EMA incrementally; the moving average is recomputed, O(n)). */
  smooth(key: string, values: Values, weight: number, kind: SmoothingKind): (number | null)[] {
    if (kind === 'none' || weight === 0) return Array.from(values as ArrayLike<number | null>, (v) => v ?? null);
    if (kind === 'moving') return movingAverage(values, windowForWeight(weight));
    return this.get(key, values, weight);
  }

  get(key: string, values: Values, weight: number): (number | null)[] {
    let e = this.entries.get(key);
    if (!e || e.source !== values || e.smoother.weight !== weight || e.smoother.out.length > values.length) {
      e = { source: values, smoother: new EmaSmoother(weight) };
      this.entries.set(key, e);
    }
    return e.smoother.extend(values);
  }

  clear(): void {
    this.entries.clear();
  }
}

export interface XY {
  readonly x: ArrayLike<number>;
  readonly y: Values;
}

/**
 * Aligns series with different steps on the union of their steps (each x ascending). Series that
 * share an x array (or an equal one: the runs of a comparison usually log the same steps) are
 * aligned once; the union is built by two-pointer merges, smallest arrays first, so a long run plus
 * a few evaluations costs O(steps), not O(steps x series).
 */
export function alignSeries(parts: readonly XY[]): { x: number[]; ys: (number | null)[][] } {
  if (parts.length === 0) return { x: [], ys: [] };
  const groups: ArrayLike<number>[] = [];
  const groupOf = parts.map((p) => {
    let g = groups.findIndex((x) => x === p.x || sameSteps(x, p.x));
    if (g < 0) g = groups.push(p.x) - 1;
    return g;
  });
  if (groups.length === 1) return { x: copy(groups[0]!), ys: parts.map((p) => copyValues(p.y)) };
  const x = [...groups].sort((a, b) => a.length - b.length).reduce<number[]>((acc, g) => mergeSteps(acc, g), []);
  // where each group's steps land in x
  const positions = groups.map((g) => {
    const at = new Int32Array(g.length);
    let j = 0;
    for (let i = 0; i < g.length; i++) {
      const step = g[i]!;
      while (x[j]! < step) j++;
      at[i] = j;
    }
    return at;
  });
  const ys = parts.map((p, k) => {
    const at = positions[groupOf[k]!]!;
    const y: (number | null)[] = new Array(x.length).fill(null);
    for (let i = 0; i < at.length; i++) y[at[i]!] = p.y[i] ?? null;
    return y;
  });
  return { x, ys };
}

function copy(a: ArrayLike<number>): number[] {
  const out = new Array<number>(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]!;
  return out;
}

function copyValues(a: Values): (number | null)[] {
  const out = new Array<number | null>(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ?? null;
  return out;
}

function sameSteps(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The sorted union of two ascending step arrays (duplicates once). */
export function mergeSteps(a: ArrayLike<number>, b: ArrayLike<number>): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = i < a.length ? a[i]! : Infinity;
    const y = j < b.length ? b[j]! : Infinity;
    const v = x <= y ? x : y;
    if (out.length === 0 || out[out.length - 1] !== v) out.push(v);
    if (x === v) i++;
    if (y === v) j++;
  }
  return out;
}

/** The sorted union of ascending step arrays. */
export function unionSteps(xs: readonly ArrayLike<number>[]): number[] {
  return [...xs].sort((a, b) => a.length - b.length).reduce<number[]>((acc, g) => mergeSteps(acc, g), []);
}

/**
 * Min/max decimation on a fixed grid of step buckets (bucket b holds the steps in
 * [b * width, (b + 1) * width), width a power of two giving at most `buckets` buckets over the
 * steps). Each bucket keeps at most 4 points, in step order: its first, its minimum, its maximum
 * and its last. A line through them covers the same pixels as one through every point when there
 * are at least as many buckets as pixels. Returns ascending indices into xs.
 */
export function decimateMinMax(xs: ArrayLike<number>, ys: Values, buckets: number, from = 0, to = xs.length): number[] {
  if (to - from <= 4 * buckets) return range(from, to);
  const out: number[] = [];
  scanBuckets(xs, ys, bucketWidth(xs[to - 1]! - xs[from]!, buckets), from, to, out, Infinity);
  return out;
}

/** The power of two (>= 1) such that `span` steps make at most `buckets` buckets. */
export function bucketWidth(span: number, buckets: number): number {
  let width = 1;
  while (span / width > buckets) width *= 2;
  return width;
}

/**
 * Appends the kept indices of the buckets that start in [from, to) to `out`; stops before the bucket
 * numbered `stopAt` (an open bucket a live run may still add to) and returns where that bucket starts.
 */
function scanBuckets(
  xs: ArrayLike<number>,
  ys: Values,
  width: number,
  from: number,
  to: number,
  out: number[],
  stopAt: number,
): number {
  let i = from;
  while (i < to) {
    const b = Math.floor(xs[i]! / width);
    if (b >= stopAt) return i;
    const start = i;
    let minI = -1;
    let maxI = -1;
    while (i < to && Math.floor(xs[i]! / width) === b) {
      const v = ys[i];
      if (v !== null && v !== undefined && Number.isFinite(v)) {
        if (minI < 0 || v < (ys[minI] as number)) minI = i;
        if (maxI < 0 || v > (ys[maxI] as number)) maxI = i;
      }
      i++;
    }
    const last = i - 1;
    out.push(start);
    const a = minI < maxI ? minI : maxI;
    const c = minI < maxI ? maxI : minI;
    if (a > start && a < last) out.push(a);
    if (c > start && c < last && c !== a) out.push(c);
    if (last > start) out.push(last);
  }
  return i;
}

function range(from: number, to: number): number[] {
  const out = new Array<number>(Math.max(0, to - from));
  for (let i = from; i < to; i++) out[i - from] = i;
  return out;
}

/**
 * decimateMinMax over a whole series that only grows (a live run): the buckets already closed are
 * kept, so an append costs O(new points) until the steps double and the bucket width with them.
 */
export class MinMaxDecimator {
  private width = 0;
  private xs?: ArrayLike<number>;
  private closed: number[] = [];
  private openFrom = 0;

  indices(xs: ArrayLike<number>, ys: Values, buckets: number): number[] {
    const n = xs.length;
    if (n <= 4 * buckets) return range(0, n);
    const width = bucketWidth(xs[n - 1]! - xs[0]!, buckets);
    if (width !== this.width || xs !== this.xs || this.openFrom > n) {
      this.width = width;
      this.xs = xs;
      this.closed = [];
      this.openFrom = 0;
    }
    const lastBucket = Math.floor(xs[n - 1]! / width);
    this.openFrom = scanBuckets(xs, ys, width, this.openFrom, n, this.closed, lastBucket);
    const open: number[] = [];
    scanBuckets(xs, ys, width, this.openFrom, n, open, Infinity);
    return this.closed.concat(open);
  }
}

/** Values for a log-scale axis: non-positive values cannot be drawn and become gaps. */
export function positiveOnly(values: readonly (number | null)[]): (number | null)[] {
  return values.map((v) => (v !== null && v > 0 ? v : null));
}
