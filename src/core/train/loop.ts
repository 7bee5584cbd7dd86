/**
 * The training loop that fine-tuning (trainer.ts) and pretraining (pretrain.ts) share: AdamW with
 * warm-up and decay, gradient clipping, epochs of batches in a seeded order, evaluation and early
 * stopping, checkpoints that resume to exactly the result of an uninterrupted run, cancellation at
 * step boundaries, the run folder's status/metrics/placement files, and the typed messages.
 *
 * A subclass supplies what differs: the batches, the loss of a step, the validation metrics, the
 * weights a checkpoint stores, and what happens at the end.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tf, type Tensor } from '../tf';
import type { AnyResolvedConfig, BackendName, TrainingConfig } from '../config/types';
import type { BackendChoice } from '../backend';
import { CancelledError, ConfigError, DataError } from '../errors';
import { Rng } from '../random';
import type { Param, ParamStore } from '../model/params';
import type { WeightMap } from '../model/bert-config';
import {
  RunFolder,
  readCheckpoint,
  type CheckpointInfo,
  type RunStatus,
  type TrainerState,
} from '../checkpoint/run-folder';
import { createRun, discardIfNeverStarted, openForResume } from './run-start';
import { RunLockedError } from '../checkpoint/run-lock';
import { variableGrads } from './gradients';
import { AdamW, clipScale, learningRateAt, type OptimizerState } from './optimizer';
import { gib, planFromProbes } from './memory-plan';
import type { FinishedMessage, MemoryPlanInfo, Placement, StartedMessage, WorkerMessage } from '../../protocol/worker';

export type Emit = (message: WorkerMessage) => void;
export { storedConfig } from './run-start';

export interface LoopSetup {
  config: AnyResolvedConfig;
  /** What status.json, placement and checkpoints call the method, e.g. 'houlsby' or 'mlm'. */
  method: string;
  kind: NonNullable<StartedMessage['kind']>;
  store: ParamStore;
  folder: RunFolder;
  backend: BackendChoice;
  emit: Emit;
  signal?: AbortSignal;
  /** Training examples (sequences, for pretraining); with the batch size they make an epoch. */
  trainExamples: number;
  validationExamples: number;
  /** The validation metric that picks the best checkpoint and drives early stopping. */
  bestMetric: { name: string; lowerIsBetter: boolean };
}

type StopReason = 'cancelled' | 'early-stopping';

export abstract class TrainingLoop<B> {
  protected readonly training: TrainingConfig;
  protected readonly folder: RunFolder;
  protected readonly emit: Emit;
  protected readonly stepsPerEpoch: number;
  protected readonly totalSteps: number;
  protected readonly startedAt = new Date();
  /** Dropout seeds (and AdaMix routes) come from here; checkpoints store its state. */
  protected rng: Rng;
  protected step = 0;
  protected bestStep?: number;
  protected lastCheckpointStep = -1;
  private readonly optimizer: AdamW;
  private readonly warmupSteps: number;
  private readonly decaySteps?: number;
  private bestMetric?: number;
  private evalsWithoutImprovement = 0;
  /** Rows per pass chosen by the memory plan (planPasses), kept in checkpoints so a resume makes the same passes. */
  private plannedRows?: number;
  private memory?: MemoryPlanInfo;
  private window = { loss: 0, steps: 0, examples: 0, since: performance.now() };

  constructor(protected readonly setup: LoopSetup) {
    const t = setup.config.training;
    this.training = t;
    this.folder = setup.folder;
    this.emit = setup.emit;
    this.optimizer = new AdamW({
      weightDecay: t.weightDecay,
      beta1: t.adamBeta1,
      beta2: t.adamBeta2,
      epsilon: t.adamEpsilon,
    });
    this.stepsPerEpoch = Math.ceil(setup.trainExamples / t.batchSize);
    this.totalSteps = t.maxSteps ?? t.epochs * this.stepsPerEpoch;
    this.warmupSteps = Math.round(t.warmupRatio * this.totalSteps);
    this.decaySteps = t.decayRatio === undefined ? undefined : Math.round(t.decayRatio * this.totalSteps);
    this.rng = new Rng(t.seed);
  }

