/**
 * The training loop: AdamW with warm-up and decay, clipping, AdaMix routing and consistency,
 * evaluation, early stopping, checkpoints that resume to the same result, and typed messages.
 */
import { tf, type Tensor } from '../tf';
import type { BackendName, ResolvedConfig } from '../config/types';
import { loadConfig } from '../config/load';
import { selectBackend, type BackendChoice } from '../backend';
import { CancelledError, CheckpointError, ConfigError, DataError } from '../errors';
import { PeftModel } from '../model/peft-model';
import { makeBatches, type Batch, type EncodedExample } from '../data/batches';
import { Rng } from '../random';
import type { ExpertChoice } from '../adapters/adamix';
import type { ForwardContext } from '../adapters/method';
import {
  RunFolder, readCheckpoint, runDirOfCheckpoint, type CheckpointInfo, type RunStatus, type TrainerState,
} from '../checkpoint/run-folder';
import { writeJsonAtomic } from '../checkpoint/atomic';
import type { WeightMap } from '../model/bert-config';
import { computeMetrics, lowerIsBetter } from './metrics';
import { AdamW, clipByGlobalNorm, learningRateAt, type OptimizerState } from './optimizer';
import { loadBaseModel, loadDataset, type Dataset } from './session';
import type { EvaluatedMessage, FinishedMessage, Split, WorkerMessage } from '../../protocol/worker';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface TrainOptions {
  /** A run folder to continue from its last checkpoint. */
  resume?: string;
  /** Overrides the config's training.backend. */
  backend?: BackendName;
  /** Overrides the config's output.runsDir (ignored on resume: the run folder exists). */
  runsDir?: string;
  /** Aborting stops at the next step boundary after writing a checkpoint. */
  signal?: AbortSignal;
  /** started, progress, metrics, checkpoint and log messages; finished/failed are the promise's outcome. */
  onMessage?: (message: WorkerMessage) => void;
}

type Emit = (message: WorkerMessage) => void;

export async function train(configFile: string, options: TrainOptions = {}): Promise<FinishedMessage> {
  const emit: Emit = options.onMessage ?? (() => {});
  const run = options.resume ? RunFolder.open(options.resume) : undefined;
  const config = run ? run.readConfig() : loadConfig(configFile);
  if (!run && options.runsDir) config.output.runsDir = options.runsDir;
  const prepared = await prepare(config, options.backend, emit);
  const folder = run ?? RunFolder.create(config);
  const trainer = new Trainer(config, prepared, folder, emit, options.signal);
  try {
    return await trainer.train(run ? lastCheckpoint(run) : undefined);
  } catch (err) {
    trainer.recordFailure(err);
    throw err;
  } finally {
    trainer.dispose();
  }
}

interface Prepared {
  model: PeftModel;
  data: Dataset;
  backend: BackendChoice;
}

async function prepare(config: ResolvedConfig, backendOverride: BackendName | undefined, emit: Emit): Promise<Prepared> {
  const log = (message: string, level: 'info' | 'warn' = 'info') => emit({ type: 'log', level, message });
  const backend = await selectBackend(backendOverride ?? config.training.backend);
  const base = await loadBaseModel(config, log);
  for (const warning of base.warnings) log(warning, 'warn');
  const data = loadDataset(config, base.tokenizer);
  if (data.train.length === 0) throw new DataError(config.data.train, undefined, 'has no training examples');
  const outputs = config.task.type === 'regression' ? 1 : data.labelNames.length;
  if (config.task.type === 'classification' && outputs < 2) {
    throw new DataError(config.data.train, undefined, `classification needs at least 2 labels, found ${data.labelNames.join(', ') || 'none'}`);
  }
  const model = new PeftModel({
    bert: base.bert, base: base.weights, method: config.method, task: config.task.type,
    outputs, seed: config.training.seed, dropout: config.training.dropout,
  });
  return { model, data, backend };
}

function lastCheckpoint(run: RunFolder): string {
  const steps = run.checkpointSteps();
  if (!steps.length) throw new CheckpointError(run.dir, 'has no complete checkpoint to resume from');
  return run.checkpointDir(steps[steps.length - 1]!);
}

