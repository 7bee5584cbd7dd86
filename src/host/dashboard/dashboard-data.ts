/**
 * What the dashboard knows of one run folder, read from disk and kept current by reading only what
 * was appended to metrics.jsonl since the last read. Status, liveness and metrics come from the one
 * run-folder reader (src/core/checkpoint/run-reader.ts), which notices a rewritten metrics file (a
 * resume drops the lines after its checkpoint and renames a new file into place).
 *
 * No `vscode` here: the panel (dashboard-panel.ts) decides when to refresh, this file how.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MetricsTail, readRunStatusChecked, runLiveness } from '../../core/checkpoint/run-reader';
import type { MetricsLine } from '../../protocol/metrics';
import {
  checkPlacement,
  type DashboardPlacement,
  type DashboardRunState,
  type DashboardStatus,
  type EvalPoint,
  type JsonValue,
  type RoutingCounts,
  type RunSnapshot,
  type TrainColumns,
} from '../../protocol/dashboard';

const STATES = new Set(['running', 'finished', 'failed', 'stopped']);
const MAX_PROBLEMS = 20;

interface MutableColumns {
  step: number[];
  epoch: number[];
  loss: (number | null)[];
  learningRate: (number | null)[];
  examplesPerSecond: (number | null)[];
  elapsedMs: (number | null)[];
}

/** What one refresh found; empty when nothing changed. */
export interface RunChanges {
  /** The metrics file was rewritten (or replaced): send the whole run again. */
  reset: boolean;
  /** Lines appended since the last read (when not reset). */
  train?: TrainColumns;
  evals?: EvalPoint[];
  status?: DashboardStatus;
  placement?: DashboardPlacement;
  routing?: RoutingCounts;
  checkpoints?: number[];
  config?: { [key: string]: JsonValue };
  configFile?: string;
}

export function hasChanges(c: RunChanges): boolean {
  return (
    c.reset ||
    c.train !== undefined ||
    c.evals !== undefined ||
    c.status !== undefined ||
    c.placement !== undefined ||
    c.routing !== undefined ||
    c.checkpoints !== undefined ||
    c.config !== undefined
  );
}

export class RunData {
  readonly name: string;
  private train: MutableColumns = emptyColumns();
  private evals: EvalPoint[] = [];
  private readonly metrics: MetricsTail;
  private statusPid?: number;
  private statusValue: Omit<DashboardStatus, 'followed'> = { state: 'unknown', step: 0, totalSteps: 0 };
  private statusText = '';
  private placementValue?: DashboardPlacement;
  private routingValue?: RoutingCounts;
  private checkpointSteps: number[] = [];
  private configValue?: { [key: string]: JsonValue };
  private problemList: string[] = [];

  constructor(readonly dir: string) {
    this.dir = path.resolve(dir);
    this.name = path.basename(this.dir);
    this.metrics = new MetricsTail(this.dir);
    this.refresh();
  }

  get state(): DashboardRunState {
    return this.statusValue.state;
  }

  /** The *.peft.json the run was trained from (config.json's sourceFile, else status.json's configFile). */
  get configFile(): string | undefined {
    const source = this.configValue?.sourceFile;
    return typeof source === 'string' ? source : this.statusConfigFile;
  }

  private statusConfigFile?: string;

  /** The checkpoint to evaluate: the best one, else the newest. */
  get bestCheckpoint(): string | undefined {
    if (this.statusValue.bestCheckpoint) return this.statusValue.bestCheckpoint;
    const last = this.checkpointSteps.at(-1);
    return last === undefined ? undefined : path.join(this.dir, 'checkpoints', `step-${last}`);
  }

  get trainCount(): number {
    return this.train.step.length;
  }

  snapshot(followed: boolean): RunSnapshot {
    return {
      dir: this.dir,
      name: this.name,
      configFile: this.configFile,
      config: this.configValue,
      status: { ...this.statusValue, followed },
      placement: this.placementValue,
      routing: this.routingValue,
      train: this.train,
      evals: this.evals,
      checkpoints: this.checkpointSteps,
      problems: this.problemList,
    };
  }

  /** Reads what changed on disk since the last call. `followed` goes into a changed status. */
  refresh(followed = false): RunChanges {
    const changes: RunChanges = { reset: false };
    if (!this.configValue) {
      const config = this.readJson('config.json');
      if (config && typeof config === 'object' && !Array.isArray(config)) {
        this.configValue = config as { [key: string]: JsonValue };
        changes.config = this.configValue;
        changes.configFile = this.configFile;
      }
    }
    this.readStatus(followed, changes);
    this.checkStillRunning(followed, changes);
    this.readMetrics(changes);
    if (!this.placementValue || changes.reset) this.readPlacement(changes);
    this.readCheckpoints(changes);
    return changes;
  }

  private readStatus(followed: boolean, changes: RunChanges): void {
    const read = readRunStatusChecked(this.dir);
    // missing: not written yet, or being renamed into place: keep what we had
    if ('missing' in read) return;
    if ('error' in read) {
      this.problem(read.error);
      return;
    }
    if (read.text === this.statusText) return;
    this.statusText = read.text;
    const raw = read.status;
    this.statusPid = raw.pid;
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
    const error =
      raw.error && typeof raw.error === 'object' ? str((raw.error as { message?: unknown }).message) : undefined;
    const best =
      raw.bestMetrics && typeof raw.bestMetrics === 'object'
        ? finiteRecord(raw.bestMetrics as Record<string, unknown>)
        : undefined;
    this.statusConfigFile = str(raw.configFile);
    this.statusValue = {
      state: STATES.has(raw.state) ? (raw.state as DashboardRunState) : 'unknown',
      backend: str(raw.backend),
      step: count(raw.step),
      totalSteps: count(raw.totalSteps),
      started: str(raw.started),
      ended: str(raw.ended),
      bestCheckpoint: str(raw.bestCheckpoint),
      bestMetrics: best,
      reason: str(raw.reason),
      error,
    };
    changes.status = { ...this.statusValue, followed };
  }

