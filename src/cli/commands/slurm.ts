/**
 * The CLI's Slurm side (core/slurm/job.ts has the job folder and the batch script):
 *
 * - `peft-lab train|sweep <file> --executor slurm [options]` submits one job (Train) or one job
 *   array (Sweep), then follows it until every task has ended: Slurm's state of each point
 *   (pending and why, running on which node) and each point's outcome from its run folder. Ctrl-C
 *   asks the jobs to stop at a checkpoint (scancel with SIGTERM); a second Ctrl-C stops following
 *   and leaves the jobs to Slurm.
 * - `peft-lab slurm-task <job folder>` is what the batch script runs on a node: it trains the point
 *   SLURM_ARRAY_TASK_ID names, or continues it from its run folder when the task was requeued.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { planSweep, type SweepPlan } from '../../core/config/sweep';
import { loadAnyConfig } from '../../core/config/load';
import { checkOutputLocation } from '../../core/config/output-location';
import type { AnyResolvedConfig, BackendName } from '../../core/config/types';
import { writeJsonAtomic } from '../../core/checkpoint/atomic';
import { RunFolder } from '../../core/checkpoint/run-folder';
import {
  describeState,
  messageOf,
  readJobSpec,
  readTaskRecord,
  stateOf,
  submitJob,
  taskLog,
  taskOutcome,
  writeTaskRecord,
  type JobPoint,
  type SlurmJobSpec,
  type SlurmOptions,
  type TaskOutcome,
  type RunSlurmInfo,
} from '../../core/slurm/job';
import { hasEnded, jobName, Scheduler, type JobState } from '../../core/slurm/scheduler';
import type { FinishedMessage, WorkerMessage } from '../../protocol/worker';
import { displayPath, formatError } from '../../worker/errors';
import { EXIT_CANCELLED, EXIT_FAILED, EXIT_OK } from '../exit-codes';
import { onInterrupts } from '../interrupts';
import { loadPretrainer, loadTrainer } from '../lazy';
import { formatMetrics } from '../../protocol/format';

const POLL_MS = 2000;

export interface SlurmSubmitCommand {
  kind: 'train' | 'sweep';
  configFile: string;
  parallel: number;
  backend?: BackendName;
  json: boolean;
  /** As for a local run: output outside the config's folder tree only when asked. */
  allowOutside: boolean;
  options: SlurmOptions;
}

/** How a node starts this CLI: this Node, its flags (tsx under the tests), the script this process runs. */
function cliCommand(): string[] {
  return [process.execPath, ...process.execArgv, path.resolve(process.argv[1]!)];
}

export async function slurmSubmitCommand(command: SlurmSubmitCommand): Promise<number> {
  let plan: SweepPlan | undefined;
  let points: JobPoint[];
  try {
    if (command.kind === 'sweep') {
      plan = planSweep(command.configFile);
      points = plan.points.map((p) => ({ index: p.index, name: p.name, config: p.config }));
    } else {
      const config = loadAnyConfig(command.configFile);
      points = [{ index: 0, name: config.name, config }];
    }
    for (const point of points) checkOutputLocation(point.config, { allowOutside: command.allowOutside });
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return EXIT_FAILED;
  }
  const first = points[0]!.config;
  const options = { ...configOptions(first), ...command.options };
  let submitted;
  try {
    submitted = await submitJob({
      kind: command.kind,
      configFile: path.resolve(command.configFile),
      sweepId: plan?.id,
      points,
      runsDir: first.output.runsDir,
      backend: command.backend,
      options,
      command: cliCommand(),
      concurrency: command.parallel,
    });
  } catch (err) {
    process.stderr.write(`peft-lab: ${formatError(err)}\n`);
    return EXIT_FAILED;
  }
  const { jobId, jobDir, spec } = submitted;
  const out = new Reporter(command.json, spec, jobDir, plan);
  out.submitted();
  const follower = new JobFollower(spec, jobDir, out);
  const interrupts = onInterrupts(
    () => {
      process.stderr.write(
        `stopping job ${jobId}: every running point stops at its next checkpoint (press Ctrl-C again to stop following; the jobs stay with Slurm)\n`,
      );
      follower.interrupted = true;
      void new Scheduler().signal(jobId, 'TERM').catch((err: unknown) => process.stderr.write(`${formatError(err)}\n`));
    },
    () => {
      process.stderr.write(`no longer following job ${jobId}; see it with: squeue -j ${jobId}\n`);
      process.exit(EXIT_CANCELLED);
    },
  );
  try {
    const outcomes = await follower.follow();
    out.ended(outcomes);
    if (follower.interrupted) return EXIT_CANCELLED;
    return outcomes.every((o) => o.kind === 'finished' && o.status.state === 'finished') ? EXIT_OK : EXIT_FAILED;
  } finally {
    interrupts.dispose();
  }
}