class Trainer {
  private readonly model: PeftModel;
  private readonly data: Dataset;
  private readonly optimizer: AdamW;
  private readonly stepsPerEpoch: number;
  private readonly totalSteps: number;
  private readonly warmupSteps: number;
  private readonly startedAt = new Date();
  private rng: Rng;
  private step = 0;
  private bestMetric?: number;
  private bestStep?: number;
  private evalsWithoutImprovement = 0;
  private lastCheckpointStep = -1;
  private window = { loss: 0, steps: 0, examples: 0, since: performance.now() };

  constructor(
    private readonly config: ResolvedConfig,
    private readonly prepared: Prepared,
    private readonly folder: RunFolder,
    private readonly emit: Emit,
    private readonly signal?: AbortSignal,
  ) {
    this.model = prepared.model;
    this.data = prepared.data;
    const t = config.training;
    this.optimizer = new AdamW({ weightDecay: t.weightDecay });
    this.stepsPerEpoch = Math.ceil(this.data.train.length / t.batchSize);
    this.totalSteps = t.maxSteps ?? t.epochs * this.stepsPerEpoch;
    this.warmupSteps = Math.round(t.warmupRatio * this.totalSteps);
    this.rng = new Rng(t.seed);
  }

  async train(resumeFrom?: string): Promise<FinishedMessage> {
    const resumedFromStep = resumeFrom ? this.restore(resumeFrom) : undefined;
    this.writeStart();
    this.emitStarted(resumedFromStep);
    while (this.step < this.totalSteps) {
      const stop = await this.runEpoch(Math.floor(this.step / this.stepsPerEpoch));
      // early stopping is a normal end of training; only a cancel leaves a run to resume
      if (stop) return this.finish(stop === 'early-stopping' ? 'finished' : 'stopped', stop);
    }
    if (this.lastCheckpointStep !== this.step) this.evaluateAndCheckpoint();
    return this.finish('finished');
  }

  /** Returns why training stopped early, or undefined when the epoch ran out. */
  private async runEpoch(epoch: number): Promise<'cancelled' | 'early-stopping' | undefined> {
    const batches = this.epochBatches(epoch);
    for (let i = this.step % this.stepsPerEpoch; i < batches.length && this.step < this.totalSteps; i++) {
      this.trainStep(batches[i]!, epoch);
      const endOfEpoch = i === batches.length - 1;
      if (this.evaluationDue(endOfEpoch) && this.evaluateAndCheckpoint()) return 'early-stopping';
      await yieldToEventLoop(); // lets a cancel request arrive between steps
      // After the last step there is nothing left to stop: finishing normally runs the final
      // evaluation, which a resume from a cancel checkpoint at totalSteps would never run.
      if (this.signal?.aborted && this.step < this.totalSteps) {
        if (this.lastCheckpointStep !== this.step) this.saveCheckpoint(epoch);
        return 'cancelled';
      }
    }
    return undefined;
  }

  /** Each epoch's order depends only on (seed, epoch), so a resumed run sees the same batches. */
  private epochBatches(epoch: number): Batch[] {
    return makeBatches(this.data.train, this.config.training.batchSize, new Rng(this.config.training.seed * 7919 + epoch + 1));
  }

  private trainStep(batch: Batch, epoch: number): void {
    const method = this.model.method;
    const routes = method.drawRoutes(this.rng);
    const adamix = this.config.method.type === 'adamix' ? this.config.method : undefined;
    const second = adamix && adamix.consistencyWeight > 0 ? method.drawRoutes(this.rng) : undefined;
    const lr = learningRateAt(this.step, this.totalSteps, this.warmupSteps, this.config.training.learningRate);
    const trainable = this.model.store.trainable();
    const loss = tf.tidy(() => {
      const inputs = batchTensors(batch);
      const { value, grads } = tf.variableGrads(() => this.lossOf(inputs, routes, second) as tf.Scalar, trainable.map((p) => p.value));
      const named = new Map<string, Tensor>();
      for (const p of trainable) if (grads[p.value.name]) named.set(p.name, grads[p.value.name]!);
      const { grads: clipped } = clipByGlobalNorm(named, this.config.training.maxGradNorm);
      this.optimizer.apply(trainable, clipped, lr);
      return value.dataSync()[0]!;
    });
    if (!Number.isFinite(loss)) {
      throw new DataError(this.config.sourceFile, undefined, `training loss became ${loss} at step ${this.step + 1}; lower training.learningRate or set training.maxGradNorm`);
    }
    if (routes) method.recordRoutes(routes);
    if (second) method.recordRoutes(second);
    this.step++;
    this.window.loss += loss;
    this.window.steps++;
    this.window.examples += batch.batchSize;
    if (this.step % this.config.training.logEvery === 0 || this.step === 1 || this.step === this.totalSteps) this.logProgress(epoch, lr);
  }

