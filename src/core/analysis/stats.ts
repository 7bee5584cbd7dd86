/**
 * Summary statistics of a metric over runs: N, mean, the sample standard deviation (n - 1, as
 * numpy's `std(ddof=1)`, pandas and the papers' "± sd" use), min and max. One rule for every table
 * that says "mean ± sd" (the Experiments table's groups, the claim bench, the exports).
 */

export interface Summary {
  readonly n: number;
  readonly mean: number;
  /** Sample standard deviation; 0 for a single value (no spread measured, shown as N = 1). */
  readonly sd: number;
  readonly min: number;
  readonly max: number;
}

/** The summary of the finite values; undefined when there are none. */
export function summarize(values: readonly number[]): Summary | undefined {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  if (!n) return undefined;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { n, mean, sd, min: Math.min(...xs), max: Math.max(...xs) };
}

/** Which value of a run's evaluations a table shows for a metric. */
export type ValueChoice = 'best' | 'last' | 'min' | 'max';
export const VALUE_CHOICES: readonly ValueChoice[] = ['best', 'last', 'min', 'max'];

/**
 * One value from a metric's evaluations in step order: the last, the smallest, the largest, or the
 * best (the largest unless a smaller value is better, as for a loss).
 */
export function chooseValue(
  series: readonly number[],
  choice: ValueChoice,
  lowerIsBetter: boolean,
): number | undefined {
  const xs = series.filter((v) => Number.isFinite(v));
  if (!xs.length) return undefined;
  switch (choice) {
    case 'last':
      return xs[xs.length - 1];
    case 'min':
      return Math.min(...xs);
    case 'max':
      return Math.max(...xs);
    case 'best':
      return lowerIsBetter ? Math.min(...xs) : Math.max(...xs);
  }
}
