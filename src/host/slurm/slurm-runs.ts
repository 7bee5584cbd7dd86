/**
 * Train and Sweep on a Slurm cluster (`peftLab.executor` = `slurm`): one sbatch job for Train, one
 * job array for a sweep (core/slurm/job.ts writes the job folder and the batch script). Each point
 * becomes a run in the run manager like a local one, so the status bar, the dashboard and the
 * Queue view show it: Slurm's state comes from squeue/scontrol every few seconds, the metrics from
 * the run folder on the shared file system (the run folder is the contract, as for a detached
 * local run), and the outcome from the run's status once Slurm says the task has ended.
 *
 * Stop is `scancel --signal=TERM`: the worker checkpoints at its next step and ends; after
 * `peftLab.stopTimeoutSeconds` without that, the job is cancelled. A pending task is cancelled at once.
 * After a window reload, jobs whose tasks have not all ended are followed again from their folders.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SweepPoint } from '../../core/config/sweep';
import type { AnyResolvedConfig, SlurmOptions } from '../../core/config/types';
import {
  messageOf,
  readJobSpec,
  readTaskRecord,
  stateOf,
  submitJob,
  taskLog,
  taskOutcome,
  type JobPoint,
  type SlurmJobSpec,
  type TaskOutcome,
} from '../../core/slurm/job';
import { jobName, Scheduler, type JobState } from '../../core/slurm/scheduler';
import type { RemoteRun, RunManager, RunOutcome, RunView, SlurmView } from '../training/run-manager';
import { RunFollower } from '../training/run-follower';
import { readRunStatus } from '../../core/checkpoint/run-reader';
import { readSettings } from '../util/settings';
import { Disposable, toDisposable } from '../util/dispose';

const POLL_MS = 2000;
/** Jobs older than this are not followed again after a reload (Slurm has long forgotten them). */
const FOLLOW_AGAIN_DAYS = 14;

interface TrackedTask {
  point: JobPoint;
  /** What the Queue view last showed of it: unchanged polls do not redraw the view. */
  shown?: string;
  remote: RemoteRun;
  runDir?: string;
  follower?: RunFollower;
  state?: JobState;
}

interface TrackedJob {
  spec: SlurmJobSpec;
  jobDir: string;
  tasks: TrackedTask[];
}

export interface SlurmRunsDeps {
  runs: RunManager;
  log: vscode.LogOutputChannel;
  /** dist/cli.js: what a node runs (`<node> cli.js slurm-task <job folder>`). */
  cliScript: string;
}

export interface SlurmSubmission {
  configFile: string;
  kind: 'train' | 'sweep';
  /** The points to train: a sweep's, or the config itself as the one point of Train. */
  points: { point?: SweepPoint; config: AnyResolvedConfig; name: string }[];
  sweepId?: string;
}

export class SlurmRuns extends Disposable {
  private readonly jobs = new Map<string, TrackedJob>();
  /** Tasks that have ended while others of their job go on: the Queue view shows how they ended. */
  private readonly endedTasks = new Map<string, RunView[]>();
  private readonly changed = this._register(new vscode.EventEmitter<void>());
  /** A task ended, or a job's ended tasks were cleared from view. */
  readonly onDidChange = this.changed.event;
  private readonly scheduler = new Scheduler();
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(private readonly deps: SlurmRunsDeps) {
    super();
    this._register(
      toDisposable(() => {
        clearInterval(this.timer);
        // the jobs go on with Slurm; the next window follows them again (followAgain)
        for (const job of this.jobs.values()) for (const task of job.tasks) task.follower?.dispose();
        this.jobs.clear();
      }),
    );
  }

  /**
   * Submits the points as one job (an array for a sweep) and tracks them; resolves with each
   * point's outcome promise. Throws a SlurmError (no sbatch, refused job) with nothing written.
   */
  async submit(submission: SlurmSubmission): Promise<Promise<RunOutcome>[]> {
    const uri = vscode.Uri.file(submission.configFile);
    const settings = readSettings(uri);
    const first = submission.points[0]!.config;
    const runsDir = settings.runsDirectory
      ? resolveRunsDir(settings.runsDirectory, submission.configFile)
      : first.output.runsDir;
    const points: JobPoint[] = submission.points.map((p, index) => {
      const config = structuredClone(p.config);
      config.output.runsDir = runsDir;
      return { index, name: p.name, config };
    });
    // the config is the more specific: its slurm section overrides the settings field by field
    const options: SlurmOptions = { ...settings.slurm, ...(first.slurm ?? {}) };
    const submitted = await submitJob(
      {
        kind: submission.kind,
        configFile: submission.configFile,
        sweepId: submission.sweepId,
        points,
        runsDir,
        backend: settings.backend === 'auto' ? undefined : settings.backend,
        options,
        command: [defaultNode(settings.nodePath), this.deps.cliScript],
        concurrency: settings.maxConcurrentRuns,
      },
      this.scheduler,
    );
    this.deps.log.info(
      `submitted Slurm job ${submitted.jobId} (${points.length} point${points.length === 1 ? '' : 's'}) for ${submission.configFile}; job folder ${submitted.jobDir}`,
    );
    const job = this.track(
      submitted.spec,
      submitted.jobDir,
      submission.points.map((p) => p.point),
    );
    return job.tasks.map((t) => t.remote.done);
  }

