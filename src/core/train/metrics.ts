/**
 * Evaluation metrics as pure functions on plain number arrays, matching scikit-learn / SciPy
 * definitions so numbers are comparable with published GLUE results.
 *
 * Conventions: arrays must have equal length (RangeError otherwise); an empty evaluation set gives
 * NaN (there is nothing to measure, and `isBetter` never prefers NaN); a correlation that is
 * undefined because one side is constant gives 0, as scikit-learn does for MCC.
 */
import type { TaskType } from '../config/types';

export function accuracy(pred: number[], gold: number[]): number {
  checkPaired(pred, gold, 'accuracy');
  if (gold.length === 0) return NaN;
  let correct = 0;
  for (let i = 0; i < gold.length; i++) if (pred[i] === gold[i]) correct++;
  return correct / gold.length;
}

/**
 * Binary (numClasses = 2): F1 of class 1, the positive class in GLUE's MRPC and QQP.
 * More classes: macro-F1 over the classes that occur in `gold` or `pred` (scikit-learn's default),
 * so a class absent from a small evaluation set does not count as a zero.
 */
export function f1(pred: number[], gold: number[], numClasses: number): number {
  const confusion = confusionMatrix(pred, gold, numClasses, 'f1');
  if (gold.length === 0) return NaN;
  if (numClasses === 2) return classF1(confusion, 1);
  const present = range(numClasses).filter((c) => rowSum(confusion, c) + columnSum(confusion, c) > 0);
  return mean(present.map((c) => classF1(confusion, c)));
}

/**
 * Matthews correlation coefficient; for more than two classes Gorodkin's R_K, which reduces to the
 * binary formula for two. 0 when undefined (all predictions or all gold labels in one class).
 */
export function matthewsCorrelation(pred: number[], gold: number[], numClasses: number): number {
  const confusion = confusionMatrix(pred, gold, numClasses, 'matthewsCorrelation');
  const n = gold.length;
  if (n === 0) return NaN;
  const classes = range(numClasses);
  const goldCounts = classes.map((c) => rowSum(confusion, c));
  const predCounts = classes.map((c) => columnSum(confusion, c));
  const correct = sum(classes.map((c) => confusion[c][c]));
  const covariance = correct * n - dot(goldCounts, predCounts);
  const predSpread = n * n - dot(predCounts, predCounts);
  const goldSpread = n * n - dot(goldCounts, goldCounts);
  if (predSpread === 0 || goldSpread === 0) return 0;
  return covariance / Math.sqrt(predSpread * goldSpread);
}

/** Pearson correlation; 0 when either side is constant. */
export function pearson(x: number[], y: number[]): number {
  checkPaired(x, y, 'pearson');
  if (x.length === 0) return NaN;
  const meanX = mean(x);
  const meanY = mean(y);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < x.length; i++) {
    const dx = x[i] - meanX;
    const dy = y[i] - meanY;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return 0;
  // Rounding can push a perfect correlation a hair past ±1.
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/** Spearman rank correlation: Pearson on ranks, with tied values sharing their average rank (as SciPy). */
export function spearman(x: number[], y: number[]): number {
  checkPaired(x, y, 'spearman');
  // NaN cannot be ranked; sorting would give it an arbitrary rank and a plausible-looking result.
  if (x.some(Number.isNaN) || y.some(Number.isNaN)) return NaN;
  return pearson(averageRanks(x), averageRanks(y));
}

export function meanSquaredError(pred: number[], gold: number[]): number {
  checkPaired(pred, gold, 'meanSquaredError');
  if (gold.length === 0) return NaN;
  return mean(gold.map((g, i) => (pred[i] - g) ** 2));
}

/**
 * All metrics of a task: {accuracy, f1, mcc} for classification (predictions are class ids),
 * {pearson, spearman, mse} for regression (predictions are values; numClasses is ignored).
 */
export function computeMetrics(
  task: TaskType,
  predictions: number[],
  gold: number[],
  numClasses: number,
): Record<string, number> {
  if (task === 'regression') {
    return {
      pearson: pearson(predictions, gold),
      spearman: spearman(predictions, gold),
      mse: meanSquaredError(predictions, gold),
    };
  }
  return {
    accuracy: accuracy(predictions, gold),
    f1: f1(predictions, gold, numClasses),
    mcc: matthewsCorrelation(predictions, gold, numClasses),
  };
}

/** Losses and errors improve downwards: "loss", "mse", "eval_loss", "val-loss", "train/loss". */
export function lowerIsBetter(metric: string): boolean {
  return /(^|[_./-])(loss|mse)$/i.test(metric);
}

/** Whether `a` is strictly better than `b` for `metric`; ties keep the earlier best, NaN is never better. */
export function isBetter(metric: string, a: number, b: number): boolean {
  if (Number.isNaN(a)) return false;
  if (Number.isNaN(b)) return true;
  return lowerIsBetter(metric) ? a < b : a > b;
}

// ---------------------------------------------------------------- helpers

/** Rows are gold classes, columns predicted classes. */
function confusionMatrix(pred: number[], gold: number[], numClasses: number, metric: string): number[][] {
  checkPaired(pred, gold, metric);
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new RangeError(`${metric}: numClasses must be an integer >= 2, got ${numClasses}`);
  }
  const confusion = range(numClasses).map(() => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < gold.length; i++) {
    confusion[checkClassId(gold[i], numClasses, metric, 'gold label')][
      checkClassId(pred[i], numClasses, metric, 'prediction')
    ]++;
  }
  return confusion;
}

function checkClassId(value: number, numClasses: number, metric: string, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value >= numClasses) {
    throw new RangeError(`${metric}: ${what} ${value} is not a class id in 0..${numClasses - 1}`);
  }
  return value;
}

/** 2TP / (2TP + FP + FN); 0 when the class never occurs, like scikit-learn's zero_division=0. */
function classF1(confusion: number[][], c: number): number {
  const truePositives = confusion[c][c];
  const denominator = rowSum(confusion, c) + columnSum(confusion, c);
  return denominator === 0 ? 0 : (2 * truePositives) / denominator;
}

function averageRanks(values: number[]): number[] {
  const order = range(values.length).sort((a, b) => values[a] - values[b]);
  const ranks = new Array<number>(values.length);
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && values[order[end]] === values[order[start]]) end++;
    // Positions start..end-1 hold ranks start+1..end; ties all get their mean.
    const tiedRank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) ranks[order[k]] = tiedRank;
    start = end;
  }
  return ranks;
}

function checkPaired(a: number[], b: number[], metric: string): void {
  if (a.length !== b.length) {
    throw new RangeError(`${metric}: ${a.length} predictions but ${b.length} gold values`);
  }
}

function rowSum(matrix: number[][], row: number): number {
  return sum(matrix[row]);
}

function columnSum(matrix: number[][], column: number): number {
  return sum(matrix.map((row) => row[column]));
}

function dot(a: number[], b: number[]): number {
  return sum(a.map((value, i) => value * b[i]));
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

function mean(values: number[]): number {
  return sum(values) / values.length;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
