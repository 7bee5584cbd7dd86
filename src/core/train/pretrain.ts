/**
 * `peft-lab pretrain`: masked language modelling of a BERT encoder on plain-text corpora, run by the
 * loop fine-tuning uses (loop.ts): the same schedule, clipping, checkpoints, resume, run folder and
 * messages. What differs:
 *
 * - batches are corpus sequences with fresh masks every step (dynamic masking); a step's masks
 *   depend only on (seed, step), so a resumed run draws exactly the masks an uninterrupted one does;
 * - the held-out sequences are masked once, so every evaluation scores the same positions;
 *   metrics are the MLM loss, masked-token accuracy and perplexity; the best checkpoint has the
 *   lowest loss;
 * - every checkpoint folder is also a Hugging Face model folder (config.json, model.safetensors,
 *   vocab.txt, tokenizer_config.json next to checkpoint.json), and a finished run writes the final
 *   weights to `output.modelDir` (default `<run folder>/model`) with a card, `peft-lab-pretrain.json`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tf } from '../tf';
import type { BackendName, ResolvedPretrainConfig } from '../config/types';
import { loadPretrainConfig } from '../config/load';
import { PRETRAIN_CARD_FILE } from '../config/semantic';
import { selectBackend, type BackendChoice } from '../backend';
import { readJsonFile, writeJsonAtomic } from '../checkpoint/atomic';
import { readSafetensors, toFloat32 } from '../checkpoint/safetensors';
import { onDisk, type RunFolder } from '../checkpoint/run-folder';
import { makeBatches, type Batch } from '../data/batches';
import {
  loadPretrainingData,
  maskBatch,
  maskVocabulary,
  splitMaskedBatch,
  type MaskedBatch,
  type MaskingOptions,
  type MaskVocabulary,
  type PretrainingData,
} from '../data/corpus';
import type { WordPieceTokenizer } from '../data/tokenizer';
import type { ForwardContext } from '../adapters/method';
import type { BertConfig, WeightMap } from '../model/bert-config';
import { CONFIG_FILE, TOKENIZER_CONFIG_FILE, WEIGHTS_FILE, writeBertFolder } from '../model/hf-checkpoint';
import { MLM_HEAD_PREFIX, MLM_METHOD, MlmModel, mlmHeadShapes, randomMlmHead } from '../model/mlm-model';
import { Rng } from '../random';
import { TrainingLoop, startRun, type Emit, type RunOptions } from './loop';
import { loadWordPieceBase } from './session';
import { batchTensors } from './trainer';
import type { FinishedMessage, Placement } from '../../protocol/worker';

export type PretrainOptions = RunOptions;

/** Seeds the memory plan's probe passes: their masks and dropout are not the run's. */
const PROBE_SEED = 0x6d656d;

/** Pretrains as a config with a `pretrain` section says, or continues the run `options.resume` names. */
export function pretrain(configFile: string, options: PretrainOptions = {}): Promise<FinishedMessage> {
  return startRun(configFile, options, {
    command: 'pretrain',
    load: (file) => loadPretrainConfig(file),
    prepare,
    loop: (config, prepared, folder, emit, signal) => new Pretrainer(config, prepared, folder, emit, signal),
  });
}

interface Prepared {
  model: MlmModel;
  tokenizer: WordPieceTokenizer;
  data: PretrainingData;
  backend: BackendChoice;
  /** Tokenizer files of a pretrained source folder, carried over to every model folder written. */
  tokenizerFiles: Record<string, string>;
}

async function prepare(
  config: ResolvedPretrainConfig,
  backendOverride: BackendName | undefined,
  emit: Emit,
): Promise<Prepared> {
  const log = (message: string, level: 'info' | 'warn' = 'info') => emit({ type: 'log', level, message });
  const backend = await selectBackend(backendOverride ?? config.training.backend);
  const base = await loadWordPieceBase(config, log);
  for (const warning of base.warnings) log(warning, 'warn');
  const fromFolder = !('scratch' in config.model);
  const savedHead = fromFolder ? readMlmHead(base.source, base.bert) : undefined;
  log(`encoder: ${base.source}; MLM head: ${savedHead ? 'from the checkpoint' : 'random init'}`);

  const started = performance.now();
  const data = loadPretrainingData(config.pretrain, base.tokenizer, config.training.seed);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  log(
    `corpus: ${data.documents.train} documents, ${data.trainTokens} tokens in ${data.train.length} sequences of at most ${config.pretrain.maxLength}; ` +
      `held out: ${data.documents.validation} documents, ${data.validation.length} sequences (read and tokenized in ${seconds} s)`,
  );
  const model = new MlmModel({
    bert: base.bert,
    encoder: base.weights,
    head: savedHead ?? randomMlmHead(base.bert, config.training.seed),
    dropout: config.training.dropout,
  });
  return {
    model,
    tokenizer: base.tokenizer,
    data,
    backend,
    tokenizerFiles: fromFolder ? tokenizerFilesOf(base.source) : {},
  };
}

