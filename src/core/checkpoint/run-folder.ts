/**
 * A run on disk:
 *   runs/<name>-<timestamp>/
 *     config.json        the resolved config the run used
 *     status.json        state, backend, pid, progress, error
 *     metrics.jsonl      one line per logged step and per evaluation
 *     placement.json     every adapter site with shapes and parameter counts
 *     checkpoints/step-N/
 *       weights.safetensors    trainable weights (adapters, LayerNorms, head) in Hugging Face layout
 *       optimizer.safetensors  AdamW moments, for resume
 *       checkpoint.json        step, metrics, labels, trainer state (RNG, best metric, routing counts)
 *     best               names the best checkpoint folder
 *     run.lock           while a process writes the run: who (see run-lock.ts)
 * Every file is written under a temporary name and renamed, and a checkpoint folder is assembled
 * under a temporary name too, so a killed run never leaves a half-written checkpoint. A checkpoint
 * is deleted by renaming it to a temporary name first, so a kill while deleting leaves litter that
 * `cleanLitter` recognises, never a half-deleted `step-N`. A write the disk refuses is a DiskError
 * naming the file and what was being written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AnyResolvedConfig, ResolvedConfig } from '../config/types';
import type { Placement } from '../../protocol/worker';
import { isBrokenLine, metricsLineText, parseMetricsLine, type MetricsLineInput } from '../../protocol/metrics';
import { appendLine, isTempFile, readJsonFile, writeFileAtomic, writeJsonAtomic } from './atomic';
import { randomBytes } from 'node:crypto';
import { readSafetensors, toFloat32, writeSafetensors, type TensorToWrite } from './safetensors';
import { CheckpointError, DiskError } from '../errors';
import type { WeightMap } from '../model/bert-config';

export type RunState = 'running' | 'finished' | 'failed' | 'stopped';

export interface RunStatus {
  state: RunState;
  name: string;
  method: string;
  configFile: string;
  backend?: string;
  pid: number;
  started: string;
  ended?: string;
  step: number;
  totalSteps: number;
  bestCheckpoint?: string;
  bestMetrics?: Record<string, number>;
  error?: { name: string; message: string };
  reason?: string;
  /** Computation-changing config edits a resume was allowed to make (--allow-config-change), oldest first. */
  configChanges?: ConfigChangeRecord[];
}

/** One resume that continued with a config differing from the run's own. */
export interface ConfigChangeRecord {
  /** The step training continued from. */
  step: number;
  at: string;
  changes: { path: string; from: unknown; to: unknown }[];
}

export interface TrainerState {
  step: number;
  epoch: number;
  rng: [number, number, number, number];
  bestMetric?: number;
  bestStep?: number;
  evalsWithoutImprovement: number;
  routing: Record<string, { down: number[]; up: number[] }>;
  optimizerSteps: Record<string, number>;
  /** Rows per forward/backward pass that the memory plan chose (absent: training.microBatchSize or the whole batch). */
  microBatchSize?: number;
}

export interface CheckpointInfo {
  step: number;
  epoch: number;
  method: string;
  labelNames: string[];
  metrics?: Record<string, number>;
  trainer: TrainerState;
  created: string;
}

export const CHECKPOINTS_DIR = 'checkpoints';

/** Staged checkpoint folders (`step-N.tmp-<pid>`) and checkpoints being deleted (`step-N.tmp-<pid>-<hex>`). */
const STAGED_OR_TRASH = /^step-\d+\.tmp-\d+(-[0-9a-f]{8})?$/;

export class RunFolder {
  /** Kept in status.json across rewrites once a resume records a config change. */
  private configChanges: ConfigChangeRecord[] = [];
  /** Throws when this process may no longer write the run (its lock was taken over); see `guardWrites`. */
  private writerCheck?: () => void;

  private constructor(readonly dir: string) {}

