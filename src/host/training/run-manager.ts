/**
 * Starts training workers (child processes of the extension host; the host itself never trains),
 * follows their messages, stops them, and turns crashes into readable errors.
 *
 * A second Train of a config that is already training is refused; Train beyond
 * `peftLab.maxConcurrentRuns` is queued and starts when a run ends. Each point of a sweep is a run
 * of its own (its id is the config's path plus `#<point name>`), queued the same way. The queue can
 * be paused (running runs go on, none starts), resumed and cleared (see core/run-queue.ts).
 */
import * as vscode from 'vscode';
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { CancelledError, WorkerCrashedError } from '../../core/errors';
import * as fs from 'node:fs';
import { RunQueue } from '../../core/run-queue';
import type { SweepPoint } from '../../core/config/sweep';
import type { ResolvedConfig, SweepPointInfo } from '../../core/config/types';
import {
  isWorkerMessage,
  type EvaluateRequest,
  type EvaluatedMessage,
  type FinishedMessage,
  type ProgressMessage,
  type Split,
  type StartedMessage,
  type TrainRequest,
  type WorkerMessage,
} from '../../protocol/worker';
import { runDirOfCheckpoint } from '../../core/checkpoint/run-folder';
import { readSettings } from '../util/settings';
import { Disposable, toDisposable } from '../util/dispose';
import { RunFollower, type LiveRun } from './run-follower';
import { readRunStatus } from '../../core/checkpoint/run-reader';

const LAST_LINES = 20;

export type RunPhase = 'queued' | 'starting' | 'training' | 'stopping';

export interface RunView {
  /** Identifies the run here: the config's absolute path, plus `#<point name>` for a sweep point. */
  id: string;
  configFile: string;
  phase: RunPhase;
  started?: StartedMessage;
  progress?: ProgressMessage;
  /** Set for a run of one sweep point: its run name and its sweep. */
  point?: { name: string; sweep: SweepPointInfo };
  /** Set for a run a Slurm job trains: Slurm's view of it. */
  slurm?: SlurmView;
}

/** A Slurm job (or array task) as the Queue view shows it. */
export interface SlurmView {
  jobId: string;
  taskId?: number;
  /** Slurm's state, e.g. PENDING, RUNNING, REQUEUED. */
  state: string;
  /** Why it is pending (Priority, Resources, JobArrayTaskLimit, ...). */
  reason?: string;
  node?: string;
  /** The task's Slurm log. */
  log: string;
  /** Once the task has ended: how, in Slurm's words (completed, cancelled, failed, timeout, ...). */
  ended?: string;
}

/** How to stop a run that trains elsewhere (a Slurm job): gracefully, then for good. */
export interface RemoteControl {
  stop(): void;
  kill(): void;
}

/** The handle an executor drives a remote run through. */
export interface RemoteRun {
  readonly id: string;
  update(change: { phase?: RunPhase; slurm?: SlurmView; started?: StartedMessage }): void;
  message(message: WorkerMessage): void;
  end(outcome: RunOutcome): void;
  readonly done: Promise<RunOutcome>;
}

/** A worker message, with the run it came from (`point` set for a sweep point's run). */
export interface RunMessage {
  configFile: string;
  runId: string;
  point?: string;
  message: WorkerMessage;
}

export type RunOutcome =
  { kind: 'finished'; message: FinishedMessage } | { kind: 'failed'; error: Error; runDir?: string };

interface ActiveRun extends RunView {
  /** A run folder to continue from its last checkpoint (TrainRequest.resume). */
  resume?: string;
  /** TrainRequest.allowConfigChange: the user agreed to continue with the changed config. */
  allowConfigChange?: boolean;
  /** A sweep point's resolved config, handed to the worker instead of the config file. */
  config?: ResolvedConfig;
  child?: ChildProcess;
  /** Set for a run this host did not start (it survived a window reload): followed through its folder. */
  follower?: RunFollower;
  /** Set for a run a Slurm job trains: how to stop it. */
  remote?: RemoteControl;
  lastLines: string[];
  outcome?: RunOutcome;
  killTimer?: NodeJS.Timeout;
  done: Promise<RunOutcome>;
  resolve: (outcome: RunOutcome) => void;
}

