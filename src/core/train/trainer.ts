/**
 * Fine-tuning: a PEFT method (or a baseline) and a task head on a labelled dataset, run by the
 * shared loop (loop.ts), with AdaMix routing and consistency, and the test split scored at the end.
 */
import { tf, type Tensor } from '../tf';
import type { BackendName, ResolvedConfig } from '../config/types';
import { loadConfig } from '../config/load';
import { selectBackend, type BackendChoice } from '../backend';
import { CheckpointError, ConfigError, DataError } from '../errors';
import { PeftModel } from '../model/peft-model';
import { Rng } from '../random';
import { makeBatches, splitBatch, type Batch, type EncodedExample } from '../data/batches';
import type { ExpertChoice } from '../adapters/adamix';
import type { ForwardContext } from '../adapters/method';
import { RunFolder, readCheckpoint, runDirOfCheckpoint, type TrainerState } from '../checkpoint/run-folder';
import { writeJsonAtomic } from '../checkpoint/atomic';
import type { WeightMap } from '../model/bert-config';
import { computeMetrics, lowerIsBetter } from './metrics';
import { TrainingLoop, startRun, storedConfig, type Emit, type RunOptions } from './loop';
import { loadBaseModel, loadDataset, type Dataset } from './session';
import type { EvaluatedMessage, FinishedMessage, Placement, Split, WorkerMessage } from '../../protocol/worker';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type TrainOptions = RunOptions;

/** Seeds the memory plan's probe passes: their routes and dropout masks are not the run's. */
const PROBE_SEED = 0x6d656d;

/** Fine-tunes as a config says, or continues the run `options.resume` names. */
export function train(configFile: string, options: TrainOptions = {}): Promise<FinishedMessage> {
  return startRun(configFile, options, {
    command: 'train',
    load: (file) => loadConfig(file),
    prepare,
    loop: (config, prepared, folder, emit, signal) => new Trainer(config, prepared, folder, emit, signal),
  });
}

interface Prepared {
  model: PeftModel;
  data: Dataset;
  backend: BackendChoice;
}

/** `fromCheckpoint`: the weights will come from one of the run's checkpoints (resume, evaluate), pooler included. */
async function prepare(
  config: ResolvedConfig,
  backendOverride: BackendName | undefined,
  emit: Emit,
  fromCheckpoint = false,
): Promise<Prepared> {
  const log = (message: string, level: 'info' | 'warn' = 'info') => emit({ type: 'log', level, message });
  const backend = await selectBackend(backendOverride ?? config.training.backend);
  const base = await loadBaseModel(config, log);
  for (const warning of base.warnings) log(warning, 'warn');
  if (base.poolerWarning && !fromCheckpoint) log(base.poolerWarning, 'warn');
  const data = loadDataset(config, base.tokenizer);
  if (data.train.length === 0) throw new DataError(config.data.train, undefined, 'has no training examples');
  const outputs = config.task.type === 'regression' ? 1 : data.labelNames.length;
  if (config.task.type === 'classification' && outputs < 2) {
    throw new DataError(
      config.data.train,
      undefined,
      `classification needs at least 2 labels, found ${data.labelNames.join(', ') || 'none'}`,
    );
  }
  const model = new PeftModel({
    bert: base.bert,
    base: base.weights,
    method: config.method,
    task: config.task.type,
    outputs,
    seed: config.training.seed,
    dropout: config.training.dropout,
    pooling: config.task.pooling,
  });
  return { model, data, backend };
}

/** Fine-tuning: a method's weights (and the head) on a labelled task. */
class Trainer extends TrainingLoop<Batch> {
  private readonly model: PeftModel;
  private readonly data: Dataset;