/** The `cls.predictions.*` weights of a model folder, when it has all of them with the right shapes. */
function readMlmHead(folder: string, bert: BertConfig): WeightMap | undefined {
  const file = path.join(folder, WEIGHTS_FILE);
  if (!fs.existsSync(file)) return undefined; // a sharded checkpoint: its head is not read (yet)
  const head: WeightMap = new Map();
  const tensors = readSafetensors(file).tensors;
  for (const [name, shape] of mlmHeadShapes(bert)) {
    const tensor = tensors.get(name);
    if (!tensor || tensor.shape.join() !== shape.join()) return undefined;
    head.set(name, { shape, data: toFloat32(tensor) });
  }
  return head;
}

const CARRIED_TOKENIZER_FILES = [TOKENIZER_CONFIG_FILE, 'tokenizer.json', 'special_tokens_map.json'];

function tokenizerFilesOf(folder: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of CARRIED_TOKENIZER_FILES) {
    const file = path.join(folder, name);
    if (fs.existsSync(file)) files[name] = fs.readFileSync(file, 'utf8');
  }
  return files;
}

/** Masked language modelling, every weight trainable. */
class Pretrainer extends TrainingLoop<Batch> {
  private readonly model: MlmModel;
  private readonly data: PretrainingData;
  private readonly vocab: MaskVocabulary;
  private readonly masking: MaskingOptions;
  /** Masked once, with their own seed: every evaluation scores the same positions. */
  private readonly validationBatches: MaskedBatch[];
  private lastMetrics?: Record<string, number>;
  /** The weights of the checkpoint being written, exported once for both of its files. */
  private pendingWeights?: WeightMap;

  constructor(
    private readonly config: ResolvedPretrainConfig,
    private readonly prepared: Prepared,
    folder: RunFolder,
    emit: Emit,
    signal?: AbortSignal,
  ) {
    super({
      config,
      method: MLM_METHOD,
      kind: 'pretrain',
      store: prepared.model.store,
      folder,
      backend: prepared.backend,
      emit,
      signal,
      trainExamples: prepared.data.train.length,
      validationExamples: prepared.data.validation.length,
      bestMetric: { name: 'loss', lowerIsBetter: true },
    });
    this.model = prepared.model;
    this.data = prepared.data;
    this.vocab = maskVocabulary(prepared.tokenizer);
    const p = config.pretrain;
    this.masking = {
      probability: p.maskProbability,
      replaceWithMask: p.replaceWithMask,
      replaceWithRandom: p.replaceWithRandom,
    };
    const rng = new Rng((config.training.seed ^ 0x76616c69) >>> 0);
    this.validationBatches = makeBatches(this.data.validation, this.training.batchSize * 2).map((batch) =>
      maskBatch(batch, this.vocab, this.masking, rng),
    );
  }

  protected epochBatches(epoch: number): Batch[] {
    return makeBatches(this.data.train, this.training.batchSize, this.epochRng(epoch));
  }

  protected trainStep(batch: Batch, epoch: number): void {
    const masked = maskBatch(batch, this.vocab, this.masking, this.maskRng(this.step));
    const ctx: ForwardContext = { training: true, dropoutSeed: () => this.rng.nextUint32() };
    // the MLM loss is a mean over masked tokens, so each micro-batch weighs as many as it holds
    const parts = splitMaskedBatch(masked, this.microBatchSize).map((part) => ({
      weight: part.targets.length / masked.targets.length,
      lossOf: () => this.lossOf(part, ctx),
    }));
    this.optimize(parts, batch.batchSize, epoch);
  }

  protected probePass(rows: number) {
    const longest = this.data.train.reduce((a, b) => (b.inputIds.length > a.inputIds.length ? b : a));
    const batch = makeBatches(new Array<typeof longest>(rows).fill(longest), rows)[0]!;
    const masked = maskBatch(batch, this.vocab, this.masking, new Rng(PROBE_SEED));
    const draws = new Rng(PROBE_SEED);
    const ctx: ForwardContext = { training: true, dropoutSeed: () => draws.nextUint32() };
    return { lossOf: () => this.lossOf(masked, ctx), tokens: batch.seqLength, field: '/pretrain/maxLength' };
  }

