/**
 * The run summary as label/value rows: what ran (config), where (backend), how fast, how far, the
 * best checkpoint and the final metrics. No DOM here.
 */
import type { JsonValue } from '../../src/protocol/dashboard';
import { formatCount, formatDuration, formatMetricValue } from '../../src/protocol/format';
import { primaryMetric, type RunModel } from './store';

export interface Fact {
  readonly label: string;
  readonly value: string;
  /** Longer text for the hover (a full path, an exact value). */
  readonly title?: string;
}

export interface MetricLine {
  readonly label: string;
  readonly step: number;
  readonly metrics: readonly [string, string][];
}

export interface RunSummaryView {
  readonly name: string;
  readonly state: RunModel['status']['state'];
  readonly stateText: string;
  readonly method: string;
  readonly progress: { readonly step: number; readonly total: number; readonly fraction: number };
  readonly facts: readonly Fact[];
  readonly config: readonly { readonly section: string; readonly rows: readonly Fact[] }[];
  readonly metrics: readonly MetricLine[];
  readonly primaryMetric?: string;
  readonly canStop: boolean;
  readonly canResume: boolean;
  readonly canEvaluate: boolean;
}

export function summarize(run: RunModel): RunSummaryView {
  const s = run.status;
  const t = run.train;
  const method = str(obj(run.config?.method)?.type) ?? run.placement?.method ?? '–';
  const total = s.totalSteps || 0;
  const step = Math.max(s.step, t.step[t.step.length - 1] ?? 0);
  const speed = recentMedian(t.examplesPerSecond, 10);
  const elapsed =
    s.ended && s.started
      ? Date.parse(s.ended) - Date.parse(s.started)
      : (lastNumber(t.elapsedMs) ?? (s.started ? Date.now() - Date.parse(s.started) : NaN));
  const metric = primaryMetric(run);
  const bestStep = stepOf(s.bestCheckpoint);
  const facts: Fact[] = [
    { label: 'State', value: stateText(run) },
    { label: 'Method', value: method },
    { label: 'Backend', value: s.backend ?? '–' },
    {
      label: 'Progress',
      value: total
        ? `step ${formatCount(step)} of ${formatCount(total)} (${Math.floor((100 * step) / total)}%)`
        : `step ${formatCount(step)}`,
    },
    { label: 'Speed', value: speed === undefined ? '–' : `${speed.toFixed(1)} examples/s` },
    { label: 'Elapsed', value: formatDuration(elapsed) },
    {
      label: 'Best checkpoint',
      value:
        bestStep === undefined
          ? '–'
          : `step ${bestStep}${metric && s.bestMetrics?.[metric] !== undefined ? ` · ${metric} ${formatMetricValue(s.bestMetrics[metric])}` : ''}`,
      title: s.bestCheckpoint,
    },
    { label: 'Checkpoints', value: run.checkpoints.length ? run.checkpoints.map((c) => `step ${c}`).join(', ') : '–' },
  ];
  if (s.started) facts.push({ label: 'Started', value: new Date(s.started).toLocaleString(), title: s.started });
  if (s.error) facts.push({ label: 'Error', value: s.error });

  const metrics: MetricLine[] = [];
  const lastValidation = [...run.evals].reverse().find((e) => e.split === 'validation');
  if (lastValidation)
    metrics.push({
      label: 'Final validation',
      step: lastValidation.step,
      metrics: metricPairs(lastValidation.metrics),
    });
  if (s.bestMetrics && bestStep !== undefined)
    metrics.push({ label: 'Best validation', step: bestStep, metrics: metricPairs(s.bestMetrics) });
  const test = [...run.evals].reverse().find((e) => e.split === 'test');
  if (test) metrics.push({ label: 'Test (best checkpoint)', step: test.step, metrics: metricPairs(test.metrics) });

  return {
    name: run.name,
    state: s.state,
    stateText: stateText(run),
    method,
    progress: { step, total, fraction: total ? Math.min(1, step / total) : 0 },
    facts,
    config: configSections(run.config),
    metrics,
    primaryMetric: metric,
    canStop: s.state === 'running',
    canResume: (s.state === 'stopped' || s.state === 'failed') && run.checkpoints.length > 0,
    canEvaluate: run.checkpoints.length > 0,
  };
}