  /** Follows again the jobs of these runs folders whose tasks have not all ended (after a window reload). */
  async followAgain(runsDirs: string[]): Promise<number> {
    let followed = 0;
    for (const runsDir of runsDirs) {
      const root = path.join(runsDir, '.slurm');
      if (!fs.existsSync(root)) continue;
      for (const name of fs.readdirSync(root)) {
        const jobDir = path.join(root, name);
        let spec: SlurmJobSpec;
        try {
          spec = readJobSpec(jobDir);
        } catch {
          continue;
        }
        if (
          !spec.jobId ||
          this.jobs.has(spec.jobId) ||
          !spec.submitted ||
          Date.now() - Date.parse(spec.submitted) > FOLLOW_AGAIN_DAYS * 86_400_000
        )
          continue;
        const states = await this.scheduler.states([spec.jobId]).catch(() => undefined);
        if (!states) continue;
        const open = spec.points.filter(
          (p) =>
            !taskOutcome(
              spec,
              jobDir,
              p.index,
              stateOf(states, spec, p.index) ?? (states.length ? { jobId: spec.jobId!, state: 'PENDING' } : undefined),
            ),
        );
        if (!open.length) continue;
        this.deps.log.info(`following Slurm job ${spec.jobId} again (${open.length} task(s) not ended)`);
        try {
          this.track(
            { ...spec, points: open },
            jobDir,
            open.map((p) => sweepPointOf(p)),
          );
          followed += open.length;
        } catch (err) {
          this.deps.log.warn(`cannot follow Slurm job ${spec.jobId}: ${(err as Error).message}`);
        }
      }
    }
    return followed;
  }

  private track(spec: SlurmJobSpec, jobDir: string, sweepPoints: (SweepPoint | undefined)[]): TrackedJob {
    const job: TrackedJob = { spec, jobDir, tasks: [] };
    const array = spec.kind === 'sweep';
    for (const [i, point] of spec.points.entries()) {
      const taskId = array ? point.index : undefined;
      const view: SlurmView = { jobId: spec.jobId!, taskId, state: 'PENDING', log: taskLog(spec, jobDir, point.index) };
      const task: TrackedTask = { point, remote: undefined as unknown as RemoteRun };
      const control = {
        stop: () => void this.stopTask(job, task),
        kill: () =>
          void this.scheduler
            .cancel(jobName(spec.jobId!, taskId))
            .catch((err: unknown) =>
              this.deps.log.warn(`scancel ${jobName(spec.jobId!, taskId)}: ${(err as Error).message}`),
            ),
      };
      task.remote = this.deps.runs.trackRemote(spec.configFile, sweepPoints[i], control, view);
      job.tasks.push(task);
    }
    this.jobs.set(spec.jobId!, job);
    this.timer ??= setInterval(() => void this.poll(), POLL_MS);
    void this.poll();
    return job;
  }

