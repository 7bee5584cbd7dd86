/**
 * A run or a sweep as one Slurm job. The job folder, `<runs folder>/.slurm/<name>-<stamp>/`, is all
 * the compute nodes and the editor share besides the run folders themselves:
 *
 *   job.json        what to train: the resolved config of every point, the worker command, options
 *   job.sh          the batch script sbatch got (an array job for a sweep: task i trains point i)
 *   logs/<job>_<task>.out   Slurm's output of each task (appended across requeues)
 *   tasks/<i>.json  the run folder task i trains, written when it starts: a requeued task resumes it
 *
 * The folder is assembled under a temporary name and renamed into place before sbatch runs, and
 * removed when sbatch refuses the job, so a refused submission leaves nothing behind.
 *
 * Time limits and preemption: the script asks for `--requeue` and `--signal=B:USR1@<grace>`. On
 * USR1 (the time limit is near) the task checkpoints, requeues itself and exits; on SIGTERM
 * (scancel, preemption, `scontrol requeue`) it checkpoints and exits. Either way the task that runs
 * again finds its run folder in tasks/<i>.json and continues from its last checkpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AnyResolvedConfig, SlurmOptions } from '../config/types';

export type { SlurmOptions };
import { readJsonFile, writeJsonAtomic } from '../checkpoint/atomic';
import type { RunStatus } from '../checkpoint/run-folder';
import { readRunStatus } from '../checkpoint/run-reader';
import type { FinishedMessage, WorkerMessage } from '../../protocol/worker';
import { hasEnded, Scheduler, SlurmError, type JobState } from './scheduler';

/** Seconds before the time limit at which a task is told (USR1) to checkpoint and requeue itself. */
export const GRACE_SECONDS = 90;
/** Exit codes of the batch script's own checks, before the worker starts. */
export const EXIT_NO_WORKSPACE = 3;
export const EXIT_NO_NODE = 4;
const JOB_FOLDER = '.slurm';

export interface JobPoint {
  index: number;
  name: string;
  config: AnyResolvedConfig;
}

export interface SlurmJobSpec {
  version: 1;
  kind: 'train' | 'sweep';
  /** The job's name in squeue: `peft-lab:<config or sweep>`. */
  name: string;
  configFile: string;
  /** The folder every task starts in (the config's). */
  workdir: string;
  sweepId?: string;
  points: JobPoint[];
  backend?: string;
  options: SlurmOptions;
  /** How a task starts the CLI on a node: node, its flags, the CLI script; `slurm-task <job folder>` follows. */
  command: string[];
  /** Points that train at once (the array's `%K`). */
  concurrency: number;
  submitted?: string;
  jobId?: string;
}

/** Where a task's run is, written once its run folder exists. */
export interface TaskRecord {
  runDir: string;
  jobId?: string;
  node?: string;
}

/** In a Slurm run's folder: which job trains it and where its log is (also tells the editor the run is a cluster run). */
export interface RunSlurmInfo {
  jobDir: string;
  jobId: string;
  taskId?: number;
  node?: string;
  log: string;
}

export interface SubmitRequest {
  kind: 'train' | 'sweep';
  configFile: string;
  sweepId?: string;
  points: JobPoint[];
  /** The runs folder (every point's output.runsDir, or the peftLab.runsDirectory override). */
  runsDir: string;
  backend?: string;
  options: SlurmOptions;
  /** How to start the CLI here; the first element is replaced by options.nodePath when set. */
  command: string[];
  concurrency: number;
  now?: Date;
}

export interface SubmittedJob {
  jobId: string;
  jobDir: string;
  spec: SlurmJobSpec;
}

