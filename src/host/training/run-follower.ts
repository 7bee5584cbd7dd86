/**
 * Follows a run through its folder instead of IPC: after a window reload the worker keeps
 * training, and a new extension host learns its progress from metrics.jsonl (read from where it
 * left off, never again from the start) and its end from status.json or the process's death.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WorkerCrashedError } from '../../core/errors';
import type { RunStatus } from '../../core/checkpoint/run-folder';
import { MetricsTail, readRunStatus, runLiveness } from '../../core/checkpoint/run-reader';
import type { MetricsLine } from '../../protocol/metrics';
import type { FinishedMessage, WorkerMessage } from '../../protocol/worker';

const POLL_MS = 1000;

export interface LiveRun {
  configFile: string;
  runDir: string;
  pid: number;
  status: RunStatus;
}

export type FollowedOutcome =
  { kind: 'finished'; message: FinishedMessage } | { kind: 'failed'; error: Error; runDir: string };

/**
 * Runs in these folders whose status says running and that still run on this machine (the one
 * liveness rule of run-reader.ts, which the Runs view uses too); a run held by another machine is
 * not ours to follow or stop.
 */
export function findLiveRuns(runDirs: string[]): LiveRun[] {
  const live: LiveRun[] = [];
  for (const runDir of runDirs) {
    const status = readRunStatus(runDir);
    if (status?.state !== 'running') continue;
    // a Slurm job's run: Slurm says whether it lives, and slurm-runs.ts follows it
    if (fs.existsSync(path.join(runDir, 'slurm.json'))) continue;
    const activity = runLiveness(runDir, status);
    if (activity.live && !activity.elsewhere)
      live.push({ configFile: status.configFile, runDir, pid: status.pid, status });
  }
  return live;
}

export class RunFollower {
  private readonly metrics: MetricsTail;
  private timer?: NodeJS.Timeout;
  private ended = false;

  constructor(
    readonly run: LiveRun,
    private readonly onMessage: (message: WorkerMessage) => void,
    private readonly onEnd: (outcome: FollowedOutcome) => void,
    /** Only tail the metrics: someone else (the Slurm monitor) decides when the run has ended. */
    private readonly options: { metricsOnly?: boolean } = {},
  ) {
    this.metrics = new MetricsTail(run.runDir);
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.poll();
  }

  /** Asks the process to stop at its next step boundary (worker and CLI both treat SIGTERM so). */
  stop(): void {
    signal(this.run.pid, 'SIGTERM');
  }

  kill(): void {
    signal(this.run.pid, 'SIGKILL');
  }

  private poll(): void {
    if (this.ended) return;
    this.readNewMetrics();
    if (this.options.metricsOnly) return;
    const status = readRunStatus(this.run.runDir);
    if (status && status.state !== 'running') this.end(outcomeOf(this.run.runDir, status));
    else if (!runLiveness(this.run.runDir, this.run).live)
      this.end({
        kind: 'failed',
        runDir: this.run.runDir,
        error: new WorkerCrashedError(null, null, lastLogLines(this.run.runDir)),
      });
  }

  /** Sends the lines appended since the last read (all of them again after a resume rewrote the file). */
  private readNewMetrics(): void {
    const read = this.metrics.read();
    if (!read.records.length) return;
    const totalSteps = readRunStatus(this.run.runDir)?.totalSteps ?? this.run.status.totalSteps;
    for (const record of read.records) this.onMessage(messageOf(record, totalSteps));
  }

  private end(outcome: FollowedOutcome): void {
    if (this.ended) return;
    this.readNewMetrics();
    this.ended = true;
    clearInterval(this.timer);
    this.onEnd(outcome);
  }

  /** Reads what is left of the metrics, then stops (metricsOnly followers end so). */
  finish(): void {
    if (!this.ended) this.readNewMetrics();
    this.dispose();
  }

  dispose(): void {
    this.ended = true;
    clearInterval(this.timer);
  }
}

/** A metrics.jsonl line as the message the worker sent for it. */
function messageOf(line: MetricsLine, totalSteps: number): WorkerMessage {
  if (line.kind === 'train') {
    return {
      type: 'progress',
      step: line.step,
      totalSteps,
      epoch: line.epoch,
      loss: line.loss ?? NaN,
      learningRate: line.learningRate ?? NaN,
      examplesPerSecond: line.examplesPerSecond ?? NaN,
      elapsedMs: line.elapsedMs ?? NaN,
    };
  }
  return {
    type: 'metrics',
    step: line.step,
    split: line.split,
    metrics: line.metrics as Record<string, number>,
    isBest: line.isBest === true,
  };
}

function outcomeOf(runDir: string, status: RunStatus): FollowedOutcome {
  if (status.state === 'failed')
    return {
      kind: 'failed',
      runDir,
      error: Object.assign(new Error(status.error?.message ?? 'training failed'), {
        name: status.error?.name ?? 'Error',
      }),
    };
  const durationMs = status.ended ? Date.parse(status.ended) - Date.parse(status.started) : 0;
  return {
    kind: 'finished',
    message: {
      type: 'finished',
      runDir,
      state: status.state === 'stopped' ? 'stopped' : 'finished',
      reason: status.reason as FinishedMessage['reason'],
      bestCheckpoint: status.bestCheckpoint,
      bestMetrics: status.bestMetrics,
      durationMs,
    },
  };
}

function lastLogLines(runDir: string): string[] {
  try {
    return fs.readFileSync(path.join(runDir, 'worker.log'), 'utf8').trimEnd().split('\n').slice(-10);
  } catch {
    return ['(no worker.log in the run folder)'];
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}
