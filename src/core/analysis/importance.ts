/**
 * Which parameter matters for a metric, over a set of runs: for each varying parameter, its
 * Pearson and Spearman correlation with the metric, and its permutation importance in a small
 * random forest (Breiman 2001: per tree, the increase of the out-of-bag squared error when the
 * parameter's values are shuffled, averaged over the trees). Correlation sees only monotone
 * effects of one parameter; the forest also sees categories, interactions and bumps. Seeded, so
 * the same runs give the same numbers.
 */
import { Rng } from '../random';
import type { AnalysisRun, ParamValue } from './groups';

export const IMPORTANCE_METHOD = 'permutation importance (out-of-bag, random forest of 100 regression trees)';

export interface ParameterImportance {
  readonly parameter: string;
  /** Pearson's r with the metric; undefined for text parameters with more than two values (no order). */
  readonly pearson?: number;
  /** Spearman's rank correlation (same condition). */
  readonly spearman?: number;
  /** Increase of the out-of-bag mean squared error when the parameter is shuffled (>= 0 after clipping). */
  readonly permutation: number;
  /** `permutation` as a share of the sum over parameters (0 when no parameter helps). */
  readonly share: number;
}

export interface ImportanceResult {
  readonly metric: string;
  readonly method: string;
  /** Runs that have the metric (the others are left out). */
  readonly runs: number;
  /** Most important first. */
  readonly parameters: readonly ParameterImportance[];
}

export interface ImportanceOptions {
  readonly trees?: number;
  readonly maxDepth?: number;
  readonly seed?: number;
}

/** Importance of `parameters` for `metric` over the runs that have the metric. */
export function parameterImportance(
  runs: readonly AnalysisRun[],
  parameters: readonly string[],
  metric: string,
  options: ImportanceOptions = {},
): ImportanceResult {
  const usable = runs.filter((r) => Number.isFinite(r.metrics[metric]));
  const y = usable.map((r) => r.metrics[metric]!);
  const columns = parameters.map((p) =>
    encode(
      usable.map((r) => r.params[p] ?? null),
      y,
    ),
  );
  const ordered = parameters.map((p, j) => ({ parameter: p, ordered: columns[j]!.ordered, x: columns[j]!.x }));
  const permutation =
    usable.length >= 3 && parameters.length
      ? forestImportance(
          columns.map((c) => c.x),
          y,
          options,
        )
      : parameters.map(() => 0);
  const total = permutation.reduce((a, b) => a + b, 0);
  const result = ordered.map((c, j) => ({
    parameter: c.parameter,
    pearson: c.ordered ? pearson(c.x, y) : undefined,
    spearman: c.ordered ? spearman(c.x, y) : undefined,
    permutation: permutation[j]!,
    share: total > 0 ? permutation[j]! / total : 0,
  }));
  result.sort((a, b) => b.permutation - a.permutation || Math.abs(b.spearman ?? 0) - Math.abs(a.spearman ?? 0));
  return { metric, method: IMPORTANCE_METHOD, runs: usable.length, parameters: result };
}

/**
 * A parameter as numbers: numbers as they are, booleans 0/1, null below everything; text as
 * categories ordered by their mean metric (for a regression tree this ordering finds the best
 * split of the categories into two sets, Fisher 1958), which is only an order for correlation
 * when there are two categories.
 */
function encode(values: readonly ParamValue[], y: readonly number[]): { x: number[]; ordered: boolean } {
  const present = values.filter((v) => v !== null);
  if (present.every((v) => typeof v === 'number')) {
    const min = Math.min(...(present as number[]), 0);
    return { x: values.map((v) => (v === null ? min - 1 : (v as number))), ordered: true };
  }
  if (present.every((v) => typeof v === 'boolean'))
    return { x: values.map((v) => (v === null ? -1 : v ? 1 : 0)), ordered: true };
  const text = values.map((v) => (v === null ? '\u0000' : String(v)));
  const sums = new Map<string, { sum: number; n: number }>();
  text.forEach((t, i) => {
    const s = sums.get(t) ?? { sum: 0, n: 0 };
    s.sum += y[i]!;
    s.n++;
    sums.set(t, s);
  });
  const order = [...sums].sort(([, a], [, b]) => a.sum / a.n - b.sum / b.n).map(([t]) => t);
  return { x: text.map((t) => order.indexOf(t)), ordered: order.length <= 2 };
}