export class RunManager extends Disposable {
  private readonly runs = new Map<string, ActiveRun>();
  /** Ids of the runs waiting for a free slot. */
  private readonly queue = new RunQueue<string>();
  private readonly evaluations = new Set<ChildProcess>();
  private readonly changed = this._register(new vscode.EventEmitter<RunView>());
  private readonly messages = this._register(new vscode.EventEmitter<RunMessage>());
  private readonly queueChanged = this._register(new vscode.EventEmitter<void>());
  readonly onDidChange = this.changed.event;
  /** Every message of every worker, for the status bar, progress notifications and views. */
  readonly onDidReceiveMessage = this.messages.event;
  /** The queue was paused, resumed or cleared, or a run joined or left it. */
  readonly onDidChangeQueue = this.queueChanged.event;

  constructor(
    private readonly workerScript: string,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this._register(toDisposable(() => this.letGo()));
  }

  get(configFile: string): RunView | undefined {
    return this.runs.get(key(configFile));
  }

  active(): RunView[] {
    return [...this.runs.values()];
  }

  /**
   * Starts (or queues) a run of a config, or with `point` of one sweep point; resolves when it ends.
   * Throws at once when that config (or point) is already training or queued.
   */
  train(
    configFile: string,
    options: { resume?: string; allowConfigChange?: boolean; point?: SweepPoint } = {},
  ): Promise<RunOutcome> {
    const point = options.point;
    const k = key(configFile, point?.name);
    const existing = this.runs.get(k);
    if (existing)
      throw new Error(
        `${point?.name ?? path.basename(configFile)} is already ${existing.phase === 'queued' ? 'queued' : 'training'}; stop it before starting it again`,
      );
    const run = this.createRun(configFile, point && { name: point.name, sweep: point.config.sweepPoint! });
    run.resume = options.resume;
    run.allowConfigChange = options.allowConfigChange;
    run.config = point?.config;
    this.runs.set(k, run);
    if (this.queue.canStartNow(this.runningCount(), readSettings().maxConcurrentRuns)) {
      this.spawn(run);
    } else {
      this.queue.enqueue(k);
      const why = this.queue.isPaused
        ? 'the queue is paused'
        : `${this.runningCount()} run(s) already training (peftLab.maxConcurrentRuns)`;
      this.log.info(`queued ${point?.name ?? configFile}: ${why}`);
      this.changed.fire(run);
      this.queueChanged.fire();
    }
    return run.done;
  }

  /** Runs waiting for a free slot, next first. */
  queued(): RunView[] {
    return this.queue.items().flatMap((id) => this.runs.get(id) ?? []);
  }

  get queuePaused(): boolean {
    return this.queue.isPaused;
  }

  /** No queued run starts until `resumeQueue`; running runs go on. */
  pauseQueue(): void {
    if (!this.queue.pause()) return;
    this.log.info('queue paused: runs that are training go on, queued runs wait');
    this.queueChanged.fire();
  }

  resumeQueue(): void {
    if (!this.queue.resume()) return;
    this.log.info('queue resumed');
    this.queueChanged.fire();
    this.startQueued();
  }

  /** Drops every queued run (each ends as cancelled); returns how many there were. */
  clearQueue(): number {
    const dropped = this.queue.clear().flatMap((id) => this.runs.get(id) ?? []);
    if (dropped.length) this.log.info(`queue cleared: ${dropped.length} run(s) removed before they started`);
    for (const run of dropped) this.settle(run, { kind: 'failed', error: removedFromQueue() });
    this.queueChanged.fire();
    return dropped.length;
  }