  constructor(
    private readonly config: ResolvedConfig,
    prepared: Prepared,
    folder: RunFolder,
    emit: Emit,
    signal?: AbortSignal,
  ) {
    const metric = config.task.metric;
    super({
      config,
      method: config.method.type,
      kind: 'train',
      store: prepared.model.store,
      folder,
      backend: prepared.backend,
      emit,
      signal,
      trainExamples: prepared.data.train.length,
      validationExamples: prepared.data.validation.length,
      bestMetric: { name: metric, lowerIsBetter: lowerIsBetter(metric) },
    });
    this.model = prepared.model;
    this.data = prepared.data;
  }

  /** Each epoch's order depends only on (seed, epoch), so a resumed run sees the same batches. */
  protected epochBatches(epoch: number): Batch[] {
    return makeBatches(this.data.train, this.training.batchSize, this.epochRng(epoch));
  }

  protected trainStep(batch: Batch, epoch: number): void {
    const method = this.model.method;
    const routes = method.drawRoutes(this.rng);
    const adamix = this.config.method.type === 'adamix' ? this.config.method : undefined;
    const second = adamix && adamix.consistencyWeight > 0 ? method.drawRoutes(this.rng) : undefined;
    // Every micro-batch of the step takes the same expert routes, so the step is the full batch's.
    // Dropout draws from a stream of the step's own: the routes of later steps then do not depend
    // on how many passes (micro-batches) this step took.
    const dropout = new Rng(this.rng.nextUint32());
    const parts = splitBatch(batch, this.microBatchSize).map((part) => ({
      weight: part.batchSize / batch.batchSize,
      lossOf: () => this.lossOf(batchTensors(part), dropout, routes, second),
    }));
    this.optimize(parts, batch.batchSize, epoch);
    if (routes) method.recordRoutes(routes);
    if (second) method.recordRoutes(second);
  }

  protected probePass(rows: number) {
    const longest = this.data.train.reduce((a, b) => (b.inputIds.length > a.inputIds.length ? b : a));
    const batch = makeBatches(new Array<EncodedExample>(rows).fill(longest), rows)[0]!;
    const draws = new Rng(PROBE_SEED);
    const routes = this.model.method.drawRoutes(draws);
    const adamix = this.config.method.type === 'adamix' ? this.config.method : undefined;
    const second = adamix && adamix.consistencyWeight > 0 ? this.model.method.drawRoutes(draws) : undefined;
    return {
      lossOf: () => this.lossOf(batchTensors(batch), new Rng(PROBE_SEED), routes, second) as tf.Scalar,
      tokens: batch.seqLength,
      field: '/data/maxLength',
    };
  }

  private lossOf(
    inputs: ReturnType<typeof batchTensors>,
    dropout: Rng,
    routes?: Map<string, ExpertChoice>,
    second?: Map<string, ExpertChoice>,
  ): Tensor {
    const logits = this.model.forward(inputs, this.trainingContext(dropout, routes));
    const taskLoss = this.model.taskLoss(logits, inputs.labels);
    if (!second || this.config.method.type !== 'adamix') return taskLoss;
    const other = this.model.forward(inputs, this.trainingContext(dropout, second));
    return tf.add(taskLoss, tf.mul(this.model.consistencyLoss(logits, other), this.config.method.consistencyWeight));
  }

  private trainingContext(dropout: Rng, routes?: Map<string, ExpertChoice>): ForwardContext {
    return { training: true, routes, dropoutSeed: () => dropout.nextUint32() };
  }

  protected validate(): Record<string, number> | undefined {
    if (!this.data.validation.length) return undefined;
    return evaluate(this.model, this.data.validation, this.config, this.data.labelNames.length);
  }

  protected placement(): Placement {
    return this.model.placement();
  }

  protected checkpointWeights(): WeightMap {
    return this.model.store.exportWeights((p) => p.trainable);
  }

  protected labelNames(): string[] {
    return this.data.labelNames;
  }

  protected routingCounts(): TrainerState['routing'] {
    return this.model.method.routingCounts();
  }

  protected restoreRoutingCounts(counts: TrainerState['routing']): void {
    const method = this.model.method as { restoreRoutingCounts?: (c: TrainerState['routing']) => void };
    method.restoreRoutingCounts?.(counts);
  }