export function stateText(run: RunModel): string {
  const s = run.status;
  switch (s.state) {
    case 'running':
      return s.followed ? 'training (live)' : 'training';
    case 'finished':
      return s.reason === 'early-stopping' ? 'finished (early stopping)' : 'finished';
    case 'stopped':
      return s.reason === 'cancelled' ? 'stopped (can resume)' : 'stopped';
    case 'failed':
      return 'failed';
    default:
      return 'unknown (no status.json)';
  }
}

function configSections(config?: { readonly [key: string]: JsonValue }): { section: string; rows: Fact[] }[] {
  if (!config) return [];
  const sections: { section: string; rows: Fact[] }[] = [];
  const model = obj(config.model);
  if (model) {
    const rows: Fact[] = [];
    const scratch = obj(model.scratch);
    if (scratch) {
      rows.push({ label: 'base', value: 'random init (scratch)' });
      for (const key of ['layers', 'hiddenSize', 'heads', 'intermediateSize'])
        if (scratch[key] !== undefined) rows.push(fact(key, scratch[key]!));
    } else if (typeof model.path === 'string')
      rows.push({ label: 'path', value: basename(model.path), title: model.path });
    else if (typeof model.hub === 'string') rows.push({ label: 'hub', value: model.hub });
    sections.push({ section: 'Model', rows });
  }
  const task = obj(config.task);
  if (task)
    sections.push({
      section: 'Task',
      rows: ['type', 'metric', 'labels'].filter((k) => task[k] !== undefined).map((k) => fact(k, task[k]!)),
    });
  const data = obj(config.data);
  if (data) {
    sections.push({
      section: 'Data',
      rows: ['train', 'validation', 'test', 'maxLength', 'maxTrainExamples']
        .filter((k) => data[k] !== undefined)
        .map((k) => {
          const v = data[k]!;
          return typeof v === 'string' ? { label: k, value: basename(v), title: v } : fact(k, v);
        }),
    });
  }
  const method = obj(config.method);
  if (method) sections.push({ section: 'Method', rows: Object.entries(method).map(([k, v]) => fact(k, v)) });
  const training = obj(config.training);
  if (training) sections.push({ section: 'Training', rows: Object.entries(training).map(([k, v]) => fact(k, v)) });
  return sections;
}

function fact(label: string, v: JsonValue): Fact {
  const value = typeof v === 'string' ? v : typeof v === 'number' ? String(v) : JSON.stringify(v);
  return {
    label,
    value: value.length > 60 ? `${value.slice(0, 57)}…` : value,
    title: value.length > 60 ? value : undefined,
  };
}

function metricPairs(m: Readonly<Record<string, number | null>>): [string, string][] {
  return Object.entries(m).map(([k, v]) => [k, formatMetricValue(v)]);
}

function obj(v: JsonValue | undefined): { readonly [key: string]: JsonValue } | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as { readonly [key: string]: JsonValue }) : undefined;
}

function str(v: JsonValue | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function basename(p: string): string {
  return p.split(/[\\/]/).pop() || p;
}

function stepOf(checkpoint?: string): number | undefined {
  const m = checkpoint ? /step-(\d+)\/?$/.exec(checkpoint) : null;
  return m ? Number(m[1]) : undefined;
}

function lastNumber(values: readonly (number | null)[]): number | undefined {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i]!;
  return undefined;
}

/** Median of the last n finite values (the speed without one slow step's noise). */
function recentMedian(values: readonly (number | null)[], n: number): number | undefined {
  const recent: number[] = [];
  for (let i = values.length - 1; i >= 0 && recent.length < n; i--)
    if (values[i] !== null && Number.isFinite(values[i]!)) recent.push(values[i]!);
  if (!recent.length) return undefined;
  recent.sort((a, b) => a - b);
  return recent[Math.floor(recent.length / 2)];
}