  private lossOf(inputs: ReturnType<typeof batchTensors>, routes?: Map<string, ExpertChoice>, second?: Map<string, ExpertChoice>): Tensor {
    const logits = this.model.forward(inputs, this.trainingContext(routes));
    const taskLoss = this.model.taskLoss(logits, inputs.labels);
    if (!second || this.config.method.type !== 'adamix') return taskLoss;
    const other = this.model.forward(inputs, this.trainingContext(second));
    return tf.add(taskLoss, tf.mul(this.model.consistencyLoss(logits, other), this.config.method.consistencyWeight));
  }

  private trainingContext(routes?: Map<string, ExpertChoice>): ForwardContext {
    return { training: true, routes, dropoutSeed: () => this.rng.nextUint32() };
  }

  private logProgress(epoch: number, lr: number): void {
    const seconds = (performance.now() - this.window.since) / 1000;
    const loss = this.window.loss / Math.max(1, this.window.steps);
    const examplesPerSecond = this.window.examples / Math.max(seconds, 1e-9);
    const elapsedMs = Date.now() - this.startedAt.getTime();
    this.folder.logMetrics({ kind: 'train', step: this.step, epoch, loss, learningRate: lr, examplesPerSecond, elapsedMs });
    this.emit({ type: 'progress', step: this.step, totalSteps: this.totalSteps, epoch, loss, learningRate: lr, examplesPerSecond, elapsedMs });
    this.window = { loss: 0, steps: 0, examples: 0, since: performance.now() };
  }

  private evaluationDue(endOfEpoch: boolean): boolean {
    const every = this.config.training.evalEvery;
    return every === 'epoch' ? endOfEpoch : this.step % every === 0;
  }

  /** Evaluates on the validation split, checkpoints, and returns true when early stopping triggers. */
  private evaluateAndCheckpoint(): boolean {
    const epoch = Math.floor((this.step - 1) / this.stepsPerEpoch);
    if (!this.data.validation.length) {
      this.saveCheckpoint(epoch);
      return false;
    }
    const metrics = evaluate(this.model, this.data.validation, this.config, this.data.labelNames.length);
    const isBest = this.updateBest(metrics);
    this.folder.logMetrics({ kind: 'eval', split: 'validation', step: this.step, epoch, ...metrics, isBest });
    this.emit({ type: 'metrics', step: this.step, split: 'validation', metrics, isBest });
    this.saveCheckpoint(epoch, metrics, isBest);
    const patience = this.config.training.earlyStopping?.patience;
    return patience !== undefined && this.evalsWithoutImprovement >= patience;
  }

  private updateBest(metrics: Record<string, number>): boolean {
    const value = metrics[this.config.task.metric];
    if (value === undefined || !Number.isFinite(value)) return false;
    const minDelta = this.config.training.earlyStopping?.minDelta ?? 0;
    const sign = lowerIsBetter(this.config.task.metric) ? -1 : 1;
    const improved = this.bestMetric === undefined || sign * (value - this.bestMetric) > minDelta;
    if (improved) {
      this.bestMetric = value;
      this.bestStep = this.step;
      this.evalsWithoutImprovement = 0;
    } else {
      this.evalsWithoutImprovement++;
    }
    return improved;
  }

  private saveCheckpoint(epoch: number, metrics?: Record<string, number>, isBest = false): void {
    const info: CheckpointInfo = {
      step: this.step, epoch, method: this.config.method.type, labelNames: this.data.labelNames,
      metrics, trainer: this.trainerState(epoch), created: new Date().toISOString(),
    };
    const optimizerState = this.optimizer.exportState();
    info.trainer.optimizerSteps = optimizerState.steps;
    const dir = this.folder.saveCheckpoint(info, this.model.store.exportWeights((p) => p.trainable), optimizerTensors(optimizerState));
    if (isBest) this.folder.markBest(this.step);
    this.folder.pruneCheckpoints(this.config.training.keepCheckpoints);
    this.lastCheckpointStep = this.step;
    this.folder.writeStatus(this.status('running'));
    this.emit({ type: 'checkpoint', step: this.step, dir, isBest, sizeBytes: folderSize(dir) });
  }