/** A config's own `slurm` section (settings and flags override it field by field). */
function configOptions(config: AnyResolvedConfig): SlurmOptions {
  return config.slurm ?? {};
}

/** Polls Slurm and the run folders until every task of the job has ended. */
class JobFollower {
  interrupted = false;
  private readonly seen = new Map<number, string>();

  constructor(
    private readonly spec: SlurmJobSpec,
    private readonly jobDir: string,
    private readonly out: Reporter,
  ) {}

  async follow(): Promise<TaskOutcome[]> {
    const scheduler = new Scheduler();
    const outcomes = new Map<number, TaskOutcome>();
    const ending = new Set<number>();
    for (;;) {
      const states = await scheduler.states([this.spec.jobId!]);
      for (const point of this.spec.points) {
        if (outcomes.has(point.index)) continue;
        const state = stateOf(states, this.spec, point.index);
        this.report(point, state);
        // an array task Slurm has not split off yet is part of the pending array line
        const outcome = taskOutcome(
          this.spec,
          this.jobDir,
          point.index,
          state ?? (states.length ? { jobId: this.spec.jobId!, state: 'PENDING' } : undefined),
        );
        // an outcome counts once a second poll agrees: while `scontrol requeue` turns a task around,
        // Slurm can briefly list it as ended or not at all, next to the run's checkpointed "stopped"
        if (!outcome || !ending.has(point.index)) {
          if (outcome) ending.add(point.index);
          else ending.delete(point.index);
          continue;
        }
        outcomes.set(point.index, outcome);
        this.out.outcome(point, outcome);
      }
      if (outcomes.size === this.spec.points.length) return this.spec.points.map((p) => outcomes.get(p.index)!);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  private report(point: JobPoint, state: JobState | undefined): void {
    if (!state || hasEnded(state.state)) return;
    const text = describeState(state);
    if (this.seen.get(point.index) === text) return;
    this.seen.set(point.index, text);
    this.out.state(point, state, text);
  }
}

class Reporter {
  constructor(
    private readonly json: boolean,
    private readonly spec: SlurmJobSpec,
    private readonly jobDir: string,
    private readonly plan?: SweepPlan,
  ) {}

  submitted(): void {
    const { jobId, points, kind, concurrency } = this.spec;
    if (this.json) {
      this.line({
        type: kind === 'sweep' ? 'sweep' : 'submitted',
        executor: 'slurm',
        jobId,
        jobDir: this.jobDir,
        parallel: concurrency,
        ...(this.plan && {
          sweepId: this.plan.id,
          configFile: this.plan.configFile,
          method: this.plan.method,
          metric: this.plan.metric,
          goal: this.plan.goal,
          fields: this.plan.fields,
        }),
        points: points.map((p) => ({
          index: p.index,
          name: p.name,
          values: p.config && 'sweepPoint' in p.config ? p.config.sweepPoint?.values : undefined,
        })),
      });
    } else {
      const what =
        kind === 'sweep'
          ? `a job array of ${points.length} point${points.length === 1 ? '' : 's'}, ${concurrency} at a time`
          : `one job`;
      process.stdout.write(`submitted Slurm job ${jobId}: ${what}; job folder ${displayPath(this.jobDir)}\n`);
    }
  }

  state(point: JobPoint, state: JobState, text: string): void {
    if (this.json)
      this.line({
        type: 'slurm',
        point: point.index,
        jobId: this.spec.jobId,
        taskId: state.taskId,
        state: state.state,
        reason: state.reason,
        node: state.node,
      });
    else process.stdout.write(`${this.prefix(point)}${text}\n`);
  }

  outcome(point: JobPoint, outcome: TaskOutcome): void {
    const message = messageOf(outcome);
    if (this.json) this.line({ ...message, point: point.index });
    else if (outcome.kind === 'failed') process.stdout.write(`${this.prefix(point)}failed: ${outcome.message}\n`);
    else {
      const s = outcome.status;
      const best = s.bestMetrics ? `; best ${formatMetrics(s.bestMetrics)}` : '';
      process.stdout.write(
        `${this.prefix(point)}${s.state === 'finished' ? 'finished' : `stopped (${s.reason ?? 'cancelled'})`}${best}: ${displayPath(outcome.runDir)}\n`,
      );
    }
  }

  ended(outcomes: TaskOutcome[]): void {
    if (!this.json) {
      const done = outcomes.filter((o) => o.kind === 'finished').length;
      process.stdout.write(`job ${this.spec.jobId}: ${done} of ${outcomes.length} finished\n`);
      return;
    }
    const results = this.spec.points.map((p, i) => {
      const o = outcomes[i]!;
      return {
        index: p.index,
        name: p.name,
        state: o.kind === 'finished' ? o.status.state : 'failed',
        runDir: o.runDir,
        metrics: o.kind === 'finished' ? o.status.bestMetrics : undefined,
        error: o.kind === 'failed' ? o.message : undefined,
      };
    });
    this.line({
      type: this.spec.kind === 'sweep' ? 'sweepEnded' : 'ended',
      executor: 'slurm',
      jobId: this.spec.jobId,
      sweepId: this.spec.sweepId,
      results,
    });
  }

  private prefix(point: JobPoint): string {
    return this.spec.kind === 'sweep' ? `[${point.index + 1}/${this.spec.points.length} ${point.name}] ` : '';
  }

  private line(value: object): void {
    process.stdout.write(`${JSON.stringify(value)}\n`);
  }
}

// ---- on the node -------------------------------------------------------------------------------

/**
 * Trains the point of this array task (SLURM_ARRAY_TASK_ID; 0 for a single job) as the local worker
 * would, or continues its run when the task runs again after a requeue. USR1 (the time limit is
 * near) checkpoints and requeues the task; SIGTERM (scancel, preemption) checkpoints and ends.
 */
export async function slurmTaskCommand(
  jobDir: string,
  onMessage: (message: WorkerMessage) => void,
): Promise<{ finished?: FinishedMessage; code: number }> {
  const spec = readJobSpec(jobDir);
  const index = Number(process.env.SLURM_ARRAY_TASK_ID ?? 0);
  const point = spec.points[index];
  if (!point)
    throw new Error(`${path.join(jobDir, 'job.json')}: no point ${index} (the job has ${spec.points.length})`);
  const jobId = process.env.SLURM_ARRAY_JOB_ID ?? process.env.SLURM_JOB_ID ?? spec.jobId ?? '';
  const ownJob = process.env.SLURM_JOB_ID ?? jobName(jobId, spec.kind === 'sweep' ? index : undefined);
  const node = process.env.SLURMD_NODENAME;
  const resume = resumable(jobDir, index);
  if (resume && readStatusState(resume) === 'finished') {
    // requeued after its run had finished (e.g. a node failure while the job was ending): nothing left to do
    process.stdout.write(`peft-lab: task ${index} (${point.name}) already finished its run ${resume}\n`);
    return { code: EXIT_OK };
  }
  process.stdout.write(
    `peft-lab: task ${index} (${point.name}) on ${node ?? 'this node'}, job ${ownJob}${resume ? `; continuing ${resume}` : ''}\n`,
  );

  const stop = new AbortController();
  let requeue = false;
  const onUsr1 = () => {
    requeue = true;
    process.stdout.write('peft-lab: USR1 (the time limit is near): checkpointing, then requeueing this task\n');
    stop.abort();
  };
  const onTerm = () => {
    process.stdout.write('peft-lab: SIGTERM: stopping at the next step boundary after a checkpoint\n');
    stop.abort();
  };
  process.on('SIGUSR1', onUsr1);
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onTerm);
  const pretraining = 'pretrain' in point.config;
  const run = pretraining ? loadPretrainer().pretrain : loadTrainer().train;
  const finished = await run(spec.configFile, {
    resume,
    config: point.config,
    backend: spec.backend as BackendName | undefined,
    signal: stop.signal,
    onMessage: (message) => {
      if (message.type === 'started') {
        writeTaskRecord(jobDir, index, { runDir: message.runDir, jobId: ownJob, node });
        const info: RunSlurmInfo = {
          jobDir,
          jobId,
          taskId: spec.kind === 'sweep' ? index : undefined,
          node,
          log: taskLog(spec, jobDir, index),
        };
        writeJsonAtomic(path.join(message.runDir, 'slurm.json'), info);
      }
      onMessage(message);
    },
  });
  if (requeue && finished.state === 'stopped') {
    await new Scheduler().requeue(ownJob);
    process.stdout.write(`peft-lab: requeued ${ownJob}; it continues from ${finished.runDir}\n`);
  }
  return { finished, code: EXIT_OK };
}

function readStatusState(runDir: string): string | undefined {
  try {
    return (JSON.parse(fs.readFileSync(path.join(runDir, 'status.json'), 'utf8')) as { state?: string }).state;
  } catch {
    return undefined;
  }
}

/** The run folder a requeued task continues, if its earlier start got as far as a checkpoint. */
function resumable(jobDir: string, index: number): string | undefined {
  const record = readTaskRecord(jobDir, index);
  if (!record || !fs.existsSync(record.runDir)) return undefined;
  try {
    if (RunFolder.open(record.runDir).checkpointSteps().length) return record.runDir;
  } catch {
    // not a run folder (yet): start afresh
  }
  // started but never checkpointed: nothing to keep, and a fresh start must not leave it looking alive
  fs.rmSync(record.runDir, { recursive: true, force: true });
  return undefined;
}