/** Writes the job folder, submits it, and records the job id; on a refusal nothing is left behind. */
export async function submitJob(request: SubmitRequest, scheduler = new Scheduler()): Promise<SubmittedJob> {
  if (!request.points.length) throw new SlurmError('sbatch', 'nothing to submit (no points)');
  if (!(await scheduler.available())) {
    throw new SlurmError(
      'sbatch',
      'not found on PATH',
      'Run PEFT Lab on a machine with the Slurm client tools (a login node), or set peftLab.executor to local',
    );
  }
  const base =
    request.points.length === 1 && request.kind === 'train'
      ? request.points[0]!.name
      : (request.sweepId ?? request.points[0]!.name);
  const command = request.options.nodePath ? [request.options.nodePath, ...request.command.slice(1)] : request.command;
  const spec: SlurmJobSpec = {
    version: 1,
    kind: request.kind,
    name: `peft-lab:${safeName(base)}`,
    configFile: request.configFile,
    workdir: path.dirname(request.configFile),
    sweepId: request.sweepId,
    points: request.points,
    backend: request.backend,
    options: request.options,
    command,
    concurrency: Math.max(1, request.concurrency),
  };
  const root = path.join(request.runsDir, JOB_FOLDER);
  // a sweep id already carries the time it was planned
  const jobDir = uniqueFolder(
    root,
    request.sweepId ? safeName(request.sweepId) : `${safeName(base)}-${stamp(request.now ?? new Date())}`,
  );
  const staging = `${jobDir}.tmp-${process.pid}`;
  fs.mkdirSync(path.join(staging, 'logs'), { recursive: true });
  fs.mkdirSync(path.join(staging, 'tasks'), { recursive: true });
  writeJsonAtomic(path.join(staging, 'job.json'), spec);
  fs.writeFileSync(path.join(staging, 'job.sh'), batchScript(spec, jobDir), { mode: 0o755 });
  fs.renameSync(staging, jobDir);
  let jobId: string;
  try {
    jobId = await scheduler.submit(path.join(jobDir, 'job.sh'), spec.workdir);
  } catch (err) {
    fs.rmSync(jobDir, { recursive: true, force: true });
    throw err;
  }
  const submitted = { ...spec, jobId, submitted: new Date().toISOString() };
  writeJsonAtomic(path.join(jobDir, 'job.json'), submitted);
  return { jobId, jobDir, spec: submitted };
}

/** The batch script of a job: its #SBATCH lines, then checks that name what a node lacks, then the worker. */
export function batchScript(spec: SlurmJobSpec, jobDir: string): string {
  const o = spec.options;
  const array = spec.kind === 'sweep';
  const directives = [
    `--job-name=${spec.name}`,
    `--output=${sbatchValue(path.join(jobDir, 'logs', array ? '%A_%a.out' : '%j.out'))}`,
    // a requeued task appends to its log instead of truncating it
    '--open-mode=append',
    '--requeue',
    `--signal=B:USR1@${GRACE_SECONDS}`,
    ...(array ? [`--array=0-${spec.points.length - 1}%${spec.concurrency}`] : []),
    ...(o.partition ? [`--partition=${o.partition}`] : []),
    ...(o.time ? [`--time=${o.time}`] : []),
    `--cpus-per-task=${o.cpusPerTask ?? 1}`,
    ...(o.mem ? [`--mem=${o.mem}`] : []),
    ...(o.gres ? [`--gres=${o.gres}`] : []),
    ...(o.account ? [`--account=${o.account}`] : []),
    ...(o.qos ? [`--qos=${o.qos}`] : []),
    ...(o.extraDirectives ?? []).map(extraDirective),
  ];
  const [node, ...args] = spec.command;
  const script = args[args.length - 1]!;
  return [
    '#!/bin/bash',
    ...directives.map((d) => `#SBATCH ${d}`),
    `# Written by PEFT Lab for ${spec.configFile}. Each task trains one point of job.json into a run folder;`,
    '# exit 3: this node cannot see the workspace, exit 4: no Node.js here (the editor names both).',
    `JOB_DIR=${shellQuote(jobDir)}`,
    `NODE=${shellQuote(node!)}`,
    `if [ ! -r "$JOB_DIR/job.json" ] || [ ! -r ${shellQuote(script)} ]; then`,
    `  echo "peft-lab: node $(hostname) cannot see $JOB_DIR or ${script.replace(/["$`\\]/g, '\\$&')}: the workspace and PEFT Lab must be on a file system the compute nodes share" >&2`,
    `  exit ${EXIT_NO_WORKSPACE}`,
    'fi',
    `cd ${shellQuote(spec.workdir)} || exit ${EXIT_NO_WORKSPACE}`,
    'if ! command -v "$NODE" >/dev/null 2>&1; then',
    '  echo "peft-lab: Node.js ($NODE) not found on node $(hostname): set peftLab.slurm.nodePath to a Node.js 20+ the nodes can run" >&2',
    `  exit ${EXIT_NO_NODE}`,
    'fi',
    // exec: the batch shell becomes the worker, so Slurm's signals (B:USR1, TERM) reach it directly
    `exec "$NODE" ${args.map(shellQuote).join(' ')} slurm-task "$JOB_DIR"`,
    '',
  ].join('\n');
}

