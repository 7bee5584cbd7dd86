/**
 * The webview's copy of its runs, changed only by validated host messages. Train columns are
 * appended in place (their arrays keep their identity, so smoothing continues incrementally);
 * a reset replaces them.
 */
import type {
  AppendMessage,
  DashboardGroup,
  DashboardMode,
  DashboardStatus,
  EvalPoint,
  JsonValue,
  RoutingCounts,
  RunSnapshot,
  RunUpdateMessage,
  SnapshotMessage,
  DashboardPlacement as Placement,
} from '../../src/protocol/dashboard';

export interface TrainData {
  step: number[];
  epoch: number[];
  loss: (number | null)[];
  learningRate: (number | null)[];
  examplesPerSecond: (number | null)[];
  elapsedMs: (number | null)[];
}

export interface RunModel {
  readonly dir: string;
  readonly name: string;
  configFile?: string;
  config?: { readonly [key: string]: JsonValue };
  status: DashboardStatus;
  placement?: Placement;
  routing?: RoutingCounts;
  train: TrainData;
  evals: EvalPoint[];
  checkpoints: readonly number[];
  problems: readonly string[];
  /** Bumped on every change, for views that redraw only what changed. */
  version: number;
}

const TRAIN_KEYS = ['step', 'epoch', 'loss', 'learningRate', 'examplesPerSecond', 'elapsedMs'] as const;

export class RunStore {
  mode: DashboardMode = 'run';
  /** Mode `groups`: the groups whose means and bands the charts draw. */
  groups: readonly DashboardGroup[] = [];
  runs: RunModel[] = [];

  get(dir: string): RunModel | undefined {
    return this.runs.find((r) => r.dir === dir);
  }

  applySnapshot(message: SnapshotMessage): void {
    this.mode = message.mode;
    this.runs = message.runs.map(fromSnapshot);
    this.groups = message.groups ?? [];
  }

  /** Appends new metric lines; false when the run is not shown here. */
  applyAppend(message: AppendMessage): boolean {
    const run = this.get(message.dir);
    if (!run) return false;
    const t = run.train;
    const incoming = message.train;
    for (let i = 0; i < incoming.step.length; i++) {
      const step = incoming.step[i]!;
      const last = t.step[t.step.length - 1];
      if (last !== undefined && step <= last) {
        if (step < last) continue; // already have it (a snapshot raced the append)
        for (const key of TRAIN_KEYS) t[key].pop();
      }
      t.step.push(step);
      t.epoch.push(incoming.epoch[i] ?? 0);
      t.loss.push(incoming.loss[i] ?? null);
      t.learningRate.push(incoming.learningRate[i] ?? null);
      t.examplesPerSecond.push(incoming.examplesPerSecond[i] ?? null);
      t.elapsedMs.push(incoming.elapsedMs[i] ?? null);
    }
    for (const e of message.evals) {
      if (!run.evals.some((x) => x.step === e.step && x.split === e.split)) run.evals.push(e);
    }
    run.evals.sort((a, b) => a.step - b.step);
    run.version++;
    return true;
  }

  applyUpdate(message: RunUpdateMessage): boolean {
    const run = this.get(message.dir);
    if (!run) return false;
    if (message.status) run.status = message.status;
    if (message.placement) run.placement = message.placement;
    if (message.routing) run.routing = message.routing;
    if (message.checkpoints) run.checkpoints = message.checkpoints;
    if (message.config) run.config = message.config;
    if (message.configFile) run.configFile = message.configFile;
    run.version++;
    return true;
  }

  applyReset(snapshot: RunSnapshot): boolean {
    const i = this.runs.findIndex((r) => r.dir === snapshot.dir);
    if (i < 0) return false;
    this.runs[i] = { ...fromSnapshot(snapshot), version: this.runs[i]!.version + 1 };
    return true;
  }
}

function fromSnapshot(s: RunSnapshot): RunModel {
  return {
    dir: s.dir,
    name: s.name,
    configFile: s.configFile,
    config: s.config,
    status: s.status,
    placement: s.placement,
    routing: s.routing,
    // copies: appends grow these arrays in place
    train: {
      step: [...s.train.step],
      epoch: [...s.train.epoch],
      loss: [...s.train.loss],
      learningRate: [...s.train.learningRate],
      examplesPerSecond: [...s.train.examplesPerSecond],
      elapsedMs: [...s.train.elapsedMs],
    },
    evals: [...s.evals].sort((a, b) => a.step - b.step),
    checkpoints: s.checkpoints,
    problems: s.problems,
    version: 0,
  };
}

/** The metric the run selects its best checkpoint by (config task.metric), else the first one logged. */
export function primaryMetric(run: RunModel): string | undefined {
  const task = run.config?.task;
  const configured =
    task && typeof task === 'object' && !Array.isArray(task) ? (task as { metric?: JsonValue }).metric : undefined;
  if (typeof configured === 'string') return configured;
  return validationMetricNames(run)[0];
}

/** Metric names of the run's validation evaluations, loss excluded, in first-seen order. */
export function validationMetricNames(run: RunModel): string[] {
  const names: string[] = [];
  for (const e of run.evals) {
    if (e.split !== 'validation') continue;
    for (const k of Object.keys(e.metrics)) if (k !== 'loss' && !names.includes(k)) names.push(k);
  }
  return names;
}

/**
 * Labels for runs shown together: folder names without their "-YYYYMMDD-HHMMSS" stamp when that
 * keeps them apart, else the full names.
 */
export function runLabels(runs: readonly RunModel[]): string[] {
  const short = runs.map((r) => r.name.replace(/-\d{8}-\d{6}(-\d+)?$/, ''));
  return new Set(short).size === short.length ? short : runs.map((r) => r.name);
}
