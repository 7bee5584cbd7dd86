/**
 * Slurm's command-line tools as typed calls: `sbatch` submits, `squeue` (with `scontrol` for what
 * squeue no longer knows) reports states, `scancel` signals and cancels, `scontrol requeue` puts a
 * job back in the queue. Every call runs the real binary found on PATH (and honours SLURM_CONF);
 * a missing binary or a refusal is a SlurmError that says what to do.
 */
import { execFile } from 'node:child_process';
import { PeftLabError } from '../errors';

/** A Slurm command that is missing or refused; `hint` is what the user can do about it. */
export class SlurmError extends PeftLabError {
  constructor(
    readonly command: string,
    readonly detail: string,
    readonly hint?: string,
  ) {
    super(`${command}: ${detail}${hint ? `. ${hint}` : ''}`);
  }
}

/** Slurm's job states (squeue %T, scontrol JobState), as the editor and the CLI show them. */
export type SlurmState =
  | 'PENDING'
  | 'CONFIGURING'
  | 'RUNNING'
  | 'COMPLETING'
  | 'SUSPENDED'
  | 'REQUEUED'
  | 'REQUEUE_HOLD'
  | 'RESIZING'
  | 'SIGNALING'
  | 'STAGE_OUT'
  | 'STOPPED'
  | 'COMPLETED'
  | 'FAILED'
  | 'CANCELLED'
  | 'TIMEOUT'
  | 'PREEMPTED'
  | 'NODE_FAIL'
  | 'OUT_OF_MEMORY'
  | 'BOOT_FAIL'
  | 'DEADLINE'
  | 'SPECIAL_EXIT';

const ENDED: ReadonlySet<string> = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'NODE_FAIL',
  'OUT_OF_MEMORY',
  'BOOT_FAIL',
  'DEADLINE',
  'SPECIAL_EXIT',
]);

/** Whether a job in this state will not run again by itself (PREEMPTED is followed by a requeue when the job allows it). */
export function hasEnded(state: string): boolean {
  return ENDED.has(state);
}

/** One job, or one task of a job array. */
export interface JobState {
  /** The job id (for an array: the array's job id). */
  jobId: string;
  /** The task's index in a job array. */
  taskId?: number;
  state: SlurmState | string;
  /** Why it is pending (squeue's %r: Priority, Resources, JobArrayTaskLimit, ...); absent when None. */
  reason?: string;
  /** The node it runs (or ran) on. */
  node?: string;
  /** `code:signal` as scontrol reports it, once the job has ended. */
  exitCode?: string;
}

/** `1234` or `1234_5`: how squeue, scancel and scontrol name a job or one task of an array. */
export function jobName(jobId: string, taskId?: number): string {
  return taskId === undefined ? jobId : `${jobId}_${taskId}`;
}

export interface SchedulerOptions {
  /** Environment for the commands (default: this process's; SLURM_CONF picks the cluster). */
  env?: NodeJS.ProcessEnv;
}

export class Scheduler {
  constructor(private readonly options: SchedulerOptions = {}) {}

  /** Submits a batch script; returns the job id. */
  async submit(scriptFile: string, cwd: string): Promise<string> {
    const out = await this.run('sbatch', ['--parsable', scriptFile], cwd, sbatchHint);
    const jobId = /^(\d+)/.exec(out.trim())?.[1];
    if (!jobId) throw new SlurmError('sbatch', `did not print a job id (it printed '${out.trim()}')`);
    return jobId;
  }

  /**
   * States of every task of these jobs: squeue first (one line per array task), then scontrol for
   * the jobs squeue has forgotten, which also gives exit codes. Jobs neither knows are left out.
   */
  async states(jobIds: readonly string[]): Promise<JobState[]> {
    if (!jobIds.length) return [];
    const out = await this.run(
      'squeue',
      ['-h', '-r', '--states=all', '-j', jobIds.join(','), '-o', '%F|%K|%T|%r|%N'],
      undefined,
      undefined,
      true,
    );
    const states = out.split('\n').flatMap((line) => parseSqueueLine(line) ?? []);
    const ended = states.filter((s) => hasEnded(s.state));
    const details = new Map<string, JobState>();
    for (const jobId of new Set([
      ...jobIds.filter((id) => !states.some((s) => s.jobId === id)),
      ...ended.map((s) => s.jobId),
    ])) {
      for (const detail of await this.showJob(jobId)) details.set(jobName(detail.jobId, detail.taskId), detail);
    }
    const merged = states.map((s) => ({ ...s, ...(details.get(jobName(s.jobId, s.taskId)) ?? {}) }));
    for (const [name, detail] of details)
      if (!merged.some((s) => jobName(s.jobId, s.taskId) === name)) merged.push(detail);
    return merged;
  }

