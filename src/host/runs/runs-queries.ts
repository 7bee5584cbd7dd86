/**
 * Questions the Runs view, the CodeLens, the Experiments table and the actions ask of a run: its
 * metric and best value, its test result, its latest step and checkpoint, and the tree's orders.
 */
import type { CheckpointRecord, RunGroup, RunRecord, StateFilter } from './runs-types';

/** The run's task metric (config.json task.metric; else the first non-loss metric it logged). */
export function metricName(run: RunRecord): string | undefined {
  const fromConfig = run.config?.task?.metric;
  if (typeof fromConfig === 'string') return fromConfig;
  const candidates = run.status?.bestMetrics ?? run.metrics.evals.find((e) => e.split === 'validation')?.metrics;
  return candidates ? Object.keys(candidates).find((k) => k !== 'loss') : undefined;
}

export function lowerIsBetter(metric: string): boolean {
  return /loss|mse|mae|error/i.test(metric);
}

/** The best validation value of the run's metric: status.bestMetrics, the best checkpoint's, else the best logged evaluation. */
export function bestMetric(run: RunRecord): { name: string; value: number; step?: number } | undefined {
  const name = metricName(run);
  if (!name) return undefined;
  const fromStatus = run.status?.bestMetrics?.[name];
  if (typeof fromStatus === 'number' && Number.isFinite(fromStatus))
    return { name, value: fromStatus, step: run.bestStep };
  const best = run.checkpoints.find((c) => c.step === run.bestStep)?.metrics?.[name];
  if (typeof best === 'number' && Number.isFinite(best)) return { name, value: best, step: run.bestStep };
  let found: { name: string; value: number; step?: number } | undefined;
  const sign = lowerIsBetter(name) ? -1 : 1;
  for (const e of run.metrics.evals) {
    const v = e.metrics[name];
    if (e.split !== 'validation' || typeof v !== 'number' || !Number.isFinite(v)) continue;
    if (!found || sign * (v - found.value) > 0) found = { name, value: v, step: e.step };
  }
  return found;
}

/** The latest test-split result: a test evaluation in the log, else the best checkpoint's eval-test.json. */
export function testMetrics(run: RunRecord): { step: number; metrics: Record<string, number> } | undefined {
  for (let i = run.metrics.evals.length - 1; i >= 0; i--) {
    const e = run.metrics.evals[i]!;
    if (e.split === 'test') return { step: e.step, metrics: e.metrics };
  }
  const best = run.checkpoints.find((c) => c.step === run.bestStep) ?? run.checkpoints[run.checkpoints.length - 1];
  const test = best?.evals.test;
  return best && test ? { step: best.step, metrics: test.metrics } : undefined;
}

/** The latest step known: status.step, or the log's last train line when that is newer. */
export function currentStep(run: RunRecord): number {
  return Math.max(run.status?.step ?? 0, run.metrics.lastTrain?.step ?? 0);
}

/** The newest complete checkpoint (has checkpoint.json and weights), which a resume continues from. */
export function latestCompleteCheckpoint(run: RunRecord): CheckpointRecord | undefined {
  for (let i = run.checkpoints.length - 1; i >= 0; i--) {
    const c = run.checkpoints[i]!;
    if (c.problems.length === 0 && c.hasWeights) return c;
  }
  return undefined;
}

/** Metrics of a checkpoint at its step: checkpoint.json, else the log's validation evaluation at that step. */
export function checkpointMetrics(run: RunRecord | undefined, c: CheckpointRecord): Record<string, number> | undefined {
  if (c.metrics && Object.keys(c.metrics).length) return c.metrics;
  return run?.metrics.evals.find((e) => e.split === 'validation' && e.step === c.step)?.metrics;
}

export function matchesState(run: RunRecord, filter: ReadonlySet<StateFilter>): boolean {
  if (filter.has('problem') && run.problems.length > 0) return true;
  return run.state !== 'unknown' && filter.has(run.state);
}

// ---- orders of the tree -------------------------------------------------------------------------------

export function byDate(a: RunRecord, b: RunRecord): number {
  return b.started - a.started || b.id.localeCompare(a.id);
}

export function byMetric(a: RunRecord, b: RunRecord): number {
  const ma = bestMetric(a);
  const mb = bestMetric(b);
  if (ma && mb) {
    const sign = lowerIsBetter(ma.name) ? 1 : -1;
    return sign * (ma.value - mb.value) || byDate(a, b);
  }
  if (ma) return -1;
  if (mb) return 1;
  return byDate(a, b);
}

export function groupOrder(g: RunGroup): number {
  return g.configFile === '' ? 2 : g.known ? 0 : 1;
}