  /** A stream per (seed, step), so the masks of a step do not depend on anything drawn before it. */
  private maskRng(step: number): Rng {
    return new Rng((Math.imul(this.training.seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0);
  }

  private lossOf(masked: MaskedBatch, ctx: ForwardContext): tf.Scalar {
    return this.model.loss(this.logitsOf(masked, ctx), tf.tensor1d(masked.targets, 'int32'));
  }

  private logitsOf(masked: MaskedBatch, ctx: ForwardContext): tf.Tensor2D {
    return this.model.logits(batchTensors(masked.batch), tf.tensor1d(masked.positions, 'int32'), ctx);
  }

  /**
   * On the held-out sequences: MLM loss (mean over the selected tokens), accuracy and perplexity,
   * and loss and accuracy apart for the tokens shown as [MASK] (`maskLoss`, `maskAccuracy`), kept
   * (`keptAccuracy`) and replaced by a random token (`randomAccuracy`). A model that copies its
   * input and guesses the most frequent token under [MASK] has high kept accuracy and a [MASK]
   * accuracy at the most frequent token's share: the plateau, told apart from learning context.
   */
  protected validate(): Record<string, number> | undefined {
    if (!this.validationBatches.length) return undefined;
    const ctx: ForwardContext = { training: false, dropoutSeed: () => undefined };
    const tally = new MaskedTokenTally();
    for (const masked of this.validationBatches) {
      const [losses, predicted] = tf.tidy(() => {
        const logits = this.logitsOf(masked, ctx);
        return [tokenLosses(logits, masked.targets).dataSync(), tf.argMax(logits, 1).dataSync()];
      });
      tally.add(masked, this.vocab.maskId, losses, predicted);
    }
    this.lastMetrics = tally.metrics();
    return this.lastMetrics;
  }

  protected placement(): Placement {
    return this.model.placement();
  }

  protected checkpointWeights(): WeightMap {
    this.pendingWeights = this.model.store.exportWeights();
    return this.pendingWeights;
  }

  /**
   * Makes the checkpoint folder a Hugging Face model folder too. The checkpoint is complete (and
   * resumable) before this runs; these files are each written atomically, config.json last, so a
   * run killed in between leaves a checkpoint that is simply not a model folder.
   */
  protected afterCheckpoint(dir: string): void {
    const weights = this.pendingWeights ?? this.model.store.exportWeights();
    this.pendingWeights = undefined;
    onDisk(dir, `the model files of ${path.basename(dir)}`, () => this.writeModel(dir, weights));
  }

  protected beforeFinish(state: FinishedMessage['state']): Pick<FinishedMessage, 'modelDir'> {
    if (state !== 'finished') return {}; // a stopped run's last checkpoint is a model folder already
    const modelDir = onDisk(this.config.output.modelDir ?? this.folder.file('model'), 'the final model', () =>
      this.writeFinalModel(),
    );
    this.emit({ type: 'log', level: 'info', message: `model written to ${modelDir}` });
    return { modelDir };
  }

  /**
   * Assembles the model beside its destination and swaps it in, so the folder is never half
   * written. A destination that has meanwhile filled with other files is left alone: the model goes
   * to the run folder instead, with a warning.
   */
  private writeFinalModel(): string {
    let target = this.config.output.modelDir ?? this.folder.file('model');
    if (!replaceable(target)) {
      this.emit({
        type: 'log',
        level: 'warn',
        message: `${target} now holds files peft-lab pretrain did not write; writing the model to the run folder instead`,
      });
      target = this.folder.file('model');
    }
    const staging = `${target}.tmp-${process.pid}`;
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { recursive: true });
    try {
      this.writeModel(staging, this.model.store.exportWeights(), {
        [PRETRAIN_CARD_FILE]: `${JSON.stringify(this.card(target), null, 2)}\n`,
      });
    } catch (err) {
      fs.rmSync(staging, { recursive: true, force: true }); // a full disk must not keep a half model
      throw err;
    }
    const old = `${target}.old-${process.pid}`;
    if (fs.existsSync(target)) fs.renameSync(target, old);
    fs.renameSync(staging, target);
    fs.rmSync(old, { recursive: true, force: true });
    return target;
  }

  /** config.json, model.safetensors (encoder and cls.* head), vocab.txt and tokenizer_config.json. */
  private writeModel(dir: string, weights: WeightMap, extraFiles: Record<string, string> = {}): void {
    const bert = this.model.spec.bert;
    writeBertFolder(dir, bert, weights, [...this.prepared.tokenizer.tokens], {
      ...this.prepared.tokenizerFiles,
      ...extraFiles,
    });
    // writeBertFolder describes a BertModel; this folder also holds the head of a BertForMaskedLM.
    const configFile = path.join(dir, CONFIG_FILE);
    const json = readJsonFile(configFile, 'model config') as Record<string, unknown>;
    writeJsonAtomic(configFile, { ...json, architectures: ['BertForMaskedLM'] });
  }

  /**
   * How the model was made, for people and for the next `peft-lab pretrain` into the same folder.
   * Paths are relative to the model folder, so the card stays true when the folder is committed.
   */
  private card(modelDir: string): Record<string, unknown> {
    const p = this.config.pretrain;
    const t = this.training;
    const relative = (file: string): string => path.relative(modelDir, file).split(path.sep).join('/');
    return {
      madeBy: 'peft-lab pretrain',
      name: this.config.name,
      config: relative(this.config.sourceFile),
      run: relative(this.folder.dir),
      objective: {
        kind: 'masked language modelling',
        maskProbability: p.maskProbability,
        replaceWithMask: p.replaceWithMask,
        replaceWithRandom: p.replaceWithRandom,
      },
      corpus: {
        files: p.corpus.map(relative),
        validationFiles: p.validation?.map(relative),
        documents: this.data.documents,
        sequences: { train: this.data.train.length, validation: this.data.validation.length },
        trainTokens: this.data.trainTokens,
        maxLength: p.maxLength,
        pack: p.pack,
      },
      training: {
        steps: this.step,
        batchSize: t.batchSize,
        learningRate: t.learningRate,
        warmupRatio: t.warmupRatio,
        weightDecay: t.weightDecay,
        seed: t.seed,
        backend: this.setup.backend.description,
        durationMs: Date.now() - this.startedAt.getTime(),
      },
      validation: this.lastMetrics,
      heldOutPositions: this.validationBatches.reduce((n, b) => n + b.targets.length, 0),
      weights: `model.safetensors: bert.* and ${MLM_HEAD_PREFIX}* (the decoder is tied to bert.embeddings.word_embeddings)`,
      created: new Date().toISOString(),
    };
  }

  protected disposeModel(): void {
    this.model.dispose();
  }
}

/** Cross-entropy of each row of logits [M, V] against its target, [M]. */
export function tokenLosses(logits: tf.Tensor2D, targets: Int32Array): tf.Tensor1D {
  const [rows, vocab] = logits.shape;
  const flat = Int32Array.from(targets, (t, i) => i * vocab + t);
  const picked = tf.gather(tf.reshape(logits, [-1]), tf.tensor1d(flat, 'int32'));
  return tf.sub(tf.logSumExp(logits, 1), picked).reshape([rows]) as tf.Tensor1D;
}

/** How a selected token was shown to the model. */
type Shown = 'mask' | 'kept' | 'random';

/** Held-out MLM loss and accuracy, overall and by how each selected token was shown. */
export class MaskedTokenTally {
  private readonly sums = {
    all: { loss: 0, hits: 0, n: 0 },
    mask: { loss: 0, hits: 0, n: 0 },
    kept: { loss: 0, hits: 0, n: 0 },
    random: { loss: 0, hits: 0, n: 0 },
  };