  /**
   * Creates `<runsDir>/<name>-<UTC timestamp>`, adding a counter if that exists already. The
   * folder itself is made without `recursive`, so two runs started in the same second never share it.
   */
  static create(config: AnyResolvedConfig, now = new Date()): RunFolder {
    const stamp = now
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, '')
      .replace('T', '-');
    const base = path.join(config.output.runsDir, `${config.name}-${stamp}`);
    onDisk(config.output.runsDir, 'the runs folder', () => fs.mkdirSync(config.output.runsDir, { recursive: true }));
    for (let n = 1; ; n++) {
      const dir = n === 1 ? base : `${base}-${n}`;
      try {
        fs.mkdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw DiskError.from(err, dir, 'the run folder') ?? err;
      }
      onDisk(dir, 'the run folder', () => fs.mkdirSync(path.join(dir, CHECKPOINTS_DIR)));
      return new RunFolder(dir);
    }
  }

  static open(dir: string): RunFolder {
    if (!fs.existsSync(path.join(dir, 'config.json')))
      throw new CheckpointError(dir, 'is not a PEFT Lab run folder (no config.json)');
    const run = new RunFolder(dir);
    try {
      run.configChanges = run.readStatus().configChanges ?? [];
    } catch {
      // no status yet (or a broken one): nothing recorded to keep
    }
    return run;
  }

  get id(): string {
    return path.basename(this.dir);
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  writeConfig(config: AnyResolvedConfig): void {
    onDisk(this.file('config.json'), 'the run config', () => writeJsonAtomic(this.file('config.json'), config));
  }

  readConfig(): ResolvedConfig {
    return readJsonFile(this.file('config.json'), 'run config') as ResolvedConfig;
  }

  /** Writes status.json; its paths are stored relative to the run folder (see statusForDisk). */
  writeStatus(status: RunStatus): void {
    const recorded = statusForDisk(
      this.dir,
      this.configChanges.length ? { ...status, configChanges: this.configChanges } : status,
    );
    onDisk(this.file('status.json'), 'the run status', () => {
      try {
        writeJsonAtomic(this.file('status.json'), recorded);
      } catch (err) {
        // On a full disk the temporary copy finds no room; overwriting the small file in place
        // still can, and a status that says why the run failed beats an atomic one that says nothing.
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'ENOSPC' && code !== 'EDQUOT') || !fs.existsSync(this.file('status.json'))) throw err;
        fs.writeFileSync(this.file('status.json'), `${JSON.stringify(recorded, null, 2)}\n`);
      }
    });
  }

  /**
   * Checked before each checkpoint: a writer whose lock another process has taken over (it judged
   * the lock stale) stops instead of writing beside the new holder.
   */
  guardWrites(check: () => void): void {
    this.writerCheck = check;
  }

  /** Records a config change a resume was allowed to make; every later status.json carries it. */
  recordConfigChange(record: ConfigChangeRecord): void {
    this.configChanges.push(record);
  }

  /** status.json with its paths absolute again (also reads the absolute paths older runs wrote). */
  readStatus(): RunStatus {
    return statusFromDisk(this.dir, readJsonFile(this.file('status.json'), 'run status') as RunStatus);
  }

  writePlacement(placement: Placement): void {
    onDisk(this.file('placement.json'), 'the adapter placement', () =>
      writeJsonAtomic(this.file('placement.json'), placement),
    );
  }

  logMetrics(line: MetricsLineInput): void {
    onDisk(this.file('metrics.jsonl'), 'the metrics log', () =>
      appendLine(this.file('metrics.jsonl'), metricsLineText(line)),
    );
  }

  /** Drops the metric lines after `step`: a resume would log them again. */
  dropMetricsAfter(step: number): void {
    const file = this.file('metrics.jsonl');
    if (!fs.existsSync(file)) return;
    const kept = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => {
        if (!line.trim()) return false;
        const record = parseMetricsLine(line);
        return !isBrokenLine(record) && record.step <= step;
      });
    onDisk(file, 'the metrics log', () => writeFileAtomic(file, kept.map((l) => `${l}\n`).join('')));
  }

  /**
   * Removes what an interrupted writer left: temporary files (`*.tmp-*`), staged checkpoint folders,
   * checkpoints caught half-deleted, and checkpoint folders without checkpoint.json. Call it only
   * while holding the run's lock. Returns the removed paths, relative to the run folder.
   */
  cleanLitter(): string[] {
    const removed: string[] = [];
    const remove = (full: string) => {
      fs.rmSync(full, { recursive: true, force: true });
      removed.push(path.relative(this.dir, full));
    };
    for (const name of fs.readdirSync(this.dir)) {
      if (isTempFile(name) || /\.tmp-\d+$/.test(name) || /^run\.lock\.stale-/.test(name)) remove(this.file(name));
    }
    const root = path.join(this.dir, CHECKPOINTS_DIR);
    if (!fs.existsSync(root)) return removed;
    for (const entry of fs.readdirSync(root, { withFileTypes: true })) {
      const full = path.join(root, entry.name);
      if (STAGED_OR_TRASH.test(entry.name)) remove(full);
      else if (
        entry.isDirectory() &&
        /^step-\d+$/.test(entry.name) &&
        !fs.existsSync(path.join(full, 'checkpoint.json'))
      )
        remove(full);
      else if (entry.isDirectory() && /^step-\d+$/.test(entry.name)) {
        for (const name of fs.readdirSync(full)) if (isTempFile(name)) remove(path.join(full, name));
      }
    }
    return removed;
  }

  checkpointDir(step: number): string {
    return path.join(this.dir, CHECKPOINTS_DIR, `step-${step}`);
  }

  /** Steps of complete checkpoints, ascending. A folder without checkpoint.json is incomplete. */
  checkpointSteps(): number[] {
    const root = path.join(this.dir, CHECKPOINTS_DIR);
    if (!fs.existsSync(root)) return [];
    return fs
      .readdirSync(root)
      .map((name) => /^step-(\d+)$/.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .filter((step) => fs.existsSync(path.join(this.checkpointDir(step), 'checkpoint.json')))
      .sort((a, b) => a - b);
  }

  /**
   * Writes a complete checkpoint folder atomically (assembled aside, then renamed into place). A
   * failed write removes what it staged, so a full disk does not fill up further with each retry.
   */
  saveCheckpoint(info: CheckpointInfo, weights: WeightMap, optimizer: WeightMap): string {
    this.writerCheck?.();
    const final = this.checkpointDir(info.step);
    const staging = `${final}.tmp-${process.pid}`;
    onDisk(final, `checkpoint step-${info.step}`, () => {
      try {
        fs.rmSync(staging, { recursive: true, force: true });
        fs.mkdirSync(staging, { recursive: true });
        writeSafetensors(path.join(staging, 'weights.safetensors'), toWritable(weights), {
          format: 'pt',
          method: info.method,
        });
        writeSafetensors(path.join(staging, 'optimizer.safetensors'), toWritable(optimizer), {
          format: 'peft-lab-adamw',
        });
        writeJsonAtomic(path.join(staging, 'checkpoint.json'), info);
        if (fs.existsSync(final)) this.removeCheckpoint(info.step);
        fs.renameSync(staging, final);
      } catch (err) {
        fs.rmSync(staging, { recursive: true, force: true });
        throw err;
      }
    });
    return final;
  }

  /** Deletes a checkpoint crash-safely: renamed to a temporary name first, then removed. */
  removeCheckpoint(step: number): void {
    const dir = this.checkpointDir(step);
    const trash = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      fs.renameSync(dir, trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    fs.rmSync(trash, { recursive: true, force: true });
  }

  markBest(step: number): void {
    onDisk(this.file('best'), 'the best-checkpoint marker', () => writeFileAtomic(this.file('best'), `step-${step}\n`));
  }

  bestStep(): number | undefined {
    const file = this.file('best');
    if (!fs.existsSync(file)) return undefined;
    const match = /^step-(\d+)/.exec(fs.readFileSync(file, 'utf8').trim());
    return match ? Number(match[1]) : undefined;
  }

  /**
   * Rewinds the folder to `step`: later checkpoints go, and `best` names the best checkpoint as of
   * that step (or nothing), so a resume from an older checkpoint leaves no trace of what followed it.
   */
  discardCheckpointsAfter(step: number, bestStep: number | undefined): void {
    for (const later of this.checkpointSteps().filter((s) => s > step)) this.removeCheckpoint(later);
    if (bestStep !== undefined && this.checkpointSteps().includes(bestStep)) this.markBest(bestStep);
    else fs.rmSync(this.file('best'), { force: true });
  }

  /** Keeps the newest `keep` checkpoints and the best one; deletes the others. */
  pruneCheckpoints(keep: number): void {
    const steps = this.checkpointSteps();
    const best = this.bestStep();
    const kept = new Set(steps.slice(-Math.max(1, keep)));
    if (best !== undefined) kept.add(best);
    for (const step of steps) if (!kept.has(step)) this.removeCheckpoint(step);
  }
}

export function readCheckpoint(dir: string): { info: CheckpointInfo; weights: WeightMap; optimizer: WeightMap } {
  const infoFile = path.join(dir, 'checkpoint.json');
  if (!fs.existsSync(infoFile)) throw new CheckpointError(dir, 'is not a complete checkpoint (no checkpoint.json)');
  const info = readJsonFile(infoFile, 'checkpoint') as CheckpointInfo;
  const weights = readWeightMap(path.join(dir, 'weights.safetensors'));
  const optimizerFile = path.join(dir, 'optimizer.safetensors');
  const optimizer = fs.existsSync(optimizerFile) ? readWeightMap(optimizerFile) : new Map();
  return { info, weights, optimizer };
}

export function readWeightMap(file: string): WeightMap {
  const out: WeightMap = new Map();
  for (const [name, t] of readSafetensors(file).tensors) out.set(name, { shape: t.shape, data: toFloat32(t) });
  return out;
}

/** The run folder that holds a checkpoint folder (`<run>/checkpoints/step-N`). */
/**
 * A path as stored in a file of the run folder: relative to the run folder, so a run folder copied
 * to another place or machine (or seen under another mount point) still names its own checkpoints.
 */
export function pathInRun(runDir: string, file: string): string {
  return path.relative(runDir, path.resolve(runDir, file)) || '.';
}

/** A path read from a file of the run folder, absolute: relative ones against the run folder; absolute ones (older runs) as they are. */
export function resolveInRun(runDir: string, stored: string): string {
  return path.resolve(runDir, stored);
}

/** status.json as written: `configFile` and `bestCheckpoint` relative to the run folder. */
export function statusForDisk(runDir: string, status: RunStatus): RunStatus {
  const dir = path.resolve(runDir);
  return {
    ...status,
    ...(status.configFile && { configFile: pathInRun(dir, status.configFile) }),
    ...(status.bestCheckpoint && { bestCheckpoint: pathInRun(dir, status.bestCheckpoint) }),
  };
}

/** status.json as read (any reader): `configFile` and `bestCheckpoint` absolute again, whichever form was written. */
export function statusFromDisk<S extends { configFile?: unknown; bestCheckpoint?: unknown }>(
  runDir: string,
  status: S,
): S {
  if (typeof status !== 'object' || status === null) return status;
  const dir = path.resolve(runDir);
  const resolve = (v: unknown) => (typeof v === 'string' && v !== '' ? resolveInRun(dir, v) : v);
  return {
    ...status,
    ...('configFile' in status && { configFile: resolve(status.configFile) }),
    ...('bestCheckpoint' in status && { bestCheckpoint: resolve(status.bestCheckpoint) }),
  };
}

export function runDirOfCheckpoint(checkpointDir: string): string {
  return path.dirname(path.dirname(path.resolve(checkpointDir)));
}

/** Runs a write, turning a disk failure into a DiskError naming `file` and `what`. */
export function onDisk<T>(file: string, what: string, write: () => T): T {
  try {
    return write();
  } catch (err) {
    throw DiskError.from(err, file, what) ?? err;
  }
}

function toWritable(weights: WeightMap): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, w] of weights) out[name] = { dtype: 'F32', shape: w.shape, data: w.data };
  return out;
}