/** sbatch reads #SBATCH values up to whitespace unless they are double-quoted. */
function sbatchValue(value: string): string {
  return /\s/.test(value) ? `"${value}"` : value;
}

function extraDirective(line: string): string {
  const text = line.trim().replace(/^#SBATCH\s+/, '');
  if (!text.startsWith('-') || /[\n\r]/.test(text))
    throw new SlurmError('sbatch', `extra directive '${line}' is not an sbatch option such as --constraint=a100`);
  return text;
}

export function readJobSpec(jobDir: string): SlurmJobSpec {
  return readJsonFile(path.join(jobDir, 'job.json'), 'Slurm job') as SlurmJobSpec;
}

export function taskRecordFile(jobDir: string, index: number): string {
  return path.join(jobDir, 'tasks', `${index}.json`);
}

export function readTaskRecord(jobDir: string, index: number): TaskRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(taskRecordFile(jobDir, index), 'utf8')) as TaskRecord;
  } catch {
    return undefined;
  }
}

export function writeTaskRecord(jobDir: string, index: number, record: TaskRecord): void {
  writeJsonAtomic(taskRecordFile(jobDir, index), record);
}

/** Slurm's log of one task (the file its --output pattern names). */
export function taskLog(spec: SlurmJobSpec, jobDir: string, index: number): string {
  return path.join(jobDir, 'logs', spec.kind === 'sweep' ? `${spec.jobId}_${index}.out` : `${spec.jobId}.out`);
}

/** The run folder's slurm.json, when a Slurm job trains (or trained) it. */
export function readRunSlurmInfo(runDir: string): RunSlurmInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(runDir, 'slurm.json'), 'utf8')) as RunSlurmInfo;
  } catch {
    return undefined;
  }
}

/** How one task ended, from Slurm's final state, its record and its run folder's status. */
export type TaskOutcome =
  { kind: 'finished'; runDir: string; status: RunStatus } | { kind: 'failed'; runDir?: string; message: string };

/** The outcome of a task whose job has ended (or Slurm no longer knows); undefined while it may still run. */
export function taskOutcome(
  spec: SlurmJobSpec,
  jobDir: string,
  index: number,
  state: JobState | undefined,
): TaskOutcome | undefined {
  if (state && !hasEnded(state.state)) return undefined;
  const record = readTaskRecord(jobDir, index);
  const status = record ? readRunStatus(record.runDir) : undefined;
  const log = taskLog(spec, jobDir, index);
  if (status && (status.state === 'finished' || status.state === 'stopped')) {
    return { kind: 'finished', runDir: record!.runDir, status };
  }
  if (status?.state === 'failed')
    return { kind: 'failed', runDir: record!.runDir, message: status.error?.message ?? 'training failed' };
  return { kind: 'failed', runDir: record?.runDir, message: describeFailure(state, log, record !== undefined) };
}

