/**
 * `peft-lab sweep <file.peft.json> [--parallel N]`: every point of the config's sweep
 * (core/config/sweep.ts) as a normal run folder, N at a time (default 1), then the best point.
 *
 * Each point trains in a worker process of its own, the one the extension forks (worker.ts beside
 * this file), given the point's resolved config over IPC: points run truly in parallel, and one
 * point's crash or memory cannot touch another. Workers get their own process group, so Ctrl-C
 * reaches only this process, which asks every running point to stop at its next checkpoint and
 * drops the waiting ones; a second Ctrl-C kills the workers.
 *
 * Exit codes: 0 every point finished, 1 bad config or a point failed, 130 interrupted.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { checkOutputLocation } from '../../core/config/output-location';
import { bestPoint, describePoint, planSweep, type SweepPlan, type SweepPoint } from '../../core/config/sweep';
import type { BackendName } from '../../core/config/types';
import { RunQueue } from '../../core/run-queue';
import { isWorkerMessage, type FinishedMessage, type TrainRequest, type WorkerMessage } from '../../protocol/worker';
import { displayPath, formatError } from '../../worker/errors';
import { EXIT_CANCELLED, EXIT_FAILED, EXIT_OK } from '../exit-codes';
import { onInterrupts } from '../interrupts';
import { formatMetrics, formatMetricValue } from '../../protocol/format';

const LAST_LINES = 10;
/** The worker: `dist/worker.js` beside the bundled CLI, or `src/worker/worker.ts` when the CLI runs from source under tsx. */
const WORKER_SCRIPT =
  path.extname(__filename) === '.ts'
    ? path.join(__dirname, '..', '..', 'worker', 'worker.ts')
    : path.join(__dirname, 'worker.js');

export interface SweepCommand {
  configFile: string;
  /** How many points train at once. */
  parallel: number;
  backend?: BackendName;
  json: boolean;
  /** Let output.runsDir lie outside the config's folder (system folders stay refused). */
  allowOutside?: boolean;
}

export interface PointResult {
  point: SweepPoint;
  finished?: FinishedMessage;
  /** Why the point did not finish: its worker's error, or that it was dropped by Ctrl-C. */
  error?: string;
}

export async function sweepCommand(command: SweepCommand): Promise<number> {
  let plan: SweepPlan;
  try {
    plan = planSweep(command.configFile);
    for (const point of plan.points) checkOutputLocation(point.config, { allowOutside: command.allowOutside });
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return EXIT_FAILED;
  }
  const output = command.json ? new JsonOutput(plan) : new TextOutput(plan);
  output.planned(command.parallel);
  const sweep = new SweepRun(plan, command, output);
  const results = await sweep.run();
  output.ended(results);
  if (sweep.interrupted) return EXIT_CANCELLED;
  return results.every((r) => r.finished) ? EXIT_OK : EXIT_FAILED;
}

/** The points of one sweep going through a RunQueue, each in a forked worker. */
class SweepRun {
  private readonly queue = new RunQueue<SweepPoint>();
  private readonly running = new Map<SweepPoint, ChildProcess>();
  private readonly results = new Map<SweepPoint, PointResult>();
  private allEnded!: () => void;
  interrupted = false;

  constructor(
    private readonly plan: SweepPlan,
    private readonly command: SweepCommand,
    private readonly output: Output,
  ) {}

  async run(): Promise<PointResult[]> {
    const ended = new Promise<void>((resolve) => (this.allEnded = resolve));
    for (const point of this.plan.points) this.queue.enqueue(point);
    const stopOnInterrupt = this.onInterrupt();
    try {
      this.startWaiting();
      await ended;
    } finally {
      stopOnInterrupt.dispose();
    }
    return this.plan.points.map((point) => this.results.get(point) ?? { point, error: 'not run' });
  }

  private startWaiting(): void {
    for (const point of this.queue.takeStartable(this.running.size, this.command.parallel)) this.start(point);
    if (this.running.size === 0 && this.queue.size === 0) this.allEnded();
  }

  private start(point: SweepPoint): void {
    const child = fork(WORKER_SCRIPT, [], {
      cwd: path.dirname(this.plan.configFile),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
    });
    this.running.set(point, child);
    const lastLines: string[] = [];
    const keep = (chunk: Buffer) =>
      lastLines.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l.trim()),
      );
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let finished: FinishedMessage | undefined;
    let failure: string | undefined;
    child.on('message', (message: unknown) => {
      if (!isWorkerMessage(message)) return;
      if (message.type === 'finished') finished = message;
      if (message.type === 'failed') failure = message.error.message;
      this.output.message(point, message);
    });
    child.on('error', (err) => (failure ??= err.message));
    child.on('exit', (code, signal) => {
      const crash = `worker ${signal ? `killed by ${signal}` : `exited with code ${code}`}; last output:\n${lastLines.slice(-LAST_LINES).join('\n')}`;
      this.ended({ point, finished, error: finished ? undefined : (failure ?? crash) });
    });
    const request: TrainRequest = {
      type: 'train',
      configFile: this.plan.configFile,
      config: point.config,
      backend: this.command.backend,
    };
    child.send(request);
  }

  private ended(result: PointResult): void {
    this.running.delete(result.point);
    this.results.set(result.point, result);
    this.startWaiting();
  }

  /** First Ctrl-C (or SIGTERM): drop the waiting points, stop the running ones at a checkpoint; the second kills them. */
  private onInterrupt(): { dispose(): void } {
    return onInterrupts(
      () => this.stopAll(),
      () => this.killAll(),
    );
  }

  private stopAll(): void {
    this.interrupted = true;
    process.stderr.write(
      'stopping the sweep: running points stop at their next checkpoint, waiting points are dropped (press Ctrl-C again to kill them now)\n',
    );
    for (const point of this.queue.clear())
      this.results.set(point, { point, error: 'not started: the sweep was interrupted' });
    for (const child of this.running.values()) if (child.connected) child.send({ type: 'cancel' });
  }

  private killAll(): void {
    for (const child of this.running.values()) child.kill('SIGKILL');
  }
}

