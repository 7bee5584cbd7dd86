/**
 * The lines of a run's metrics.jsonl: the one contract between the writer
 * (src/core/checkpoint/run-folder.ts `logMetrics`) and every reader (the Runs tree, the dashboard,
 * the follower of a reattached run, the CLI).
 *
 * On disk an evaluation's metrics sit beside its other fields (`{"kind":"eval","split":"validation",
 * "step":40,"epoch":1,"accuracy":0.8,"loss":0.4,"isBest":true}`); in memory they are one `metrics`
 * object, so no reader has to know which keys are not metrics. JSON has no NaN: a non-finite
 * number is written as `null` and read back as `null`.
 */
import type { Split } from './worker';

/** One logged training step (the mean over the steps since the previous line). */
export interface TrainLine {
  readonly kind: 'train';
  readonly step: number;
  readonly epoch: number;
  /** null: not a finite number (a diverged run). */
  readonly loss: number | null;
  readonly learningRate: number | null;
  readonly examplesPerSecond: number | null;
  readonly elapsedMs: number | null;
}

/** One evaluation: on the validation split during training, on the test split at its end. */
export interface EvalLine {
  readonly kind: 'eval';
  readonly split: Split;
  readonly step: number;
  /** Absent on the test evaluation at the end of training. */
  readonly epoch?: number;
  readonly metrics: Readonly<Record<string, number | null>>;
  /** Whether this validation result is the best so far (absent on test lines). */
  readonly isBest?: boolean;
}

export type MetricsLine = TrainLine | EvalLine;

/** What the writer passes: numbers as computed (a NaN loss is written as null). */
export type MetricsLineInput =
  | { readonly [K in keyof TrainLine]: K extends 'kind' ? 'train' : number }
  | (Omit<EvalLine, 'metrics'> & { readonly metrics: Readonly<Record<string, number>> });

/** The fields of an eval line that are not metrics. */
const EVAL_FIELDS = new Set(['kind', 'split', 'step', 'epoch', 'isBest']);

/** The JSON text of a line (without its newline), in the field order the log has always had. */
export function metricsLineText(line: MetricsLineInput): string {
  if (line.kind === 'train') {
    const { step, epoch, loss, learningRate, examplesPerSecond, elapsedMs } = line;
    return JSON.stringify({ kind: 'train', step, epoch, loss, learningRate, examplesPerSecond, elapsedMs });
  }
  const { split, step, epoch, metrics, isBest } = line;
  for (const name of Object.keys(metrics)) {
    if (EVAL_FIELDS.has(name))
      throw new Error(`metrics.jsonl: a metric cannot be called "${name}" (an eval line's own field)`);
  }
  return JSON.stringify({ kind: 'eval', split, step, epoch, ...metrics, isBest });
}

/** A line that is not a metrics record, with why (for a problem naming its line number). */
export interface BrokenLine {
  readonly error: string;
}

/** Parses one line of metrics.jsonl (without its newline); never throws. */
export function parseMetricsLine(text: string): MetricsLine | BrokenLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `not valid JSON (${(err as Error).message})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { error: 'not a metrics record (not a JSON object)' };
  const r = value as Record<string, unknown>;
  if (typeof r.step !== 'number' || !Number.isFinite(r.step))
    return { error: 'not a metrics record (no numeric "step")' };
  if (r.kind === 'train') {
    return {
      kind: 'train',
      step: r.step,
      epoch: finite(r.epoch) ?? 0,
      loss: finite(r.loss),
      learningRate: finite(r.learningRate),
      examplesPerSecond: finite(r.examplesPerSecond),
      elapsedMs: finite(r.elapsedMs),
    };
  }
  if (r.kind === 'eval') {
    const metrics: Record<string, number | null> = {};
    for (const [k, v] of Object.entries(r))
      if (!EVAL_FIELDS.has(k) && (typeof v === 'number' || v === null)) metrics[k] = finite(v);
    return {
      kind: 'eval',
      split: r.split === 'test' ? 'test' : 'validation',
      step: r.step,
      epoch: finite(r.epoch) ?? undefined,
      metrics,
      isBest: r.isBest === true,
    };
  }
  return { error: `unknown record kind ${JSON.stringify(r.kind)}` };
}

export function isBrokenLine(line: MetricsLine | BrokenLine): line is BrokenLine {
  return 'error' in line;
}

/** The finite numbers of a metrics object (null, a metric that was not finite, left out). */
export function finiteMetrics(metrics: Readonly<Record<string, number | null>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) if (typeof v === 'number') out[k] = v;
  return out;
}

function finite(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}