  /**
   * Continues a stopped or failed run from its last checkpoint, in its own folder (queued like
   * Train). Throws at once when the folder does not say which config it came from, or that config
   * is already training.
   */
  resume(runDir: string, fromCheckpoint?: string, options: { allowConfigChange?: boolean } = {}): Promise<RunOutcome> {
    const status = readRunStatus(runDir);
    let configFile = status?.configFile;
    if (!configFile) {
      try {
        configFile = (JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')) as { sourceFile?: string })
          .sourceFile;
      } catch {
        // reported below
      }
    }
    if (!configFile)
      throw new Error(
        `${path.basename(runDir)} does not say which config it came from (no status.json or config.json)`,
      );
    // a sweep point's run stays that point's run, so Train of its config is not blocked meanwhile
    const point = sweepPointOfRun(runDir);
    if (status?.state === 'running' && this.runs.has(key(configFile, point?.name)))
      throw new Error(`${path.basename(runDir)} is still training`);
    // a checkpoint folder rewinds the run to it; the run folder continues from its last checkpoint
    return this.train(configFile, {
      resume: fromCheckpoint ?? runDir,
      point,
      allowConfigChange: options.allowConfigChange,
    });
  }

  /**
   * Scores a checkpoint on a split in a worker process of its own (not queued: it is short and
   * writes only eval-<split>.json beside the checkpoint). Resolves with the worker's result; rejects
   * with its error, or a WorkerCrashedError. Aborting the signal cancels it.
   */
  evaluate(checkpointDir: string, split: Split, options: { signal?: AbortSignal } = {}): Promise<EvaluatedMessage> {
    const settings = readSettings(vscode.Uri.file(checkpointDir));
    const child = fork(this.workerScript, [], {
      cwd: runDirOfCheckpoint(checkpointDir),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execPath: settings.nodePath || process.execPath,
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    });
    this.evaluations.add(child);
    const label = `evaluate ${path.basename(path.dirname(path.dirname(checkpointDir)))}/${path.basename(checkpointDir)} on ${split}`;
    this.log.info(`started worker ${child.pid}: ${label}`);
    const lastLines: string[] = [];
    const onOutput = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        this.log.info(`[${label}] ${line}`);
        lastLines.push(line);
        if (lastLines.length > LAST_LINES) lastLines.shift();
      }
    };
    child.stdout?.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    return new Promise<EvaluatedMessage>((resolve, reject) => {
      let result: EvaluatedMessage | undefined;
      let failure: Error | undefined;
      const onAbort = () => {
        if (child.connected) child.send({ type: 'cancel' });
        else child.kill();
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      child.on('message', (message) => {
        if (!isWorkerMessage(message)) return;
        if (message.type === 'evaluated') result = message;
        else if (message.type === 'failed')
          failure = Object.assign(new Error(message.error.message), { name: message.error.name });
        else if (message.type === 'log') this.log.info(`[${label}] ${message.message}`);
      });
      child.on('error', (err) => (failure ??= err));
      child.on('exit', (code, signal) => {
        this.evaluations.delete(child);
        options.signal?.removeEventListener('abort', onAbort);
        this.log.info(`worker for ${label} exited (${signal ?? `code ${code}`})`);
        if (result) resolve(result);
        else reject(failure ?? new WorkerCrashedError(code, signal, lastLines.slice(-10)));
      });
      const request: EvaluateRequest = {
        type: 'evaluate',
        checkpointDir,
        split,
        backend: settings.backend === 'auto' ? undefined : settings.backend,
      };
      child.send(request);
    });
  }

  /** Asks a config's run to stop at its next step boundary (it writes a checkpoint), then kills it after the timeout. */
  stop(configFile: string): void {
    this.stopRun(key(configFile));
  }

  /** `stop` for any run, a sweep point's too, by its id (RunView.id); a queued run just leaves the queue. */
  stopRun(id: string): void {
    const run = this.runs.get(id);
    if (!run) return;
    const configFile = run.point?.name ?? run.configFile;
    if (run.phase === 'queued') {
      this.queue.remove(id);
      this.settle(run, { kind: 'failed', error: removedFromQueue() });
      this.queueChanged.fire();
      return;
    }
    if (run.phase === 'stopping' || !(run.child || run.follower || run.remote)) return;
    run.phase = 'stopping';
    this.changed.fire(run);
    this.queueChanged.fire();
    if (run.child?.connected) run.child.send({ type: 'cancel' });
    else if (run.remote) run.remote.stop();
    else run.follower?.stop();
    const seconds = readSettings().stopTimeoutSeconds;
    run.killTimer = setTimeout(() => {
      this.log.warn(
        `${configFile}: no checkpoint boundary within ${seconds}s; killing the ${run.remote ? 'job' : 'worker'}`,
      );
      if (run.child) run.child.kill('SIGKILL');
      else if (run.remote) run.remote.kill();
      else run.follower?.kill();
    }, seconds * 1000);
  }