  add(masked: MaskedBatch, maskId: number, losses: ArrayLike<number>, predicted: ArrayLike<number>): void {
    masked.targets.forEach((target, i) => {
      const shownId = masked.batch.inputIds[masked.positions[i]!]!;
      const shown: Shown = shownId === maskId ? 'mask' : shownId === target ? 'kept' : 'random';
      const hit = predicted[i] === target ? 1 : 0;
      for (const s of [this.sums.all, this.sums[shown]]) {
        s.loss += losses[i]!;
        s.hits += hit;
        s.n++;
      }
    });
  }

  metrics(): Record<string, number> {
    const { all, mask, kept, random } = this.sums;
    const loss = all.loss / all.n;
    const out: Record<string, number> = { loss, accuracy: all.hits / all.n, perplexity: Math.exp(loss) };
    if (mask.n) Object.assign(out, { maskLoss: mask.loss / mask.n, maskAccuracy: mask.hits / mask.n });
    if (kept.n) out.keptAccuracy = kept.hits / kept.n;
    if (random.n) out.randomAccuracy = random.hits / random.n;
    return out;
  }
}

/** An absent or empty folder, or one an earlier `peft-lab pretrain` wrote. */
function replaceable(dir: string): boolean {
  if (!fs.existsSync(dir)) return true;
  if (!fs.statSync(dir).isDirectory()) return false;
  const entries = fs.readdirSync(dir);
  return entries.length === 0 || entries.includes(PRETRAIN_CARD_FILE);
}
