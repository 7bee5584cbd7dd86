/**
 * Seed groups: runs that differ only in their seed (or agree on chosen columns) form one group,
 * whose metrics are summarized as N, mean ± sd, min and max (stats.ts). The Experiments table and
 * the claim bench both group through here, so they print the same numbers for the same runs.
 */
import { summarize, type Summary } from './stats';

/** A parameter's value as the analysis sees it (the Experiments table's cell values). */
export type ParamValue = string | number | boolean | null;

/** One run, reduced to what grouping reads. */
export interface AnalysisRun {
  /** The run's identity (its folder). */
  readonly id: string;
  /** Parameters by dotted config path (`method.type`, `training.seed`). */
  readonly params: Readonly<Record<string, ParamValue>>;
  /** Metric values by column id (`best:accuracy`, `test:accuracy`). */
  readonly metrics: Readonly<Record<string, number>>;
}

export interface RunGroup {
  /** Stable identity: the key's values as JSON. */
  readonly id: string;
  /** The values the group's runs share, by parameter (absent parameters as null). */
  readonly key: Readonly<Record<string, ParamValue>>;
  /** Member run ids, in the input order. */
  readonly runs: readonly string[];
  /** Per metric id, over the members that have it. */
  readonly stats: Readonly<Record<string, Summary>>;
}

/** The config paths a seed lives at: training.seed, and any parameter named `seed`. */
export function isSeedParameter(path: string): boolean {
  return path === 'seed' || path.endsWith('.seed');
}

export interface GroupOptions {
  /**
   * Group by exactly these parameters. Default: every parameter that varies among the runs except
   * the seed ("group by everything but the seed").
   */
  readonly by?: readonly string[];
}

/** The parameters that take more than one value (or are absent in some run) among the runs. */
export function varyingParameters(runs: readonly AnalysisRun[]): string[] {
  const out: string[] = [];
  const keys = new Set(runs.flatMap((r) => Object.keys(r.params)));
  for (const key of keys) {
    const first = runs[0]?.params[key];
    if (runs.some((r) => !(key in r.params) || r.params[key] !== first)) out.push(key);
  }
  return out;
}

/** The parameters a default grouping keys on: those that vary, except seeds. */
export function groupingParameters(runs: readonly AnalysisRun[], options: GroupOptions = {}): string[] {
  return options.by ? [...options.by] : varyingParameters(runs).filter((p) => !isSeedParameter(p));
}

/** Runs grouped by the grouping parameters, groups in order of their first run. */
export function groupRuns(runs: readonly AnalysisRun[], options: GroupOptions = {}): RunGroup[] {
  const by = groupingParameters(runs, options);
  const groups = new Map<string, { key: Record<string, ParamValue>; members: AnalysisRun[] }>();
  for (const run of runs) {
    const key: Record<string, ParamValue> = {};
    for (const p of by) key[p] = run.params[p] ?? null;
    const id = JSON.stringify(by.map((p) => key[p]));
    const group = groups.get(id) ?? { key, members: [] };
    group.members.push(run);
    groups.set(id, group);
  }
  return [...groups].map(([id, g]) => {
    const metricIds = new Set(g.members.flatMap((r) => Object.keys(r.metrics)));
    const stats: Record<string, Summary> = {};
    for (const m of metricIds) {
      const s = summarize(g.members.map((r) => r.metrics[m]).filter((v): v is number => v !== undefined));
      if (s) stats[m] = s;
    }
    return { id, key: g.key, runs: g.members.map((r) => r.id), stats };
  });
}