  /** Follows a run that is training without this host (started before a window reload, or from the CLI). */
  reattach(live: LiveRun): void {
    const point = pointOfRun(live.runDir);
    const k = key(live.configFile, point?.name);
    if (this.runs.has(k)) return;
    const run = this.createRun(live.configFile, point);
    run.phase = 'training';
    this.runs.set(k, run);
    this.log.info(`following run ${live.runDir} (process ${live.pid}) of ${live.configFile}`);
    run.follower = new RunFollower(
      live,
      (message) => this.onMessage(run, message),
      (outcome) => {
        clearTimeout(run.killTimer);
        this.settle(run, outcome);
      },
    );
    this.changed.fire(run);
  }

  /**
   * Shows a run that trains elsewhere (a Slurm job) like a local one: in the views, with its
   * messages and its outcome, and Stop going to `control`. It takes no local slot and is not queued here.
   */
  trackRemote(configFile: string, point: SweepPoint | undefined, control: RemoteControl, slurm: SlurmView): RemoteRun {
    const k = key(configFile, point?.name);
    if (this.runs.has(k))
      throw new Error(
        `${point?.name ?? path.basename(configFile)} is already training; stop it before starting it again`,
      );
    const run = this.createRun(configFile, point && { name: point.name, sweep: point.config.sweepPoint! });
    run.remote = control;
    run.slurm = slurm;
    run.phase = 'starting';
    this.runs.set(k, run);
    this.changed.fire(run);
    this.queueChanged.fire();
    return {
      id: k,
      done: run.done,
      update: (change) => {
        if (this.runs.get(k) !== run) return;
        if (change.slurm) run.slurm = change.slurm;
        if (change.started) run.started = change.started;
        if (change.phase && run.phase !== 'stopping') run.phase = change.phase;
        this.changed.fire(run);
        this.queueChanged.fire();
      },
      message: (message) => this.onMessage(run, message),
      end: (outcome) => {
        clearTimeout(run.killTimer);
        this.settle(run, outcome);
        this.queueChanged.fire();
      },
    };
  }

  /** Resolves when a run (started here or followed) ends; undefined when the config has no run. */
  whenDone(configFile: string): Promise<RunOutcome> | undefined {
    return this.runs.get(key(configFile))?.done;
  }

  private createRun(configFile: string, point?: RunView['point']): ActiveRun {
    let resolve!: (outcome: RunOutcome) => void;
    const done = new Promise<RunOutcome>((r) => (resolve = r));
    return { id: key(configFile, point?.name), configFile, point, phase: 'queued', lastLines: [], done, resolve };
  }

  /** Runs with a live worker here (starting, training or stopping); Slurm jobs take no local slot. */
  private runningCount(): number {
    return [...this.runs.values()].filter((r) => r.phase !== 'queued' && !r.remote).length;
  }

  private spawn(run: ActiveRun): void {
    const settings = readSettings(vscode.Uri.file(run.configFile));
    run.phase = 'starting';
    const child = fork(this.workerScript, [], {
      cwd: path.dirname(run.configFile),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // its own process group: a window reload must not take the run down with the extension host
      detached: true,
      execPath: settings.nodePath || process.execPath,
      // In desktop VS Code, process.execPath is Electron: this makes it behave as plain Node
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    });
    run.child = child;
    this.log.info(
      `started worker ${child.pid} for ${run.configFile}${run.point ? ` (sweep point ${run.point.name})` : ''}`,
    );
    const request: TrainRequest = {
      type: 'train',
      configFile: run.configFile,
      // 'auto' (the default) leaves the choice to the config's training.backend
      backend: settings.backend === 'auto' ? undefined : settings.backend,
      runsDir: settings.runsDirectory ? this.resolveRunsDir(settings.runsDirectory, run.configFile) : undefined,
      detach: true,
      resume: run.resume,
      ...(run.allowConfigChange && { allowConfigChange: true }),
      config: run.config,
    };
    child.send(request);
    child.stdout?.on('data', (chunk: Buffer) => this.onOutput(run, chunk));
    child.stderr?.on('data', (chunk: Buffer) => this.onOutput(run, chunk));
    child.on('message', (message) => this.onMessage(run, message));
    child.on('exit', (code, signal) => this.onExit(run, code, signal));
    child.on('error', (err) => this.settle(run, { kind: 'failed', error: err }));
    this.changed.fire(run);
  }