  /** `scontrol show job -o`: every task of a job with its exit code; [] when Slurm no longer knows it. */
  async showJob(jobId: string): Promise<JobState[]> {
    const out = await this.run('scontrol', ['show', 'job', '-o', jobId], undefined, undefined, true);
    return out.split('\n').flatMap((line) => parseScontrolLine(line) ?? []);
  }

  /**
   * Signals a job (or one task) without ending it, so the worker can checkpoint first
   * (`scancel --signal=<sig> --full`: the batch shell and every step).
   */
  async signal(job: string, signal: 'TERM' | 'USR1' | 'INT'): Promise<void> {
    await this.run('scancel', [`--signal=${signal}`, '--full', job]);
  }

  /** Ends a job (or one task) now. */
  async cancel(job: string): Promise<void> {
    await this.run('scancel', [job]);
  }

  async requeue(job: string): Promise<void> {
    await this.run('scontrol', ['requeue', job]);
  }

  /** Whether `sbatch` is on PATH (the first thing a Slurm run needs). */
  async available(): Promise<boolean> {
    try {
      await this.run('sbatch', ['--version']);
      return true;
    } catch {
      return false;
    }
  }

  private run(
    command: string,
    args: string[],
    cwd?: string,
    hint?: (stderr: string) => string | undefined,
    tolerateInvalidJob = false,
  ): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        command,
        args,
        { cwd, env: this.options.env ?? process.env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (!err) return resolve(stdout);
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') {
            return reject(
              new SlurmError(
                command,
                'not found on PATH',
                'Run PEFT Lab on a machine with the Slurm client tools (a login node), or set peftLab.executor to local',
              ),
            );
          }
          const text = (stderr || err.message).trim();
          // a job Slurm has already forgotten is not an error for a state query
          if (tolerateInvalidJob && /Invalid job id/i.test(text)) return resolve(stdout);
          reject(
            new SlurmError(`${command} ${args.join(' ')}`, text.split('\n').filter(Boolean).join('; '), hint?.(text)),
          );
        },
      );
    });
  }
}

/** What to change when sbatch refuses a job, from its message. */
function sbatchHint(stderr: string): string | undefined {
  if (/invalid partition/i.test(stderr))
    return 'The partition does not exist: set peftLab.slurm.partition (or slurm.partition in the config) to one that `sinfo` lists';
  if (/invalid account/i.test(stderr))
    return 'Check peftLab.slurm.account (`sacctmgr show assoc user=$USER` lists yours)';
  if (/invalid qos/i.test(stderr)) return 'Check peftLab.slurm.qos';
  if (/time limit/i.test(stderr))
    return "Lower peftLab.slurm.time to within the partition's limit (`sinfo -o '%P %l'`)";
  if (/gres|generic resource/i.test(stderr))
    return 'Check peftLab.slurm.gres against what the nodes offer (`sinfo -o %G`)';
  if (/memory/i.test(stderr)) return 'Lower peftLab.slurm.mem';
  return 'The scheduler rejected the job; the message above is its own';
}

export function parseSqueueLine(line: string): JobState | undefined {
  const [jobId, task, state, reason, node] = line.trim().split('|');
  if (!jobId || !state) return undefined;
  // %K is the array index: N/A for a plain job, a range for array elements squeue has not split off
  const taskId = /^\d+$/.test(task ?? '') ? Number(task) : undefined;
  return { jobId, taskId, state, ...(reason && reason !== 'None' && { reason }), ...(node && { node }) };
}

export function parseScontrolLine(line: string): JobState | undefined {
  const field = (name: string) => new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(line)?.[1];
  const jobId = field('ArrayJobId') ?? field('JobId');
  const state = field('JobState');
  if (!jobId || !state) return undefined;
  const task = field('ArrayTaskId');
  const reason = field('Reason');
  const node = field('BatchHost') ?? field('NodeList');
  return {
    jobId,
    taskId: task && /^\d+$/.test(task) ? Number(task) : undefined,
    state,
    ...(reason && reason !== 'None' && { reason }),
    ...(node && node !== '(null)' && { node }),
    exitCode: field('ExitCode'),
  };
}