  // ---- what a subclass supplies ---------------------------------------------------------------

  /** The batches of an epoch in training order; must depend only on (seed, epoch) so a resume sees the same. */
  protected abstract epochBatches(epoch: number): B[];
  /** One optimisation step on `batch`: whatever the step draws, then `optimize`. */
  protected abstract trainStep(batch: B, epoch: number): void;
  /** Metrics on the validation data, or undefined when there is none. */
  protected abstract validate(): Record<string, number> | undefined;
  protected abstract placement(): Placement;
  /** The weights a checkpoint stores, in Hugging Face layout. */
  protected abstract checkpointWeights(): WeightMap;
  protected abstract disposeModel(): void;
  /**
   * The loss of one pass over `rows` rows of the longest training sequence, drawing nothing from the
   * run's random streams (the memory plan measures it before the first step), with the length and
   * the config field that sets it.
   */
  protected abstract probePass(rows: number): { lossOf: () => tf.Scalar; tokens: number; field: string };
  /** Runs once a checkpoint folder is in place. */
  protected afterCheckpoint(_dir: string): void {}
  /** Runs before `finished` is reported (not after a failure); may add the model folder it wrote. */
  protected beforeFinish(_state: FinishedMessage['state']): Pick<FinishedMessage, 'modelDir'> {
    return {};
  }
  protected labelNames(): string[] {
    return [];
  }
  protected routingCounts(): TrainerState['routing'] {
    return {};
  }
  protected restoreRoutingCounts(_counts: TrainerState['routing']): void {}

  // ---- the loop --------------------------------------------------------------------------------