  private resolveRunsDir(setting: string, configFile: string): string {
    if (path.isAbsolute(setting)) return setting;
    const folder =
      vscode.workspace.getWorkspaceFolder(vscode.Uri.file(configFile))?.uri.fsPath ?? path.dirname(configFile);
    return path.join(folder, setting);
  }

  private onOutput(run: ActiveRun, chunk: Buffer): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      this.log.info(`[${run.point?.name ?? path.basename(run.configFile)}] ${line}`);
      run.lastLines.push(line);
      if (run.lastLines.length > LAST_LINES) run.lastLines.shift();
    }
  }

  private onMessage(run: ActiveRun, message: unknown): void {
    if (!isWorkerMessage(message)) {
      this.log.warn(`ignoring a malformed message from the worker: ${JSON.stringify(message).slice(0, 200)}`);
      return;
    }
    if (message.type === 'started') {
      run.started = message;
      if (run.phase === 'starting') run.phase = 'training';
    } else if (message.type === 'progress') {
      run.progress = message;
    } else if (message.type === 'finished') {
      run.outcome = { kind: 'finished', message };
    } else if (message.type === 'failed') {
      run.outcome = {
        kind: 'failed',
        error: Object.assign(new Error(message.error.message), { name: message.error.name }),
        runDir: message.runDir,
      };
    }
    this.messages.fire({ configFile: run.configFile, runId: run.id, point: run.point?.name, message });
    this.changed.fire(run);
  }

  private onExit(run: ActiveRun, code: number | null, signal: NodeJS.Signals | null): void {
    clearTimeout(run.killTimer);
    this.log.info(`worker for ${run.configFile} exited (${signal ?? `code ${code}`})`);
    const outcome = run.outcome ?? {
      kind: 'failed' as const,
      error: new WorkerCrashedError(code, signal, run.lastLines.slice(-10)),
      runDir: run.started?.runDir,
    };
    this.settle(run, outcome);
  }

  private settle(run: ActiveRun, outcome: RunOutcome): void {
    if (this.runs.get(run.id) !== run) return;
    this.runs.delete(run.id);
    run.follower?.dispose();
    run.resolve(outcome);
    this.changed.fire({ ...run, phase: 'stopping' });
    this.startQueued();
  }

  private startQueued(): void {
    const startable = this.queue.takeStartable(this.runningCount(), readSettings().maxConcurrentRuns);
    for (const id of startable) {
      const next = this.runs.get(id);
      if (next) this.spawn(next);
    }
    if (startable.length) this.queueChanged.fire();
  }

  /** What closing the window does to the processes: evaluations stop, training runs go on. */
  private letGo(): void {
    // an evaluation writes one small file; nothing is lost by stopping it with the window
    for (const child of this.evaluations) child.kill();
    // Runs keep going without this host (they were started with detach); the next window follows them
    for (const run of this.runs.values()) {
      run.follower?.dispose();
      if (run.child?.connected) run.child.disconnect();
    }
  }
}

/** A run's id: the config's path, and a sweep point's name after `#` (points of one config run side by side). */
function key(configFile: string, pointName?: string): string {
  return pointName ? `${path.resolve(configFile)}#${pointName}` : path.resolve(configFile);
}

/** Not a failure: the user took the run off the queue (Stop, or Clear queue) before it started. */
function removedFromQueue(): CancelledError {
  const error = new CancelledError();
  error.message = 'removed from the queue before it started';
  return error;
}

/** The sweep point a run folder trains, from its config.json; undefined for a plain run. */
function sweepPointOfRun(runDir: string): SweepPoint | undefined {
  try {
    const config = JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')) as ResolvedConfig;
    const info = config.sweepPoint;
    return info && config.name ? { index: info.index, name: config.name, values: info.values, config } : undefined;
  } catch {
    return undefined;
  }
}

function pointOfRun(runDir: string): RunView['point'] {
  const point = sweepPointOfRun(runDir);
  return point && { name: point.name, sweep: point.config.sweepPoint! };
}
