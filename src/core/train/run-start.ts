/**
 * How a run gets its folder, before its first step: a new run makes a fresh folder and locks it; a
 * resume locks the existing one, refuses a finished run, clears what an interrupted writer left, and
 * checks the config it was given against the run's own.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AnyResolvedConfig } from '../config/types';
import { CheckpointError, ConfigError, DiskError, RunFinishedError } from '../errors';
import { RunFolder, onDisk, runDirOfCheckpoint, type RunStatus } from '../checkpoint/run-folder';
import { acquireRunLock, type RunLock } from '../checkpoint/run-lock';
import type { WorkerMessage } from '../../protocol/worker';

export type RunCommand = 'train' | 'pretrain';

/** Config fields that change neither the numbers a run computes nor its steps. */
const NON_COMPUTING_FIELDS = [
  '/name',
  '/sourceFile',
  '/output',
  '/sweep',
  '/sweepPoint',
  '/slurm',
  '/model/cacheDir',
  '/training/backend',
  '/training/logEvery',
  '/training/keepCheckpoints',
  '/training/microBatchSize',
];

export interface ConfigChange {
  /** JSON pointer, e.g. /training/learningRate */
  path: string;
  from: unknown;
  to: unknown;
}

/** The fields (as JSON pointers) where `given` computes something else than `stored`. */
export function computingChanges(stored: AnyResolvedConfig, given: AnyResolvedConfig): ConfigChange[] {
  const changes: ConfigChange[] = [];
  const walk = (a: unknown, b: unknown, pointer: string) => {
    if (NON_COMPUTING_FIELDS.includes(pointer)) return;
    if (isPlainObject(a) && isPlainObject(b)) {
      for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) walk(a[key], b[key], `${pointer}/${key}`);
      return;
    }
    if (JSON.stringify(a) !== JSON.stringify(b)) changes.push({ path: pointer, from: a, to: b });
  };
  // through JSON: the stored config went through it, so an undefined field is an absent one in both
  walk(JSON.parse(JSON.stringify(stored)), JSON.parse(JSON.stringify(given)), '');
  return changes;
}

/**
 * What a resume of `runDir` with `configFile` would find changed (read-only; empty when the file is
 * gone, does not load, or the run is a sweep point's), for an editor to ask before it resumes.
 */
export function pendingConfigChanges(
  runDir: string,
  configFile: string,
  load: (file: string) => AnyResolvedConfig,
): ConfigChange[] {
  try {
    const stored = RunFolder.open(runDir).readConfig() as AnyResolvedConfig;
    if (('sweepPoint' in stored && stored.sweepPoint) || !fs.existsSync(configFile)) return [];
    return computingChanges(stored, load(configFile));
  } catch {
    return []; // the resume itself reports what is wrong
  }
}

/** `/training/learningRate 0.001 -> 0.01, ...` */
export function describeConfigChanges(changes: readonly ConfigChange[]): string {
  return changes.map((c) => `${c.path} ${show(c.from)} -> ${show(c.to)}`).join(', ');
}

export interface ResumeOpening {
  run: RunFolder;
  checkpoint: string;
  /** The config to continue with: the run's own, or the given one when changes were allowed. */
  config: AnyResolvedConfig;
  lock: RunLock;
}

export interface ResumeRequest {
  /** The run folder, or one of its checkpoint folders to rewind to. */
  target: string;
  /** The config file the user named; compared with the run's own config.json when it exists. */
  configFile?: string;
  command: RunCommand;
  load: (file: string) => AnyResolvedConfig;
  allowConfigChange?: boolean;
  emit: (message: WorkerMessage) => void;
}

/** Locks a run folder for a resume and makes it ready; throws RunLockedError, RunFinishedError or ConfigError. */
export function openForResume(request: ResumeRequest): ResumeOpening {
  const explicit = fs.existsSync(path.join(request.target, 'checkpoint.json'));
  const run = RunFolder.open(explicit ? runDirOfCheckpoint(request.target) : request.target);
  const stored = storedConfig(run, request.command);
  if (!explicit) refuseFinished(run);
  const lock = onDisk(run.file('run.lock'), 'the run lock', () => acquireRunLock(run.dir, 'resume'));
  try {
    const removed = onDisk(run.dir, 'the run folder (clearing leftovers)', () => run.cleanLitter());
    if (removed.length) {
      request.emit({
        type: 'log',
        level: 'info',
        message: `removed what an interrupted writer left in ${run.id}: ${removed.join(', ')}`,
      });
    }
    const checkpoint = explicit ? path.resolve(request.target) : lastCheckpoint(run);
    const config = configToResumeWith(run, stored, checkpoint, request);
    run.guardWrites(() => lock.assertHeld());
    return { run, checkpoint, config, lock };
  } catch (err) {
    lock.release();
    throw err;
  }
}

