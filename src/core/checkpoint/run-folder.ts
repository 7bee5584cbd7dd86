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
 * Every file is written under a temporary name and renamed, and a checkpoint folder is assembled
 * under a temporary name too, so a killed run never leaves a half-written checkpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AnyResolvedConfig, ResolvedConfig } from '../config/types';
import type { Placement } from '../../protocol/worker';
import { appendLine, readJsonFile, writeFileAtomic, writeJsonAtomic } from './atomic';
import { readSafetensors, toFloat32, writeSafetensors, type TensorToWrite } from './safetensors';
import { CheckpointError } from '../errors';
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

export class RunFolder {
  private constructor(readonly dir: string) {}

  /** Creates `<runsDir>/<name>-<UTC timestamp>`, adding a counter if that exists already. */
  static create(config: AnyResolvedConfig, now = new Date()): RunFolder {
    const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '').replace('T', '-');
    const base = path.join(config.output.runsDir, `${config.name}-${stamp}`);
    let dir = base;
    for (let n = 2; fs.existsSync(dir); n++) dir = `${base}-${n}`;
    fs.mkdirSync(path.join(dir, CHECKPOINTS_DIR), { recursive: true });
    return new RunFolder(dir);
  }

  static open(dir: string): RunFolder {
    if (!fs.existsSync(path.join(dir, 'config.json'))) throw new CheckpointError(dir, 'is not a PEFT Lab run folder (no config.json)');
    return new RunFolder(dir);
  }

  get id(): string {
    return path.basename(this.dir);
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  writeConfig(config: AnyResolvedConfig): void {
    writeJsonAtomic(this.file('config.json'), config);
  }

  readConfig(): ResolvedConfig {
    return readJsonFile(this.file('config.json'), 'run config') as ResolvedConfig;
  }

  writeStatus(status: RunStatus): void {
    writeJsonAtomic(this.file('status.json'), status);
  }

  readStatus(): RunStatus {
    return readJsonFile(this.file('status.json'), 'run status') as RunStatus;
  }

  writePlacement(placement: Placement): void {
    writeJsonAtomic(this.file('placement.json'), placement);
  }

  logMetrics(record: Record<string, unknown>): void {
    appendLine(this.file('metrics.jsonl'), JSON.stringify(record));
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

  /** Writes a complete checkpoint folder atomically (assembled aside, then renamed into place). */
  saveCheckpoint(info: CheckpointInfo, weights: WeightMap, optimizer: WeightMap): string {
    const final = this.checkpointDir(info.step);
    const staging = `${final}.tmp-${process.pid}`;
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { recursive: true });
    writeSafetensors(path.join(staging, 'weights.safetensors'), toWritable(weights), { format: 'pt', method: info.method });
    writeSafetensors(path.join(staging, 'optimizer.safetensors'), toWritable(optimizer), { format: 'peft-lab-adamw' });
    writeJsonAtomic(path.join(staging, 'checkpoint.json'), info);
    fs.rmSync(final, { recursive: true, force: true });
    fs.renameSync(staging, final);
    return final;
  }

  markBest(step: number): void {
    writeFileAtomic(this.file('best'), `step-${step}\n`);
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
    for (const later of this.checkpointSteps().filter((s) => s > step)) {
      fs.rmSync(this.checkpointDir(later), { recursive: true, force: true });
    }
    if (bestStep !== undefined && this.checkpointSteps().includes(bestStep)) this.markBest(bestStep);
    else fs.rmSync(this.file('best'), { force: true });
  }

  /** Keeps the newest `keep` checkpoints and the best one; deletes the others. */
  pruneCheckpoints(keep: number): void {
    const steps = this.checkpointSteps();
    const best = this.bestStep();
    const kept = new Set(steps.slice(-Math.max(1, keep)));
    if (best !== undefined) kept.add(best);
    for (const step of steps) if (!kept.has(step)) fs.rmSync(this.checkpointDir(step), { recursive: true, force: true });
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
export function runDirOfCheckpoint(checkpointDir: string): string {
  return path.dirname(path.dirname(path.resolve(checkpointDir)));
}

function toWritable(weights: WeightMap): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, w] of weights) out[name] = { dtype: 'F32', shape: w.shape, data: w.data };
  return out;
}