  private trainerState(epoch: number): TrainerState {
    return {
      step: this.step, epoch, rng: this.rng.state(), bestMetric: this.bestMetric, bestStep: this.bestStep,
      evalsWithoutImprovement: this.evalsWithoutImprovement, routing: this.model.method.routingCounts(), optimizerSteps: {},
    };
  }

  /** Loads weights, optimizer moments, RNG and bookkeeping from a checkpoint; returns its step. */
  private restore(checkpointDir: string): number {
    const { info, weights, optimizer } = readCheckpoint(checkpointDir);
    this.model.store.importWeights(weights, path.join(checkpointDir, 'weights.safetensors'));
    this.optimizer.importState(optimizerStateOf(optimizer, info.trainer.optimizerSteps), this.model.store.trainable());
    const t = info.trainer;
    this.rng = new Rng(t.rng);
    this.step = t.step;
    this.bestMetric = t.bestMetric;
    this.bestStep = t.bestStep;
    this.evalsWithoutImprovement = t.evalsWithoutImprovement;
    this.lastCheckpointStep = t.step;
    const method = this.model.method as { restoreRoutingCounts?: (c: TrainerState['routing']) => void };
    method.restoreRoutingCounts?.(t.routing);
    this.dropMetricsAfter(t.step);
    return t.step;
  }

  /** Lines an interrupted run logged after its last checkpoint would be logged again on resume. */
  private dropMetricsAfter(step: number): void {
    const file = this.folder.file('metrics.jsonl');
    if (!fs.existsSync(file)) return;
    const kept = fs.readFileSync(file, 'utf8').split('\n').filter((line) => {
      if (!line.trim()) return false;
      try {
        return (JSON.parse(line) as { step?: number }).step! <= step;
      } catch {
        return false;
      }
    });
    fs.writeFileSync(`${file}.tmp-${process.pid}`, kept.map((l) => `${l}\n`).join(''));
    fs.renameSync(`${file}.tmp-${process.pid}`, file);
  }

  private writeStart(): void {
    this.folder.writeConfig(this.config);
    this.folder.writePlacement(this.model.placement());
    this.folder.writeStatus(this.status('running'));
  }

  private emitStarted(resumedFromStep?: number): void {
    const b = this.prepared.backend;
    this.emit({
      type: 'started', runId: this.folder.id, runDir: this.folder.dir, configFile: this.config.sourceFile,
      backend: { active: b.active, description: b.description, skipped: b.skipped },
      placement: this.model.placement(), totalSteps: this.totalSteps, stepsPerEpoch: this.stepsPerEpoch,
      trainExamples: this.data.train.length, validationExamples: this.data.validation.length, resumedFromStep,
    });
  }

  private finish(state: 'finished' | 'stopped', reason?: 'cancelled' | 'early-stopping'): FinishedMessage {
    if (state === 'finished') this.evaluateTestSplit();
    const bestCheckpoint = this.bestStep !== undefined ? this.folder.checkpointDir(this.bestStep) : undefined;
    const bestMetrics = bestCheckpoint ? readCheckpoint(bestCheckpoint).info.metrics : undefined;
    this.folder.writeStatus({ ...this.status(state), ended: new Date().toISOString(), reason, bestCheckpoint, bestMetrics });
    return { type: 'finished', runDir: this.folder.dir, state, reason, bestCheckpoint, bestMetrics, durationMs: Date.now() - this.startedAt.getTime() };
  }

  /** Scores the best checkpoint on the test split, if the config has one. */
  private evaluateTestSplit(): void {
    if (!this.data.test.length) return;
    const step = this.bestStep ?? this.lastCheckpointStep;
    const dir = this.folder.checkpointDir(step);
    this.model.store.importWeights(readCheckpoint(dir).weights, dir);
    const metrics = evaluate(this.model, this.data.test, this.config, this.data.labelNames.length);
    writeJsonAtomic(path.join(dir, 'eval-test.json'), { split: 'test', step, metrics, examples: this.data.test.length });
    this.folder.logMetrics({ kind: 'eval', split: 'test', step, ...metrics });
    this.emit({ type: 'metrics', step, split: 'test', metrics, isBest: step === this.bestStep });
  }

  private status(state: RunStatus['state']): RunStatus {
    return {
      state, name: this.config.name, method: this.config.method.type, configFile: this.config.sourceFile,
      backend: this.prepared.backend.description, pid: process.pid, started: this.startedAt.toISOString(),
      step: this.step, totalSteps: this.totalSteps,
      bestCheckpoint: this.bestStep !== undefined ? this.folder.checkpointDir(this.bestStep) : undefined,
    };
  }