  async run(resumeFrom?: string): Promise<FinishedMessage> {
    const resumedFromStep = resumeFrom ? this.restore(resumeFrom) : undefined;
    this.planPasses();
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
  private async runEpoch(epoch: number): Promise<StopReason | undefined> {
    const batches = this.epochBatches(epoch);
    for (let i = this.step % this.stepsPerEpoch; i < batches.length && this.step < this.totalSteps; i++) {
      this.trainStep(batches[i]!, epoch);
      const endOfEpoch = i === batches.length - 1;
      if (this.evaluationDue(endOfEpoch) && this.evaluateAndCheckpoint()) return 'early-stopping';
      await yieldToEventLoop(); // lets a cancel request arrive between steps
      // After the last step there is nothing left to stop: finishing normally runs the final
      // evaluation, which a resume from a cancel checkpoint at totalSteps would never run.
      if (this.setup.signal?.aborted && this.step < this.totalSteps) {
        if (this.lastCheckpointStep !== this.step) this.saveCheckpoint(epoch);
        return 'cancelled';
      }
    }
    return undefined;
  }

  /** A seeded order per (seed, epoch), independent of everything drawn before. */
  protected epochRng(epoch: number): Rng {
    return new Rng(this.training.seed * 7919 + epoch + 1);
  }

  /** Rows per forward/backward pass: training.microBatchSize, else the memory plan's, else the whole batch. */
  protected get microBatchSize(): number {
    return this.training.microBatchSize ?? this.plannedRows ?? this.training.batchSize;
  }

  /**
   * On the wasm backend, without training.microBatchSize: measures a pass and picks the largest
   * micro-batch that fits the heap (see memory-plan.ts), or fails before training with the numbers.
   * A resumed run keeps the rows its checkpoint recorded.
   */
  private planPasses(): void {
    if (this.training.microBatchSize !== undefined || this.setup.backend.active !== 'wasm') return;
    const batch = this.training.batchSize;
    const one = this.probePass(1);
    const plan = planFromProbes(
      (rows) => this.probePass(rows).lossOf,
      this.setup.store.trainable(),
      this.optimizer.momentBytes(),
      batch,
      {
        configFile: this.setup.config.sourceFile,
        field: one.field,
        tokens: one.tokens,
      },
    );
    // a resumed run keeps the passes it was checkpointed with, so it continues exactly
    const rows = this.plannedRows ?? plan.rows;
    this.memory = {
      heldBytes: plan.steady,
      passBytes: plan.passFixed,
      rowBytes: plan.perRow,
      tokens: one.tokens,
      limitBytes: plan.limit.bytes,
      limitedBy: plan.limit.why,
      rows,
    };
    if (rows >= batch) return;
    this.plannedRows = rows;
    this.emit({
      type: 'log',
      level: 'info',
      message:
        `memory: a batch of ${batch} sequences of up to ${one.tokens} tokens does not fit ${plan.limit.why} (${gib(plan.limit.bytes)}) in one pass (${gib(plan.steady)} held, ${gib(plan.perRow)} a sequence); ` +
        `training in passes of at most ${rows} rows (the same updates; set training.microBatchSize to choose)`,
    });
  }

  /**
   * One AdamW step on a batch given as micro-batches (tensors their losses create are freed after
   * each pass), with the learning-rate schedule and clipping; logs progress and returns the loss.
   */
  protected optimize(parts: readonly MicroBatch[], examples: number, epoch: number): number {
    const lr = learningRateAt(
      this.step,
      this.totalSteps,
      this.warmupSteps,
      this.training.learningRate,
      this.decaySteps,
    );
    const trainable = this.setup.store.trainable();
    const { loss, grads } = withOutOfMemoryAdvice(this.setup.config.sourceFile, () =>
      accumulateGradients(parts, trainable),
    );
    try {
      tf.tidy(() => {
        const { scale } = clipScale(grads, this.training.maxGradNorm);
        this.optimizer.apply(trainable, grads, lr, scale);
      });
    } finally {
      for (const g of grads.values()) g.dispose();
    }
    if (!Number.isFinite(loss)) {
      throw new DataError(
        this.setup.config.sourceFile,
        undefined,
        `training loss became ${loss} at step ${this.step + 1}; lower training.learningRate or set training.maxGradNorm`,
      );
    }
    this.step++;
    this.window.loss += loss;
    this.window.steps++;
    this.window.examples += examples;
    if (this.step % this.training.logEvery === 0 || this.step === 1 || this.step === this.totalSteps)
      this.logProgress(epoch, lr);
    return loss;
  }

  private logProgress(epoch: number, lr: number): void {
    const seconds = (performance.now() - this.window.since) / 1000;
    const loss = this.window.loss / Math.max(1, this.window.steps);
    const examplesPerSecond = this.window.examples / Math.max(seconds, 1e-9);
    const elapsedMs = Date.now() - this.startedAt.getTime();
    this.folder.logMetrics({
      kind: 'train',
      step: this.step,
      epoch,
      loss,
      learningRate: lr,
      examplesPerSecond,
      elapsedMs,
    });
    this.emit({
      type: 'progress',
      step: this.step,
      totalSteps: this.totalSteps,
      epoch,
      loss,
      learningRate: lr,
      examplesPerSecond,
      elapsedMs,
    });
    this.window = { loss: 0, steps: 0, examples: 0, since: performance.now() };
  }

  private evaluationDue(endOfEpoch: boolean): boolean {
    const every = this.training.evalEvery;
    return every === 'epoch' ? endOfEpoch : this.step % every === 0;
  }

  /** Evaluates on the validation data, checkpoints, and returns true when early stopping triggers. */
  private evaluateAndCheckpoint(): boolean {
    const epoch = Math.floor((this.step - 1) / this.stepsPerEpoch);
    const metrics = this.validate();
    if (!metrics) {
      this.saveCheckpoint(epoch);
      return false;
    }
    const isBest = this.updateBest(metrics);
    this.folder.logMetrics({ kind: 'eval', split: 'validation', step: this.step, epoch, metrics, isBest });
    this.emit({ type: 'metrics', step: this.step, split: 'validation', metrics, isBest });
    this.saveCheckpoint(epoch, metrics, isBest);
    const patience = this.training.earlyStopping?.patience;
    return patience !== undefined && this.evalsWithoutImprovement >= patience;
  }

  private updateBest(metrics: Record<string, number>): boolean {
    const { name, lowerIsBetter } = this.setup.bestMetric;
    const value = metrics[name];
    if (value === undefined || !Number.isFinite(value)) return false;
    const minDelta = this.training.earlyStopping?.minDelta ?? 0;
    const sign = lowerIsBetter ? -1 : 1;
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

  // ---- checkpoints and resume ---------------------------------------------------------------------

  private saveCheckpoint(epoch: number, metrics?: Record<string, number>, isBest = false): void {
    const info: CheckpointInfo = {
      step: this.step,
      epoch,
      method: this.setup.method,
      labelNames: this.labelNames(),
      metrics,
      trainer: this.trainerState(epoch),
      created: new Date().toISOString(),
    };
    const optimizerState = this.optimizer.exportState();
    info.trainer.optimizerSteps = optimizerState.steps;
    const dir = this.folder.saveCheckpoint(info, this.checkpointWeights(), optimizerTensors(optimizerState));
    this.afterCheckpoint(dir);
    if (isBest) this.folder.markBest(this.step);
    this.folder.pruneCheckpoints(this.training.keepCheckpoints);
    this.lastCheckpointStep = this.step;
    this.folder.writeStatus(this.status('running'));
    this.emit({ type: 'checkpoint', step: this.step, dir, isBest, sizeBytes: folderSize(dir) });
  }

  private trainerState(epoch: number): TrainerState {
    return {
      step: this.step,
      epoch,
      rng: this.rng.state(),
      bestMetric: this.bestMetric,
      bestStep: this.bestStep,
      evalsWithoutImprovement: this.evalsWithoutImprovement,
      routing: this.routingCounts(),
      optimizerSteps: {},
      ...(this.plannedRows !== undefined && { microBatchSize: this.plannedRows }),
    };
  }

  /** Loads weights, optimizer moments, RNG and bookkeeping from a checkpoint; returns its step. */
  private restore(checkpointDir: string): number {
    const { info, weights, optimizer } = readCheckpoint(checkpointDir);
    const store = this.setup.store;
    store.importWeights(weights, path.join(checkpointDir, 'weights.safetensors'));
    this.optimizer.importState(optimizerStateOf(optimizer, info.trainer.optimizerSteps), store.trainable());
    const t = info.trainer;
    this.rng = new Rng(t.rng);
    this.step = t.step;
    this.bestMetric = t.bestMetric;
    this.bestStep = t.bestStep;
    this.evalsWithoutImprovement = t.evalsWithoutImprovement;
    this.lastCheckpointStep = t.step;
    this.plannedRows = t.microBatchSize;
    this.restoreRoutingCounts(t.routing);
    // lines an interrupted run logged after its last checkpoint would be logged again
    this.folder.dropMetricsAfter(t.step);
    this.folder.discardCheckpointsAfter(t.step, t.bestStep);
    return t.step;
  }

  // ---- run folder and messages --------------------------------------------------------------------

  private writeStart(): void {
    this.folder.writeConfig(this.setup.config);
    this.folder.writePlacement(this.placement());
    this.folder.writeStatus(this.status('running'));
  }

  private emitStarted(resumedFromStep?: number): void {
    const b = this.setup.backend;
    this.emit({
      type: 'started',
      kind: this.setup.kind,
      runId: this.folder.id,
      runDir: this.folder.dir,
      configFile: this.setup.config.sourceFile,
      backend: {
        active: b.active,
        description: b.description,
        skipped: b.skipped,
        ...(b.native ? { native: { active: b.native.active, reason: b.native.reason } } : {}),
      },
      placement: this.placement(),
      totalSteps: this.totalSteps,
      stepsPerEpoch: this.stepsPerEpoch,
      trainExamples: this.setup.trainExamples,
      validationExamples: this.setup.validationExamples,
      resumedFromStep,
      ...(this.memory && { memory: this.memory }),
    });
  }

  private finish(state: FinishedMessage['state'], reason?: StopReason): FinishedMessage {
    const extra = this.beforeFinish(state);
    const bestCheckpoint = this.bestStep !== undefined ? this.folder.checkpointDir(this.bestStep) : undefined;
    const bestMetrics = bestCheckpoint ? readCheckpoint(bestCheckpoint).info.metrics : undefined;
    this.folder.writeStatus({
      ...this.status(state),
      ended: new Date().toISOString(),
      reason,
      bestCheckpoint,
      bestMetrics,
    });
    return {
      type: 'finished',
      runDir: this.folder.dir,
      state,
      reason,
      bestCheckpoint,
      bestMetrics,
      ...extra,
      durationMs: Date.now() - this.startedAt.getTime(),
    };
  }

  private status(state: RunStatus['state']): RunStatus {
    return {
      state,
      name: this.setup.config.name,
      method: this.setup.method,
      configFile: this.setup.config.sourceFile,
      backend: this.setup.backend.description,
      pid: process.pid,
      started: this.startedAt.toISOString(),
      step: this.step,
      totalSteps: this.totalSteps,
      bestCheckpoint: this.bestStep !== undefined ? this.folder.checkpointDir(this.bestStep) : undefined,
    };
  }

  recordFailure(err: unknown): void {
    if (err instanceof CancelledError) return;
    const error =
      err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };
    try {
      this.folder.writeStatus({ ...this.status('failed'), ended: new Date().toISOString(), error });
    } catch {
      // the original error matters more than a status file we could not write
    }
  }

  dispose(): void {
    this.optimizer.dispose();
    this.disposeModel();
  }
}

export interface RunOptions {
  /**
   * A run folder to continue from its last checkpoint, or one of its checkpoint folders to rewind
   * the run to: its later checkpoints and metric lines are discarded, as if it had stopped there.
   */
  resume?: string;
  /** Overrides the config's training.backend. */
  backend?: BackendName;
  /** Overrides the config's output.runsDir (ignored on resume: the run folder exists). */
  runsDir?: string;
  /** Aborting stops at the next step boundary after writing a checkpoint. */
  signal?: AbortSignal;
  /** started, progress, metrics, checkpoint and log messages; finished/failed are the promise's outcome. */
  onMessage?: (message: WorkerMessage) => void;
  /**
   * A resolved, already checked config to run instead of reading `configFile` (a sweep point, see
   * core/config/sweep.ts); `configFile` still names the file it came from. Ignored on resume.
   */
  config?: AnyResolvedConfig;
  /** On resume: continue even when the config file changes what the run computes (recorded in status.json). */
  allowConfigChange?: boolean;
}

/** How one kind of run (fine-tuning or pretraining) reads its config and builds its loop. */
export interface RunKind<C extends AnyResolvedConfig, P> {
  command: 'train' | 'pretrain';
  load(configFile: string): C;
  /** `fromCheckpoint`: a resume; the trained weights will come from the run's checkpoint. */
  prepare(config: C, backend: BackendName | undefined, emit: Emit, fromCheckpoint: boolean): Promise<P>;
  loop(config: C, prepared: P, folder: RunFolder, emit: Emit, signal?: AbortSignal): TrainingLoop<unknown>;
}

/**
 * Starts (or, with `options.resume`, continues) a run and trains it to its end, holding the run
 * folder's lock throughout (run-start.ts): a second writer is refused naming the first.
 */
export async function startRun<C extends AnyResolvedConfig, P>(
  configFile: string,
  options: RunOptions,
  kind: RunKind<C, P>,
): Promise<FinishedMessage> {
  const emit: Emit = options.onMessage ?? (() => {});
  const resumed = options.resume
    ? openForResume({
        target: options.resume,
        configFile,
        command: kind.command,
        load: kind.load,
        allowConfigChange: options.allowConfigChange,
        emit,
      })
    : undefined;
  let lock = resumed?.lock;
  try {
    const config = resumed
      ? (resumed.config as C)
      : options.config
        ? givenConfig<C>(options.config, kind.command)
        : kind.load(configFile);
    if (!resumed && options.runsDir) config.output.runsDir = options.runsDir;
    const prepared = await kind.prepare(config, options.backend, emit, resumed !== undefined);
    const fresh = resumed ? undefined : createRun(config, kind.command);
    lock ??= fresh?.lock;
    const folder = resumed?.run ?? fresh!.folder;
    const loop = kind.loop(config, prepared, folder, emit, options.signal);
    try {
      return await loop.run(resumed?.checkpoint);
    } catch (err) {
      // a writer that lost its lock leaves the folder to the new holder
      if (!(err instanceof RunLockedError) && !(fresh && discardIfNeverStarted(folder, err))) loop.recordFailure(err);
      throw err;
    } finally {
      loop.dispose();
    }
  } finally {
    lock?.release();
  }
}

/** A config handed over whole (a sweep point): it must be of the kind the command runs. */
function givenConfig<C extends AnyResolvedConfig>(
  config: AnyResolvedConfig,
  command: RunKind<AnyResolvedConfig, unknown>['command'],
): C {
  const pretraining = 'pretrain' in config;
  if (pretraining !== (command === 'pretrain')) {
    throw new ConfigError(
      config.sourceFile,
      pretraining ? '/pretrain' : '',
      `is a ${pretraining ? 'pretraining' : 'fine-tuning'} config: use 'peft-lab ${pretraining ? 'pretrain' : 'train'}' with it`,
    );
  }
  // a copy: the runs folder override below must not change the caller's object
  return structuredClone(config) as C;
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

/** One forward/backward pass of a step: its mean loss and its share of the batch's loss. */
export interface MicroBatch {
  lossOf: () => Tensor;
  /** The shares of a step's micro-batches sum to 1 (rows, or masked tokens, over the batch's). */
  weight: number;
}

/**
 * The gradient of the batch's loss, Σ wᵢ ∇lossᵢ, with one micro-batch's activations in memory at a
 * time. A single micro-batch of weight 1 is the plain gradient, bit for bit.
 */
export function accumulateGradients(
  parts: readonly MicroBatch[],
  trainable: readonly Param[],
): { loss: number; grads: Map<string, Tensor> } {
  const summed = new Map<string, Tensor>();
  let loss = 0;
  for (const part of parts) {
    if (part.weight === 0) continue;
    loss +=
      part.weight *
      tf.tidy(() => {
        const { value, grads } = variableGrads(
          part.lossOf as () => tf.Scalar,
          trainable.map((p) => p.value),
        );
        for (const p of trainable) {
          const grad = grads[p.value.name];
          if (!grad) continue; // an AdaMix expert no route chose this step
          const weighted = part.weight === 1 ? grad : tf.mul(grad, part.weight);
          const previous = summed.get(p.name);
          summed.set(p.name, tf.keep(previous ? tf.add(previous, weighted) : weighted));
          previous?.dispose();
        }
        return value.dataSync()[0]!;
      });
  }
  return { loss, grads: summed };
}

/**
 * The wasm backend aborts with a bare "Aborted()" when its heap (at most 4 GiB) cannot hold a
 * step; this says what to change instead.
 */
function withOutOfMemoryAdvice<T>(configFile: string, run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (!(err instanceof Error) || !/^Aborted\(/.test(err.message)) throw err;
    throw new ConfigError(
      configFile,
      '/training/microBatchSize',
      'out of memory: a training step did not fit in the WebAssembly heap (4 GiB at most). Set training.microBatchSize lower (the same updates, computed in smaller passes), or lower data.maxLength',
    );
  }
}
