/**
 * The dashboard's seed groups: each group's curves as bands over its runs (src/core/analysis/bands.ts),
 * from the same run snapshots the panel sends, so the mean at a step is the mean of the values the
 * runs' own charts would show there.
 */
import * as path from 'node:path';
import { bandOverRuns, type SeriesBand } from '../../core/analysis/bands';
import type { DashboardBand, DashboardGroup, DashboardGroupSpec, RunSnapshot } from '../../protocol/dashboard';

// the core's band is the protocol's (checked at compile time)
const _bandFits: (b: SeriesBand) => DashboardBand = (b) => b;
void _bandFits;

/** A group's bands: training loss and learning rate per step, every validation metric per evaluation. */
export function groupCurves(spec: DashboardGroupSpec, runs: readonly RunSnapshot[]): DashboardGroup {
  const dirs = new Set(spec.dirs.map((d) => path.resolve(d)));
  const members = runs.filter((r) => dirs.has(path.resolve(r.dir)));
  const bands: Record<string, DashboardBand> = {
    loss: bandOverRuns(members.map((r) => ({ step: r.train.step, value: r.train.loss }))),
    learningRate: bandOverRuns(members.map((r) => ({ step: r.train.step, value: r.train.learningRate }))),
  };
  const metrics = new Set(
    members.flatMap((r) => r.evals.filter((e) => e.split === 'validation').flatMap((e) => Object.keys(e.metrics))),
  );
  for (const metric of metrics) {
    bands[`validation:${metric}`] = bandOverRuns(
      members.map((r) => {
        const evals = r.evals
          .filter((e) => e.split === 'validation' && e.metrics[metric] !== undefined)
          .sort((a, b) => a.step - b.step);
        return { step: evals.map((e) => e.step), value: evals.map((e) => e.metrics[metric] ?? null) };
      }),
    );
  }
  const task = members.map((r) => r.config?.task).find((t) => t && typeof t === 'object' && !Array.isArray(t)) as
    { metric?: unknown } | undefined;
  const primaryMetric = typeof task?.metric === 'string' ? task.metric : undefined;
  return { label: spec.label, dirs: spec.dirs, ...(primaryMetric ? { primaryMetric } : {}), bands };
}