  /** A running task gets TERM (it checkpoints and ends); one still pending has nothing to save and is cancelled. */
  private async stopTask(job: TrackedJob, task: TrackedTask): Promise<void> {
    const name = jobName(job.spec.jobId!, job.spec.kind === 'sweep' ? task.point.index : undefined);
    try {
      if (task.state?.state === 'RUNNING') {
        this.deps.log.info(`stopping Slurm job ${name}: SIGTERM, the worker checkpoints and ends`);
        await this.scheduler.signal(name, 'TERM');
      } else {
        this.deps.log.info(
          `cancelling Slurm job ${name} (${task.state?.state.toLowerCase() ?? 'pending'}: nothing to checkpoint)`,
        );
        await this.scheduler.cancel(name);
      }
    } catch (err) {
      this.deps.log.warn(`stopping Slurm job ${name}: ${(err as Error).message}`);
    }
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const ids = [...this.jobs.keys()];
      if (!ids.length) {
        clearInterval(this.timer);
        this.timer = undefined;
        return;
      }
      let states: JobState[];
      try {
        states = await this.scheduler.states(ids);
      } catch (err) {
        this.deps.log.warn(`Slurm state query failed (trying again): ${(err as Error).message}`);
        return;
      }
      for (const job of this.jobs.values()) this.update(job, states);
    } finally {
      this.polling = false;
    }
  }

  private update(job: TrackedJob, states: JobState[]): void {
    const { spec, jobDir } = job;
    const anyLine = states.some((s) => s.jobId === spec.jobId);
    for (const task of [...job.tasks]) {
      const state =
        stateOf(states, spec, task.point.index) ?? (anyLine ? { jobId: spec.jobId!, state: 'PENDING' } : undefined);
      task.state = state;
      this.followRunFolder(job, task);
      const outcome = taskOutcome(spec, jobDir, task.point.index, state);
      if (outcome) {
        task.follower?.finish();
        this.rememberEnded(job, task, outcome);
        task.remote.end(runOutcome(outcome));
        job.tasks.splice(job.tasks.indexOf(task), 1);
        this.deps.log.info(
          `Slurm job ${jobName(spec.jobId!, spec.kind === 'sweep' ? task.point.index : undefined)} (${task.point.name}) ended: ${outcome.kind === 'finished' ? outcome.status.state : outcome.message}`,
        );
        continue;
      }
      if (!state) continue;
      // Slurm's view only: a redraw at every step would close a context menu opened on the row
      const shown = JSON.stringify([state.state, state.reason, state.node]);
      if (shown === task.shown) continue;
      task.shown = shown;
      task.remote.update({
        phase: state.state === 'RUNNING' ? 'training' : 'starting',
        slurm: {
          jobId: spec.jobId!,
          taskId: spec.kind === 'sweep' ? task.point.index : undefined,
          state: state.state,
          reason: state.reason,
          node: state.node,
          log: taskLog(spec, jobDir, task.point.index),
        },
      });
    }
    if (!job.tasks.length) {
      this.jobs.delete(spec.jobId!);
      this.endedTasks.delete(spec.jobId!);
      this.changed.fire();
    }
  }

  /** Tasks of still-running jobs that have ended, with how (Slurm's words), for the Queue view. */
  ended(): RunView[] {
    return [...this.endedTasks.values()].flat();
  }

  private rememberEnded(job: TrackedJob, task: TrackedTask, outcome: TaskOutcome): void {
    const view = runView(this.deps.runs, task);
    if (!view?.slurm) return;
    const list = this.endedTasks.get(job.spec.jobId!) ?? [];
    list.push({ ...view, slurm: { ...view.slurm, ended: endedAs(outcome, task.state) } });
    this.endedTasks.set(job.spec.jobId!, list);
    this.changed.fire();
  }

  /** Tails the task's run folder once it exists (a requeued task that restarted afresh gets a new one). */
  private followRunFolder(job: TrackedJob, task: TrackedTask): void {
    const record = readTaskRecord(job.jobDir, task.point.index);
    if (!record || record.runDir === task.runDir) return;
    const status = readRunStatus(record.runDir);
    if (!status) return;
    task.follower?.dispose();
    task.runDir = record.runDir;
    task.follower = new RunFollower(
      { configFile: job.spec.configFile, runDir: record.runDir, pid: status.pid, status },
      (message) => task.remote.message(message),
      () => {},
      { metricsOnly: true },
    );
  }
}

function runView(runs: RunManager, task: TrackedTask): RunView | undefined {
  return runs.active().find((r) => r.id === task.remote.id);
}

/** How a task ended, as Slurm would say it; a run stopped by Stop checkpointed first and says where. */
function endedAs(outcome: TaskOutcome, state: JobState | undefined): string {
  if (outcome.kind === 'finished') {
    const s = outcome.status;
    if (s.state === 'finished') return 'completed';
    return s.reason === 'early-stopping' ? 'completed (stopped early)' : `cancelled (checkpoint at step ${s.step})`;
  }
  return state?.state === 'TIMEOUT'
    ? 'timed out'
    : state?.state === 'CANCELLED'
      ? 'cancelled'
      : state?.state === 'PREEMPTED'
        ? 'preempted'
        : 'failed';
}

function runOutcome(outcome: TaskOutcome): RunOutcome {
  const message = messageOf(outcome);
  if (message.type === 'finished') return { kind: 'finished', message };
  return {
    kind: 'failed',
    runDir: outcome.runDir,
    error: Object.assign(new Error(message.error.message), { name: message.error.name }),
  };
}

/**
 * Node on the compute nodes when no setting names one: the editor's own runtime when it is plain
 * Node (Remote-SSH's server, code-server: on a shared home the nodes see it), else `node`.
 */
function defaultNode(nodePath: string): string {
  if (nodePath) return nodePath;
  return process.versions.electron ? 'node' : process.execPath;
}

function resolveRunsDir(setting: string, configFile: string): string {
  if (path.isAbsolute(setting)) return setting;
  const folder =
    vscode.workspace.getWorkspaceFolder(vscode.Uri.file(configFile))?.uri.fsPath ?? path.dirname(configFile);
  return path.join(folder, setting);
}

/** The SweepPoint a job's point stands for (its config says), for the run manager's view of it. */
function sweepPointOf(point: JobPoint): SweepPoint | undefined {
  const info = 'sweepPoint' in point.config ? point.config.sweepPoint : undefined;
  return (
    info && { index: info.index, name: point.name, values: info.values, config: point.config as SweepPoint['config'] }
  );
}
