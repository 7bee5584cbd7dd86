/**
 * "Only show the differences": two or more runs' resolved configs side by side, keeping only the
 * parameters whose values are not all equal (a parameter a run lacks counts as different: LoRA has
 * no bottleneck), with their metrics beside.
 */
import type { AnalysisRun, ParamValue } from './groups';

export interface RunDiff {
  /** Run ids, in the order given. */
  readonly runs: readonly string[];
  /** Parameters that differ, in first-seen order; `values[k]` belongs to `runs[k]` (undefined: the run has no such parameter). */
  readonly parameters: readonly { readonly path: string; readonly values: readonly (ParamValue | undefined)[] }[];
  /** How many parameters are the same in every run (not listed). */
  readonly same: number;
  /** Every metric any of the runs has, `values[k]` for `runs[k]`. */
  readonly metrics: readonly { readonly id: string; readonly values: readonly (number | undefined)[] }[];
}

export function diffRuns(runs: readonly AnalysisRun[]): RunDiff {
  if (runs.length < 2) throw new RangeError(`a diff needs at least two runs, got ${runs.length}`);
  const paths = [...new Set(runs.flatMap((r) => Object.keys(r.params)))];
  const parameters: { path: string; values: (ParamValue | undefined)[] }[] = [];
  let same = 0;
  for (const p of paths) {
    const values = runs.map((r) => (p in r.params ? r.params[p] : undefined));
    if (values.every((v) => v === values[0])) same++;
    else parameters.push({ path: p, values });
  }
  const metricIds = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))];
  return {
    runs: runs.map((r) => r.id),
    parameters,
    same,
    metrics: metricIds.map((id) => ({ id, values: runs.map((r) => r.metrics[id]) })),
  };
}