export interface FreshRun {
  folder: RunFolder;
  lock: RunLock;
}

/** A new run folder, locked; nothing is left behind when it cannot be made. */
export function createRun(config: AnyResolvedConfig, command: RunCommand): FreshRun {
  const folder = RunFolder.create(config);
  try {
    const lock = onDisk(folder.file('run.lock'), 'the run lock', () => acquireRunLock(folder.dir, command));
    folder.guardWrites(() => lock.assertHeld());
    return { folder, lock };
  } catch (err) {
    fs.rmSync(folder.dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * A new run that failed on a disk error before its first checkpoint holds nothing worth keeping: the
 * folder goes, so a full disk leaves no half-made run behind (the error names the path).
 */
export function discardIfNeverStarted(folder: RunFolder, err: unknown): boolean {
  if (!(err instanceof DiskError) || folder.checkpointSteps().length > 0) return false;
  fs.rmSync(folder.dir, { recursive: true, force: true });
  return true;
}

/** The config a run folder stores; a run of the other kind is a CheckpointError naming the right command. */
export function storedConfig(run: RunFolder, command: RunCommand): AnyResolvedConfig {
  const config = run.readConfig() as AnyResolvedConfig;
  const pretraining = 'pretrain' in config;
  if (pretraining !== (command === 'pretrain')) {
    throw new CheckpointError(
      run.dir,
      `is a ${pretraining ? 'pretraining' : 'fine-tuning'} run: use 'peft-lab ${pretraining ? 'pretrain' : 'train'}' with it`,
    );
  }
  return config;
}

function refuseFinished(run: RunFolder): void {
  let status: RunStatus;
  try {
    status = run.readStatus();
  } catch {
    return; // no readable status: the checkpoints decide
  }
  if (status.state !== 'finished') return;
  const steps = run.checkpointSteps();
  const earlier = steps.length ? ` (--resume ${run.checkpointDir(steps[0]!)})` : '';
  throw new RunFinishedError(
    run.dir,
    `the run is already finished (step ${status.step} of ${status.totalSteps}${status.reason === 'early-stopping' ? ', stopped early' : ''}${status.ended ? `, ${status.ended}` : ''}); nothing to resume, nothing written. ` +
      `To continue from an earlier point, resume one of its checkpoint folders${earlier}; to train again, start a new run`,
  );
}

function lastCheckpoint(run: RunFolder): string {
  const steps = run.checkpointSteps();
  if (!steps.length) throw new CheckpointError(run.dir, 'has no complete checkpoint to resume from');
  return run.checkpointDir(steps[steps.length - 1]!);
}

function configToResumeWith(
  run: RunFolder,
  stored: AnyResolvedConfig,
  checkpoint: string,
  request: ResumeRequest,
): AnyResolvedConfig {
  const file = request.configFile;
  if (!file || !fs.existsSync(file) || fs.statSync(file).isDirectory()) return stored;
  if ('sweepPoint' in stored && stored.sweepPoint) return stored; // a sweep point's config is its own, not the file's
  const given = request.load(file);
  const changes = computingChanges(stored, given);
  if (!changes.length) return stored;
  const list = describeConfigChanges(changes);
  if (!request.allowConfigChange) {
    throw new ConfigError(
      file,
      changes[0]!.path,
      `differs from the config run ${run.id} was trained with (its config.json) in ${changes.length === 1 ? 'a field that changes' : 'fields that change'} what it computes: ${list}. ` +
        'Put them back to resume, start a new run for the new values, or pass --allow-config-change to continue this run with them (recorded in its status.json)',
    );
  }
  const step = Number(/step-(\d+)$/.exec(checkpoint)?.[1] ?? NaN);
  run.recordConfigChange({ step, at: new Date().toISOString(), changes });
  request.emit({
    type: 'log',
    level: 'warn',
    message: `continuing ${run.id} from step ${step} with a changed config (recorded in status.json): ${list}`,
  });
  return given;
}

function show(value: unknown): string {
  return value === undefined ? '(unset)' : JSON.stringify(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