  protected beforeFinish(state: FinishedMessage['state']): Pick<FinishedMessage, 'modelDir'> {
    if (state === 'finished') this.evaluateTestSplit();
    return {};
  }

  /** Scores the best checkpoint on the test split, if the config has one. */
  private evaluateTestSplit(): void {
    if (!this.data.test.length) return;
    const step = this.bestStep ?? this.lastCheckpointStep;
    const dir = this.folder.checkpointDir(step);
    this.model.store.importWeights(readCheckpoint(dir).weights, dir);
    const metrics = evaluate(this.model, this.data.test, this.config, this.data.labelNames.length);
    writeJsonAtomic(path.join(dir, 'eval-test.json'), {
      split: 'test',
      step,
      metrics,
      examples: this.data.test.length,
    });
    this.folder.logMetrics({ kind: 'eval', split: 'test', step, metrics });
    this.emit({ type: 'metrics', step, split: 'test', metrics, isBest: step === this.bestStep });
  }

  protected disposeModel(): void {
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
export function evaluate(
  model: PeftModel,
  examples: EncodedExample[],
  config: ResolvedConfig,
  numLabels: number,
): Record<string, number> {
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
    if (merged)
      for (const m of merged.values())
        for (const t of [m.down.kernel, m.down.bias, m.up.kernel, m.up.bias]) t.dispose();
  }
  return {
    ...computeMetrics(config.task.type, predictions, gold, numLabels),
    loss: lossSum / Math.max(1, examples.length),
  };
}

function argmax(row: number[]): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** Scores a saved checkpoint on a split of its run's data; the result is stored beside it. */
export async function evaluateCheckpoint(
  checkpointDir: string,
  split: Split,
  options: { backend?: BackendName; onMessage?: (m: WorkerMessage) => void } = {},
): Promise<EvaluatedMessage> {
  const emit: Emit = options.onMessage ?? (() => {});
  const config = storedConfig(RunFolder.open(checkpointRunDir(checkpointDir)), 'train') as ResolvedConfig;
  const { model, data } = await prepare(config, options.backend, emit, true);
  try {
    const examples = split === 'test' ? data.test : data.validation;
    if (!examples.length)
      throw new ConfigError(config.sourceFile, `/data/${split}`, `the run has no ${split} data to evaluate on`);
    model.store.importWeights(readCheckpoint(checkpointDir).weights, checkpointDir);
    const metrics = evaluate(model, examples, config, data.labelNames.length);
    writeJsonAtomic(path.join(checkpointDir, `eval-${split}.json`), {
      split,
      metrics,
      examples: examples.length,
      evaluated: new Date().toISOString(),
    });
    return { type: 'evaluated', checkpointDir, split, metrics, examples: examples.length };
  } finally {
    model.dispose();
  }
}

/** The run folder of a checkpoint folder; a run folder or anything else given instead is named as what it is. */
function checkpointRunDir(checkpointDir: string): string {
  if (fs.existsSync(path.join(checkpointDir, 'checkpoint.json'))) return runDirOfCheckpoint(checkpointDir);
  if (
    fs.existsSync(path.join(checkpointDir, 'config.json')) &&
    fs.existsSync(path.join(checkpointDir, 'checkpoints'))
  ) {
    const best = RunFolder.open(checkpointDir).bestStep();
    const example =
      best !== undefined
        ? `${path.join(checkpointDir, 'checkpoints', `step-${best}`)} (its best)`
        : `${path.join(checkpointDir, 'checkpoints', 'step-N')}`;
    throw new CheckpointError(
      checkpointDir,
      `is a run folder, not a checkpoint folder: evaluate one of its checkpoints, e.g. ${example}`,
    );
  }
  throw new CheckpointError(checkpointDir, 'is not a checkpoint folder (no checkpoint.json)');
}

export { describeRun } from './describe';