  /**
   * A killed run's status.json keeps saying running; the one liveness rule (run-reader.ts, which
   * the Runs view and the follower use too) tells: a run whose process is gone is shown failed,
   * with why it is taken as interrupted.
   */
  private checkStillRunning(followed: boolean, changes: RunChanges): void {
    if (this.statusValue.state !== 'running') return;
    const activity = runLiveness(this.dir, { pid: this.statusPid as number });
    if (activity.live) return;
    this.statusValue = { ...this.statusValue, state: 'failed', error: `interrupted: ${activity.why}` };
    changes.status = { ...this.statusValue, followed };
  }

  /** The status as last read, with `followed` as given (for a change of `followed` alone). */
  status(followed: boolean): DashboardStatus {
    return { ...this.statusValue, followed };
  }

  private readMetrics(changes: RunChanges): void {
    const read = this.metrics.read();
    if (read.reset) {
      // rewritten (a resume drops the lines after its checkpoint), or gone: start again from the top
      this.train = emptyColumns();
      this.evals = [];
      changes.reset = true;
    }
    for (const b of read.broken) this.problem(`metrics.jsonl line ${b.line}: ${b.reason}`);
    const before = { train: this.train.step.length, evals: this.evals.length };
    for (const record of read.records) this.consume(record);
    if (changes.reset) return;
    if (this.train.step.length > before.train) changes.train = sliceColumns(this.train, before.train);
    if (this.evals.length > before.evals) changes.evals = this.evals.slice(before.evals);
  }

  private consume(r: MetricsLine): void {
    const step = r.step;
    if (r.kind === 'train') {
      const t = this.train;
      // a step logged twice (never by the worker, but a hand-edited file) keeps the later value
      if (t.step.length && step <= t.step[t.step.length - 1]!) {
        if (step < t.step[t.step.length - 1]!) return;
        for (const key of ['step', 'epoch', 'loss', 'learningRate', 'examplesPerSecond', 'elapsedMs'] as const)
          t[key].pop();
      }
      t.step.push(step);
      t.epoch.push(r.epoch);
      t.loss.push(r.loss);
      t.learningRate.push(r.learningRate);
      t.examplesPerSecond.push(r.examplesPerSecond);
      t.elapsedMs.push(r.elapsedMs);
    } else {
      this.evals.push({ step, split: r.split, metrics: { ...r.metrics }, isBest: r.isBest === true });
    }
  }

  private readPlacement(changes: RunChanges): void {
    const raw = this.readJson('placement.json');
    if (raw === undefined) return;
    try {
      this.placementValue = checkPlacement(raw);
      changes.placement = this.placementValue;
    } catch (err) {
      this.problem(`placement.json: ${(err as Error).message}`);
    }
  }

  private readCheckpoints(changes: RunChanges): void {
    const root = path.join(this.dir, 'checkpoints');
    let names: string[];
    try {
      names = fs.readdirSync(root);
    } catch {
      return;
    }
    const steps = names
      .map((n) => /^step-(\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .filter((s) => fs.existsSync(path.join(root, `step-${s}`, 'checkpoint.json')))
      .sort((a, b) => a - b);
    if (steps.length === this.checkpointSteps.length && steps.every((s, i) => s === this.checkpointSteps[i])) return;
    this.checkpointSteps = steps;
    changes.checkpoints = steps;
    const latest = steps.at(-1);
    if (latest === undefined || latest === this.routingValue?.step) return;
    const info = this.readJson(path.join('checkpoints', `step-${latest}`, 'checkpoint.json')) as
      { trainer?: { routing?: unknown } } | undefined;
    const routing = info?.trainer?.routing;
    if (!routing || typeof routing !== 'object' || Object.keys(routing).length === 0) return;
    const sites: Record<string, { down: number[]; up: number[] }> = {};
    for (const [key, value] of Object.entries(routing as Record<string, { down?: unknown; up?: unknown }>)) {
      if (Array.isArray(value?.down) && Array.isArray(value?.up))
        sites[key] = { down: value.down.map(Number), up: value.up.map(Number) };
    }
    this.routingValue = { step: latest, sites };
    changes.routing = this.routingValue;
  }

  private readJson(relative: string): unknown {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.dir, relative), 'utf8');
    } catch {
      return undefined;
    }
    try {
      return JSON.parse(text);
    } catch (err) {
      this.problem(`${relative}: ${(err as Error).message}`);
      return undefined;
    }
  }

  private problem(text: string): void {
    if (this.problemList.length < MAX_PROBLEMS && !this.problemList.includes(text)) this.problemList.push(text);
  }
}

function emptyColumns(): MutableColumns {
  return { step: [], epoch: [], loss: [], learningRate: [], examplesPerSecond: [], elapsedMs: [] };
}

function sliceColumns(c: MutableColumns, from: number): TrainColumns {
  return {
    step: c.step.slice(from),
    epoch: c.epoch.slice(from),
    loss: c.loss.slice(from),
    learningRate: c.learningRate.slice(from),
    examplesPerSecond: c.examplesPerSecond.slice(from),
    elapsedMs: c.elapsedMs.slice(from),
  };
}

function finiteRecord(o: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return out;
}
