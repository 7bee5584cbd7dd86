/**
 * One Experiments table row per run, from the Runs sidebar's live model (runs-model.ts): the
 * resolved config flattened to dotted paths, the best, final and test metrics, speed, size and the
 * user's annotations, as plain values (src/protocol/experiments.ts). No `vscode` import.
 */
import * as path from 'node:path';
import type { CellValue, ExperimentRow, SweepTag } from '../../protocol/experiments';
import type { Placement } from '../../protocol/worker';
import { bestMetric, currentStep, lowerIsBetter, metricName, testMetrics } from '../runs/runs-queries';
import type { RunRecord } from '../runs/runs-types';
import { displayName, runDuration, shortBackend, stateWord } from '../runs/runs-present';
import { sweepPointOf } from '../sweeps/sweep-best';

/**
 * Config fields that are not parameters of the experiment: its name (the config column; a sweep
 * point's name also carries its values), where it came from and went, and the sweep bookkeeping
 * (the Sweep column and chart show it).
 */
const NOT_PARAMETERS = new Set(['$schema', 'name', 'sourceFile', 'output', 'sweep', 'sweepPoint']);
/** Deeper than this, a value is shown as JSON text (no config field is this deep today). */
const MAX_DEPTH = 6;

export function experimentRow(run: RunRecord, placement?: Placement, now: number = Date.now()): ExperimentRow {
  const metric = metricName(run);
  const last = run.metrics.lastTrain;
  return {
    dir: run.dir,
    folder: run.id,
    name: displayName(run),
    starred: run.annotations.starred === true,
    note: run.annotations.note ?? '',
    state: run.interrupted ? 'failed' : run.state,
    stateText: stateWord(run),
    config: run.configFile ? path.basename(run.configFile) : undefined,
    started: run.started,
    durationMs: runDuration(run, now),
    step: currentStep(run),
    totalSteps: run.status?.totalSteps || undefined,
    backend: shortBackend(run.status?.backend),
    examplesPerSecond: finite(last?.examplesPerSecond),
    trainableParams: finite(placement?.trainableParams),
    metric,
    lowerIsBetter: metric ? lowerIsBetter(metric) : false,
    best: bestMetrics(run),
    final: finalMetrics(run),
    test: testMetrics(run)?.metrics ?? {},
    trainLoss: finite(last?.loss),
    params: run.config ? flattenConfig(run.config) : {},
    sweep: sweepTag(run),
    problems: run.problems,
  };
}

/**
 * The resolved config as dotted paths to plain values: `{ method: { type: 'lora', rank: 8 } }` gives
 * `method.type: 'lora'`, `method.rank: 8`. Arrays become text (`[attention, ffn]`): a list of sites
 * is one parameter, and text compares and sorts.
 */
export function flattenConfig(config: Record<string, unknown>): Record<string, CellValue> {
  const out: Record<string, CellValue> = {};
  const visit = (value: unknown, key: string, depth: number): void => {
    if (value === undefined) return;
    if (isObject(value) && depth < MAX_DEPTH) {
      for (const [k, v] of Object.entries(value)) visit(v, key ? `${key}.${k}` : k, depth + 1);
      return;
    }
    out[key] = cellOf(value);
  };
  for (const [k, v] of Object.entries(config)) if (!NOT_PARAMETERS.has(k)) visit(v, k, 1);
  return out;
}

/**
 * The sweep a run belongs to: its config.json `sweepPoint`, as a sweep point's run is written
 * (src/core/config/sweep.ts, `SweepPointInfo`): the sweep's id, this point's values (the chart's x),
 * and the metric and goal the sweep ranks its points by (its best point). A run without one, such
 * as a config with a `sweep` section trained on its own with Train, is no sweep.
 */
export function sweepTag(run: RunRecord): SweepTag | undefined {
  const info = sweepPointOf(run);
  if (!info) return undefined;
  const point: Record<string, CellValue> = {};
  if (isObject(info.values)) for (const [k, v] of Object.entries(info.values)) point[k] = cellOf(v);
  return { id: info.sweepId, index: info.index, point, metric: info.metric, goal: info.goal };
}

/** Validation metrics of the best checkpoint: status.json, the best checkpoint, else the best logged evaluation. */
function bestMetrics(run: RunRecord): Record<string, number> {
  const fromStatus = run.status?.bestMetrics;
  if (fromStatus && Object.keys(fromStatus).length) return finiteRecord(fromStatus);
  const fromCheckpoint = run.checkpoints.find((c) => c.step === run.bestStep)?.metrics;
  if (fromCheckpoint && Object.keys(fromCheckpoint).length) return finiteRecord(fromCheckpoint);
  const best = bestMetric(run);
  const atBest =
    best?.step === undefined
      ? undefined
      : run.metrics.evals.find((e) => e.split === 'validation' && e.step === best.step);
  return atBest ? finiteRecord(atBest.metrics) : {};
}

function finalMetrics(run: RunRecord): Record<string, number> {
  for (let i = run.metrics.evals.length - 1; i >= 0; i--) {
    const e = run.metrics.evals[i]!;
    if (e.split === 'validation') return finiteRecord(e.metrics);
  }
  return {};
}

function cellOf(value: unknown): CellValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (Array.isArray(value) && value.every((v) => v === null || ['string', 'number', 'boolean'].includes(typeof v)))
    return `[${value.join(', ')}]`;
  return JSON.stringify(value) ?? null;
}

function finite(v: number | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function finiteRecord(o: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
