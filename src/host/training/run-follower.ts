/**
 * Follows a run through its folder instead of IPC: after a window reload the worker keeps
 * training, and a new extension host learns its progress from metrics.jsonl (read from where it
 * left off, never again from the start) and its end from status.json or the process's death.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WorkerCrashedError } from '../../core/errors';
import type { RunStatus } from '../../core/checkpoint/run-folder';
import { runActivity } from '../../core/checkpoint/run-lock';
import type { FinishedMessage, WorkerMessage } from '../../protocol/worker';

const POLL_MS = 1000;

export interface LiveRun {
  configFile: string;
  runDir: string;
  pid: number;
  status: RunStatus;
}

export type FollowedOutcome = { kind: 'finished'; message: FinishedMessage } | { kind: 'failed'; error: Error; runDir: string };

/**
 * Runs in these folders whose status says running and whose process is alive on this machine (the
 * one liveness rule of run-lock.ts); a run held by another machine is not ours to follow or stop.
 */
export function findLiveRuns(runDirs: string[]): LiveRun[] {
  const live: LiveRun[] = [];
  for (const runDir of runDirs) {
    const status = readStatus(runDir);
    if (status?.state !== 'running') continue;
    // a Slurm job's run: Slurm says whether it lives, and slurm-runs.ts follows it
    if (fs.existsSync(path.join(runDir, 'slurm.json'))) continue;
    const activity = runActivity(runDir, status.pid, { isAlive: ownProcessAlive });
    if (activity.live && !activity.elsewhere) live.push({ configFile: status.configFile, runDir, pid: status.pid, status });
  }
  return live;
}

/** Alive and ours to signal: a pid of another user (EPERM) is not one of our runs. */
function ownProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class RunFollower {
  private offset = 0;
  private partial = '';
  private timer?: NodeJS.Timeout;
  private ended = false;

  constructor(
    readonly run: LiveRun,
    private readonly onMessage: (message: WorkerMessage) => void,
    private readonly onEnd: (outcome: FollowedOutcome) => void,
    /** Only tail the metrics: someone else (the Slurm monitor) decides when the run has ended. */
    private readonly options: { metricsOnly?: boolean } = {},
  ) {
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
    const status = readStatus(this.run.runDir);
    if (status && status.state !== 'running') this.end(outcomeOf(this.run.runDir, status));
    else if (!runActivity(this.run.runDir, this.run.pid, { isAlive: ownProcessAlive }).live) this.end({ kind: 'failed', runDir: this.run.runDir, error: new WorkerCrashedError(null, null, lastLogLines(this.run.runDir)) });
  }

  private readNewMetrics(): void {
    const file = path.join(this.run.runDir, 'metrics.jsonl');
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return;
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < this.offset) this.offset = 0; // rewritten (a resume drops lines after its checkpoint)
      if (size === this.offset) return;
      const buffer = Buffer.alloc(size - this.offset);
      fs.readSync(fd, buffer, 0, buffer.length, this.offset);
      this.offset = size;
      this.consume(buffer.toString('utf8'));
    } finally {
      fs.closeSync(fd);
    }
  }

  private consume(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    const totalSteps = readStatus(this.run.runDir)?.totalSteps ?? this.run.status.totalSteps;
    for (const line of lines) {
      const message = messageOf(line, totalSteps);
      if (message) this.onMessage(message);
    }
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
function messageOf(line: string, totalSteps: number): WorkerMessage | undefined {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line);
  } catch {
    return undefined;
  }
  const step = Number(record.step);
  if (record.kind === 'train') {
    return {
      type: 'progress', step, totalSteps, epoch: Number(record.epoch), loss: Number(record.loss),
      learningRate: Number(record.learningRate), examplesPerSecond: Number(record.examplesPerSecond), elapsedMs: Number(record.elapsedMs),
    };
  }
  if (record.kind === 'eval') {
    const { kind: _kind, split, step: _step, epoch: _epoch, isBest, ...metrics } = record;
    return { type: 'metrics', step, split: split === 'test' ? 'test' : 'validation', metrics: metrics as Record<string, number>, isBest: isBest === true };
  }
  return undefined;
}

function outcomeOf(runDir: string, status: RunStatus): FollowedOutcome {
  if (status.state === 'failed') return { kind: 'failed', runDir, error: Object.assign(new Error(status.error?.message ?? 'training failed'), { name: status.error?.name ?? 'Error' }) };
  const durationMs = status.ended ? Date.parse(status.ended) - Date.parse(status.started) : 0;
  return {
    kind: 'finished',
    message: {
      type: 'finished', runDir, state: status.state === 'stopped' ? 'stopped' : 'finished',
      reason: status.reason as FinishedMessage['reason'], bestCheckpoint: status.bestCheckpoint, bestMetrics: status.bestMetrics, durationMs,
    },
  };
}

export function readStatus(runDir: string): RunStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(runDir, 'status.json'), 'utf8')) as RunStatus;
  } catch {
    return undefined;
  }
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