// ---- output ------------------------------------------------------------------------------------

interface Output {
  planned(parallel: number): void;
  message(point: SweepPoint, message: WorkerMessage): void;
  ended(results: PointResult[]): void;
}

/** The best finished point by the sweep's metric, with its value. */
function bestOf(plan: SweepPlan, results: PointResult[]): { result: PointResult; value: number } | undefined {
  const best = bestPoint(
    results.map((r) => ({ ...r, metrics: r.finished?.bestMetrics })),
    plan.metric,
    plan.goal,
  );
  return best ? { result: best, value: best.metrics![plan.metric]! } : undefined;
}

/** One JSON object per line: `sweep` (the plan), every worker message with its `point`, and `sweepEnded`. */
class JsonOutput implements Output {
  constructor(private readonly plan: SweepPlan) {}

  planned(parallel: number): void {
    const { id, configFile, method, metric, goal, fields } = this.plan;
    const points = this.plan.points.map((p) => ({ index: p.index, name: p.name, values: p.values }));
    this.line({ type: 'sweep', sweepId: id, configFile, method, metric, goal, fields, parallel, points });
  }

  message(point: SweepPoint, message: WorkerMessage): void {
    this.line({ ...message, point: point.index });
  }

  ended(results: PointResult[]): void {
    const best = bestOf(this.plan, results);
    this.line({
      type: 'sweepEnded',
      sweepId: this.plan.id,
      results: results.map((r) => ({
        index: r.point.index,
        name: r.point.name,
        values: r.point.values,
        state: r.finished?.state ?? 'failed',
        runDir: r.finished?.runDir,
        metrics: r.finished?.bestMetrics,
        error: r.error,
      })),
      best: best && {
        index: best.result.point.index,
        name: best.result.point.name,
        values: best.result.point.values,
        runDir: best.result.finished!.runDir,
        metric: this.plan.metric,
        value: best.value,
      },
    });
  }

  private line(value: object): void {
    process.stdout.write(`${JSON.stringify(value)}\n`);
  }
}

/** A few lines per point, prefixed with the point's number and name, and a summary table at the end. */
class TextOutput implements Output {
  constructor(private readonly plan: SweepPlan) {}

  planned(parallel: number): void {
    const { id, points, method, fields, metric, goal } = this.plan;
    process.stdout.write(
      `sweep ${id}: ${points.length} point${points.length === 1 ? '' : 's'} (${method} over ${fields.join(', ')}), ${parallel} at a time; best by ${metric} (${goal})\n`,
    );
    for (const warning of this.plan.warnings) process.stderr.write(`warning: ${warning.path}: ${warning.message}\n`);
  }

  message(point: SweepPoint, message: WorkerMessage): void {
    const text = this.describe(message);
    if (text) process.stdout.write(`[${point.index + 1}/${this.plan.points.length} ${point.name}] ${text}\n`);
  }

  private describe(message: WorkerMessage): string | undefined {
    switch (message.type) {
      case 'started':
        return `run: ${displayPath(message.runDir)} (${message.totalSteps} steps)`;
      case 'metrics':
        return `step ${message.step} ${message.split}: ${formatMetrics(message.metrics)}${message.isBest ? '  (best so far)' : ''}`;
      case 'finished':
        return `${message.state === 'finished' ? 'finished' : `stopped (${message.reason ?? 'cancelled'})`}${message.bestMetrics ? `; best ${formatMetrics(message.bestMetrics)}` : ''}`;
      case 'failed':
        return `error: ${message.error.message}`;
      case 'log':
        return message.level === 'info'
          ? undefined
          : `${message.level === 'warn' ? 'warning' : 'error'}: ${message.message}`;
      default:
        // progress and checkpoints of several points at once would drown the evaluations
        return undefined;
    }
  }

  ended(results: PointResult[]): void {
    const finished = results.filter((r) => r.finished).length;
    process.stdout.write(`\nsweep ${this.plan.id}: ${finished} of ${results.length} points finished\n`);
    const width = Math.max(...results.map((r) => r.point.name.length));
    for (const r of results) process.stdout.write(`  ${r.point.name.padEnd(width)}  ${this.outcome(r)}\n`);
    const best = bestOf(this.plan, results);
    if (best)
      process.stdout.write(
        `best: ${best.result.point.name} (${describePoint(best.result.point.values)}): ${this.plan.metric} ${formatMetricValue(best.value)}\n`,
      );
    else process.stdout.write(`no point has a ${this.plan.metric} to compare\n`);
  }

  private outcome(r: PointResult): string {
    if (!r.finished) return `failed: ${(r.error ?? '').split('\n')[0]}`;
    const value = r.finished.bestMetrics?.[this.plan.metric];
    return `${value === undefined ? `no ${this.plan.metric}` : `${this.plan.metric} ${formatMetricValue(value)}`}  ${displayPath(r.finished.runDir)}`;
  }
}