  recordFailure(err: unknown): void {
    if (err instanceof CancelledError) return;
    const error = err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };
    try {
      this.folder.writeStatus({ ...this.status('failed'), ended: new Date().toISOString(), error });
    } catch {
      // the original error matters more than a status file we could not write
    }
  }

  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
  }
}

export function batchTensors(batch: Batch) {
  const shape: [number, number] = [batch.batchSize, batch.seqLength];
  return {
    inputIds: tf.tensor2d(batch.inputIds, shape, 'int32'),
    tokenTypeIds: tf.tensor2d(batch.tokenTypeIds, shape, 'int32'),
    attentionMask: tf.tensor2d(batch.attentionMask, shape),
    labels: tf.tensor1d(batch.labels),
  };
}

/** Metrics and mean loss on a split, with AdaMix's experts merged into one adapter. */
export function evaluate(model: PeftModel, examples: EncodedExample[], config: ResolvedConfig, numLabels: number): Record<string, number> {
  const merged = model.method.mergeForInference();
  const ctx: ForwardContext = { training: false, merged, dropoutSeed: () => undefined };
  const predictions: number[] = [];
  const gold: number[] = [];
  let lossSum = 0;
  try {
    for (const batch of makeBatches(examples, config.training.batchSize * 2)) {
      const { logits, loss } = tf.tidy(() => {
        const inputs = batchTensors(batch);
        const out = model.forward(inputs, ctx);
        return { logits: out.arraySync() as number[][], loss: model.taskLoss(out, inputs.labels).dataSync()[0]! };
      });
      lossSum += loss * batch.batchSize;
      for (const row of logits) predictions.push(config.task.type === 'regression' ? row[0]! : argmax(row));
      gold.push(...batch.labels);
    }
  } finally {
    if (merged) for (const m of merged.values()) for (const t of [m.down.kernel, m.down.bias, m.up.kernel, m.up.bias]) t.dispose();
  }
  return { ...computeMetrics(config.task.type, predictions, gold, numLabels), loss: lossSum / Math.max(1, examples.length) };
}

function argmax(row: number[]): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

function optimizerTensors(state: OptimizerState): WeightMap {
  const out: WeightMap = new Map();
  for (const [name, m] of state.moments) {
    out.set(`${name}.exp_avg`, { shape: m.shape, data: m.m });
    out.set(`${name}.exp_avg_sq`, { shape: m.shape, data: m.v });
  }
  return out;
}

function optimizerStateOf(tensors: WeightMap, steps: Record<string, number>): OptimizerState {
  const moments: OptimizerState['moments'] = new Map();
  for (const [name, m] of tensors) {
    if (!name.endsWith('.exp_avg')) continue;
    const base = name.slice(0, -'.exp_avg'.length);
    const v = tensors.get(`${base}.exp_avg_sq`);
    if (v) moments.set(base, { m: m.data, v: v.data, shape: m.shape });
  }
  return { steps, moments };
}

function folderSize(dir: string): number {
  return fs.readdirSync(dir).reduce((sum, name) => sum + fs.statSync(path.join(dir, name)).size, 0);
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Scores a saved checkpoint on a split of its run's data; the result is stored beside it. */
export async function evaluateCheckpoint(
  checkpointDir: string,
  split: Split,
  options: { backend?: BackendName; onMessage?: (m: WorkerMessage) => void } = {},
): Promise<EvaluatedMessage> {
  const emit: Emit = options.onMessage ?? (() => {});
  const config = RunFolder.open(runDirOfCheckpoint(checkpointDir)).readConfig();
  const { model, data } = await prepare(config, options.backend, emit);
  try {
    const examples = split === 'test' ? data.test : data.validation;
    if (!examples.length) throw new ConfigError(config.sourceFile, `/data/${split}`, `the run has no ${split} data to evaluate on`);
    model.store.importWeights(readCheckpoint(checkpointDir).weights, checkpointDir);
    const metrics = evaluate(model, examples, config, data.labelNames.length);
    writeJsonAtomic(path.join(checkpointDir, `eval-${split}.json`), { split, metrics, examples: examples.length, evaluated: new Date().toISOString() });
    return { type: 'evaluated', checkpointDir, split, metrics, examples: examples.length };
  } finally {
    model.dispose();
  }
}

export { describeRun } from './describe';
