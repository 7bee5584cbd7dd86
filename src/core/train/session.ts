/**
 * Everything a run needs before its first step: the base encoder and its tokenizer (from a local
 * folder, the hub cache, or a fresh random init), and the encoded train/validation/test splits.
 */
import type { ResolvedConfig } from '../config/types';
import { DEFAULT_BERT_CONFIG, type BertConfig, type WeightMap } from '../model/bert-config';
import { randomBertWeights, randomPooler, readBertFolder } from '../model/hf-checkpoint';
import { resolveHubModel } from '../model/hub';
import { WordPieceTokenizer } from '../data/tokenizer';
import { loadTokenizer, type TextTokenizer } from '../data/hf-tokenizer';
import { CheckpointError } from '../errors';
import { FAMILY_NAMES, modelTypeOf } from '../model/families';
import { readExamples, splitForValidation, type Example } from '../data/readers';
import { encodeExamples, type EncodedExample } from '../data/batches';
import { Rng } from '../random';
import { formatBytes } from '../../protocol/format';

export interface BaseModel {
  bert: BertConfig;
  weights: WeightMap;
  tokenizer: TextTokenizer;
  /** Where it came from, for the run summary. */
  source: string;
  warnings: string[];
  /** Set when the base checkpoint has no pooler: a fresh run says so; a run continued from its own checkpoint has a trained one. */
  poolerWarning?: string;
}

export interface Dataset {
  labelNames: string[];
  train: EncodedExample[];
  validation: EncodedExample[];
  test: EncodedExample[];
}

/** How readBertFolder's warning about a missing pooler begins. */
const NO_POOLER = 'the checkpoint has no pooler';

/** The encoder a config names; only its `model` and `training.seed` are read, so pretraining configs work too. */
export async function loadBaseModel(
  config: Pick<ResolvedConfig, 'model' | 'training'>,
  log: (message: string) => void = () => {},
): Promise<BaseModel> {
  const model = config.model;
  if ('scratch' in model) {
    const tokenizer = WordPieceTokenizer.fromVocabFile(model.scratch.vocab);
    const s = model.scratch;
    const bert: BertConfig = {
      ...DEFAULT_BERT_CONFIG,
      vocab_size: tokenizer.vocabSize,
      hidden_size: s.hiddenSize,
      num_hidden_layers: s.layers,
      num_attention_heads: s.heads,
      intermediate_size: s.intermediateSize,
      max_position_embeddings: s.maxPositions,
      type_vocab_size: s.typeVocabSize,
      initializer_range: s.initializerRange,
    };
    const init = { positions: s.positionInit, attention: s.attentionInit };
    const structured = [
      s.positionInit === 'sinusoidal' && 'sinusoidal positions',
      s.attentionInit === 'mimetic' && 'mimetic attention',
    ].filter(Boolean);
    const source = `random init (seed ${s.seed}${structured.length ? `, ${structured.join(', ')}` : ''}), vocabulary ${s.vocab}`;
    return { bert, weights: randomBertWeights(bert, s.seed, init), tokenizer, source, warnings: [] };
  }
  const folder =
    'path' in model
      ? model.path
      : await resolveHubModel(model.hub, {
          revision: model.revision,
          cacheDir: model.cacheDir,
          onProgress: progressLogger(log),
        });
  const read = readBertFolder(folder);
  const weights = read.weights;
  if (!weights.has('bert.pooler.dense.weight'))
    for (const [k, v] of randomPooler(read.config, config.training.seed)) weights.set(k, v);
  const tokenizer = loadTokenizer(folder);
  // A token id past the embedding table would read another token's row (or none): refuse the pair.
  if (tokenizer.vocabSize > read.config.vocab_size) {
    throw new CheckpointError(
      read.files.config,
      `the tokenizer has ${tokenizer.vocabSize} tokens but "vocab_size" is ${read.config.vocab_size}: the tokenizer and the weights belong to different models`,
    );
  }
  const poolerWarning = read.warnings.find((w) => w.includes(NO_POOLER));
  return {
    bert: read.config,
    weights,
    tokenizer,
    source: folder,
    warnings: read.warnings.filter((w) => w !== poolerWarning),
    ...(poolerWarning && { poolerWarning }),
  };
}

/** A BERT base with a WordPiece vocabulary, as masked-language-model pretraining needs (it masks by WordPiece ids). */
export async function loadWordPieceBase(
  config: Pick<ResolvedConfig, 'model' | 'training'>,
  log: (message: string) => void = () => {},
): Promise<BaseModel & { tokenizer: WordPieceTokenizer }> {
  const base = await loadBaseModel(config, log);
  const type = modelTypeOf(base.bert);
  if (type !== 'bert')
    throw new CheckpointError(
      base.source,
      `pretraining continues BERT encoders only; this model is ${FAMILY_NAMES[type]} (model_type "${type}")`,
    );
  if (!(base.tokenizer instanceof WordPieceTokenizer)) {
    // A tokenizer.json WordPiece vocabulary still pretrains, read by the hand-written tokenizer from its vocab.txt
    return { ...base, tokenizer: WordPieceTokenizer.fromFolder(base.source) };
  }
  return base as BaseModel & { tokenizer: WordPieceTokenizer };
}

function progressLogger(log: (message: string) => void) {
  let lastPercent = -10;
  return (file: string, received: number, total?: number) => {
    if (!total) return;
    const percent = Math.floor((100 * received) / total);
    if (percent >= lastPercent + 10 || percent === 100) {
      lastPercent = percent;
      log(`downloading ${file}: ${percent}% of ${formatBytes(total)}`);
    }
  };
}

export function loadDataset(config: ResolvedConfig, tokenizer: TextTokenizer): Dataset {
  const { data, task } = config;
  const train = readExamples(data.train, data, task, task.labels);
  const labelNames = train.labelNames;
  let trainExamples = train.examples;
  let validation: Example[] = [];
  if (data.validation) {
    validation = readExamples(data.validation, data, task, labelNames).examples;
  } else if (data.validationSplit > 0) {
    const split = splitForValidation(trainExamples, data.validationSplit, new Rng(config.training.seed));
    trainExamples = split.train;
    validation = split.validation;
  }
  if (data.maxTrainExamples !== undefined) trainExamples = trainExamples.slice(0, data.maxTrainExamples);
  const test = data.test ? readExamples(data.test, data, task, labelNames).examples : [];
  const encode = (examples: Example[]) => encodeExamples(examples, tokenizer, data.maxLength);
  return { labelNames, train: encode(trainExamples), validation: encode(validation), test: encode(test) };
}