/** A task that ended without its run saying so: what Slurm and the log tell, as a user can act on it. */
export function describeFailure(state: JobState | undefined, log: string, started: boolean): string {
  const node = state?.node ? ` on node ${state.node}` : '';
  const exit = Number(state?.exitCode?.split(':')[0]);
  const tail = lastLines(log);
  const withLog = (text: string) =>
    `${text}${tail.length ? `; the job's log (${log}) ends:\n${tail.join('\n')}` : ` (log: ${log})`}`;
  if (exit === EXIT_NO_WORKSPACE)
    return withLog(
      `the job${node} cannot see the workspace: the compute nodes must share its file system (e.g. a shared home)`,
    );
  if (exit === EXIT_NO_NODE)
    return withLog(
      `Node.js was not found${node}: set peftLab.slurm.nodePath (or slurm.nodePath in the config) to a Node.js 20+ the nodes can run`,
    );
  if (!state)
    return withLog(
      started
        ? 'Slurm no longer knows the job and its run did not finish'
        : 'Slurm no longer knows the job and it never started',
    );
  if (!fs.existsSync(log) && !started) {
    return `the job${node} ended (${state.state}) before writing its log ${log}: the node probably cannot see the workspace (it must be on a file system the compute nodes share)`;
  }
  const why: Record<string, string> = {
    CANCELLED: 'was cancelled',
    TIMEOUT: 'hit its time limit before a checkpoint (raise peftLab.slurm.time)',
    NODE_FAIL: 'lost its node',
    OUT_OF_MEMORY: 'ran out of memory (raise peftLab.slurm.mem)',
    PREEMPTED: 'was preempted and not requeued',
    BOOT_FAIL: 'could not boot its node',
    DEADLINE: 'missed its deadline',
    FAILED: `failed (exit code ${state.exitCode ?? '?'})`,
    COMPLETED: 'ended before its run finished',
  };
  return withLog(`the job${node} ${why[state.state] ?? `ended as ${state.state}`}`);
}

/** The state of one task: its own line, or the array's pending line that still holds it. */
export function stateOf(states: readonly JobState[], spec: SlurmJobSpec, index: number): JobState | undefined {
  if (spec.kind !== 'sweep') return states.find((s) => s.jobId === spec.jobId);
  return (
    states.find((s) => s.jobId === spec.jobId && s.taskId === index) ??
    states.find((s) => s.jobId === spec.jobId && s.taskId === undefined && !hasEnded(s.state))
  );
}

/** `pending (Priority)`, `running on node12`: Slurm's view in a few words. */
export function describeState(state: JobState): string {
  const name = state.state.toLowerCase().replace(/_/g, ' ');
  if (state.state === 'PENDING') return state.reason ? `pending (${state.reason})` : 'pending';
  if (state.state === 'RUNNING' && state.node) return `running on ${state.node}`;
  return name;
}

/** A task's outcome as the worker message a local run would have ended with. */
export function messageOf(outcome: TaskOutcome): FinishedMessage | Extract<WorkerMessage, { type: 'failed' }> {
  if (outcome.kind === 'failed')
    return { type: 'failed', runDir: outcome.runDir, error: { name: 'SlurmJobError', message: outcome.message } };
  const s = outcome.status;
  return {
    type: 'finished',
    runDir: outcome.runDir,
    state: s.state === 'finished' ? 'finished' : 'stopped',
    reason: s.reason as FinishedMessage['reason'],
    bestCheckpoint: s.bestCheckpoint,
    bestMetrics: s.bestMetrics,
    durationMs: s.ended ? Date.parse(s.ended) - Date.parse(s.started) : 0,
  };
}

function lastLines(file: string, count = 8): string[] {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').filter(Boolean).slice(-count);
  } catch {
    return [];
  }
}

function uniqueFolder(root: string, name: string): string {
  let dir = path.join(root, name);
  for (let n = 2; fs.existsSync(dir); n++) dir = path.join(root, `${name}-${n}`);
  return dir;
}

function stamp(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '')
    .replace('T', '-');
}

function safeName(name: string): string {
  return name.replace(/[^\w.=+-]+/g, '_').slice(0, 100);
}

/** Single-quotes a word for bash. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