export function pearson(x: readonly number[], y: readonly number[]): number | undefined {
  const n = x.length;
  if (n < 2) return undefined;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
    syy += (y[i]! - my) ** 2;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : undefined;
}

/** Ranks from 1, ties sharing their average rank. */
export function ranks(x: readonly number[]): number[] {
  const order = x.map((v, i) => ({ v, i })).sort((a, b) => a.v - b.v);
  const out = new Array<number>(x.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]!.v === order[i]!.v) j++;
    for (let k = i; k <= j; k++) out[order[k]!.i] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return out;
}

export function spearman(x: readonly number[], y: readonly number[]): number | undefined {
  return pearson(ranks(x), ranks(y));
}

// ---- the forest ------------------------------------------------------------------------------------

type Tree = { leaf: number } | { feature: number; threshold: number; left: Tree; right: Tree };

function predict(tree: Tree, row: (j: number) => number): number {
  let node = tree;
  while (!('leaf' in node)) node = row(node.feature) <= node.threshold ? node.left : node.right;
  return node.leaf;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** A CART regression tree on the rows `idx`, trying `tries` random features at each split. */
function growTree(
  X: readonly number[][],
  y: readonly number[],
  idx: number[],
  depth: number,
  maxDepth: number,
  tries: number,
  rng: Rng,
): Tree {
  const values = idx.map((i) => y[i]!);
  const m = mean(values);
  if (depth >= maxDepth || idx.length < 4 || values.every((v) => v === values[0])) return { leaf: m };
  const features = rng.shuffle(X.map((_, j) => j)).slice(0, tries);
  let best: { feature: number; threshold: number; score: number } | undefined;
  for (const j of features) {
    const sorted = [...idx].sort((a, b) => X[j]![a]! - X[j]![b]!);
    const total = sorted.reduce((a, i) => a + y[i]!, 0);
    let leftSum = 0;
    for (let k = 0; k < sorted.length - 1; k++) {
      leftSum += y[sorted[k]!]!;
      const here = X[j]![sorted[k]!]!;
      const next = X[j]![sorted[k + 1]!]!;
      if (here === next) continue;
      const nl = k + 1;
      const nr = sorted.length - nl;
      // maximizing this is minimizing the children's squared error
      const score = (leftSum * leftSum) / nl + ((total - leftSum) * (total - leftSum)) / nr;
      if (!best || score > best.score) best = { feature: j, threshold: (here + next) / 2, score };
    }
  }
  if (!best) return { leaf: m };
  const left = idx.filter((i) => X[best!.feature]![i]! <= best!.threshold);
  const right = idx.filter((i) => X[best!.feature]![i]! > best!.threshold);
  return {
    feature: best.feature,
    threshold: best.threshold,
    left: growTree(X, y, left, depth + 1, maxDepth, tries, rng),
    right: growTree(X, y, right, depth + 1, maxDepth, tries, rng),
  };
}

/** Per feature (X[j][i]: feature j of row i), the mean over trees of the out-of-bag error increase when it is shuffled. */
function forestImportance(X: readonly number[][], y: readonly number[], options: ImportanceOptions): number[] {
  const n = y.length;
  const trees = options.trees ?? 100;
  const rng = new Rng(options.seed ?? 1);
  const tries = Math.max(1, Math.ceil(X.length / 3));
  const sums = X.map(() => 0);
  let counted = 0;
  for (let t = 0; t < trees; t++) {
    const inBag = Array.from({ length: n }, () => rng.int(n));
    const bag = new Set(inBag);
    const oob = y.map((_, i) => i).filter((i) => !bag.has(i));
    if (oob.length < 2) continue;
    const tree = growTree(X, y, inBag, 0, options.maxDepth ?? 6, tries, rng);
    const error = (feature: number, shuffled?: number[]) =>
      oob.reduce(
        (a, i, k) =>
          a + (predict(tree, (j) => (j === feature && shuffled ? X[j]![shuffled[k]!]! : X[j]![i]!)) - y[i]!) ** 2,
        0,
      ) / oob.length;
    const base = error(-1);
    for (let j = 0; j < X.length; j++) sums[j]! += error(j, rng.shuffle([...oob])) - base;
    counted++;
  }
  return sums.map((s) => (counted ? Math.max(0, s / counted) : 0));
}
