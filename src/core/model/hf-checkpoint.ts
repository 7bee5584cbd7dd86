/**
 * BERT encoders in Hugging Face's folder layout (config.json + model.safetensors + vocab.txt), so
 * PEFT Lab can start from any hub checkpoint and hand its results back to
 * `transformers.AutoModel.from_pretrained`. Also Hugging Face's random initialisation, for models
 * trained from scratch and for checkpoints saved without a pooler.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '../checkpoint/atomic';
import {
  readSafetensors,
  toFloat32,
  writeSafetensors,
  type NamedTensor,
  type TensorToWrite,
} from '../checkpoint/safetensors';
import { CheckpointError } from '../errors';
import { Rng } from '../random';
import { DEFAULT_BERT_CONFIG, bertWeightShapes, type BertConfig, type WeightMap } from './bert-config';
import {
  bertFieldsOf,
  checkpointNameOf,
  encoderWeightShapes,
  familyDefaults,
  familySettings,
  hfLayout,
  isSupportedModelType,
  modelTypeOf,
  prefixedName,
  unsupportedModelTypeError,
  usablePositions,
} from './families';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const SHARDED_WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
export const VOCAB_FILE = 'vocab.txt';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

/** Weight formats `transformers` saves that PEFT Lab cannot read: pickle (unsafe to load), HDF5, msgpack. */
export const UNSUPPORTED_WEIGHT_FILES = [
  'pytorch_model.bin',
  'pytorch_model.bin.index.json',
  'tf_model.h5',
  'flax_model.msgpack',
];

export interface BertFolder {
  config: BertConfig;
  weights: WeightMap;
  /** The files actually read; `weights` is the shard index for a sharded checkpoint. */
  files: { config: string; weights: string };
  /** Tolerated oddities (no pooler, ignored extra tensors) that the caller may want to show. */
  warnings: string[];
}

/** How to turn a pickle/HDF5 checkpoint into safetensors; `source` may be a folder or a hub id. */
export function safetensorsConversionHint(source: string, destination: string): string {
  return (
    'PEFT Lab reads safetensors weights only. Convert them once with Python (pip install transformers torch):\n' +
    '  from transformers import AutoModel\n' +
    `  AutoModel.from_pretrained(${pythonString(source)}).save_pretrained(${pythonString(destination)}, safe_serialization=True)`
  );
}

// ---------------------------------------------------------------- config.json

type NumericField = Exclude<keyof BertConfig, 'hidden_act' | 'model_type' | 'embedding_size' | 'modernbert'>;

interface FieldRule {
  required: boolean;
  isValid: (value: number) => boolean;
  expected: string;
}

const positiveInteger = (required: boolean): FieldRule => ({
  required,
  isValid: (v) => Number.isInteger(v) && v >= 1,
  expected: 'a positive integer',
});
const OPTIONAL_PROBABILITY: FieldRule = {
  required: false,
  isValid: (v) => v >= 0 && v < 1,
  expected: 'a probability in [0, 1)',
};
const OPTIONAL_POSITIVE: FieldRule = { required: false, isValid: (v) => v > 0, expected: 'a positive number' };

/** Fields in the order `writeBertFolder` puts them in config.json, which is also `transformers`' order. */
const FIELD_RULES: Record<NumericField, FieldRule> = {
  vocab_size: positiveInteger(true),
  hidden_size: positiveInteger(true),
  num_hidden_layers: positiveInteger(true),
  num_attention_heads: positiveInteger(true),
  intermediate_size: positiveInteger(true),
  hidden_dropout_prob: OPTIONAL_PROBABILITY,
  attention_probs_dropout_prob: OPTIONAL_PROBABILITY,
  max_position_embeddings: positiveInteger(false),
  type_vocab_size: positiveInteger(false),
  layer_norm_eps: OPTIONAL_POSITIVE,
  pad_token_id: { required: false, isValid: (v) => Number.isInteger(v) && v >= 0, expected: 'a non-negative integer' },
  initializer_range: OPTIONAL_POSITIVE,
};

const HIDDEN_ACTIVATIONS: readonly BertConfig['hidden_act'][] = ['gelu', 'relu', 'gelu_new', 'gelu_python'];

/** Reads and checks `config.json` of a Hugging Face BERT folder; unset optional fields get PEFT Lab's defaults. */
export function readBertConfig(folder: string): BertConfig {
  const file = path.join(folder, CONFIG_FILE);
  return parseBertConfig(readJsonFile(file, 'model config'), file);
}

function parseBertConfig(raw: unknown, file: string): BertConfig {
  if (!isPlainObject(raw)) throw new CheckpointError(file, 'the model config must be a JSON object');
  // Very old BERT configs have no model_type; their field names are then the only evidence.
  const modelType = raw.model_type ?? 'bert';
  if (!isSupportedModelType(modelType)) throw unsupportedModelTypeError(file, raw.model_type);
  checkPositionEmbeddingType(raw, file);
  const fields = bertFieldsOf(modelType, raw);
  // readNumericFields has made sure every required field, vocab_size included, is present.
  const base = {
    ...familyDefaults(modelType),
    ...readNumericFields(fields, file),
    hidden_act: readHiddenAct(fields, file),
  } as BertConfig;
  const config = { ...base, ...familySettings(modelType, raw, file, base) };
  checkConsistency(config, file);
  return config;
}

/** Relative position embeddings add weights and change attention, so such a model would load but compute nonsense. */
function checkPositionEmbeddingType(raw: Record<string, unknown>, file: string): void {
  const kind = raw.position_embedding_type;
  if (kind === undefined || kind === null || kind === 'absolute') return;
  throw new CheckpointError(
    file,
    `position_embedding_type ${JSON.stringify(kind)} is not supported yet (only "absolute")`,
  );
}

function readNumericFields(raw: Record<string, unknown>, file: string): Partial<Record<NumericField, number>> {
  const values: Partial<Record<NumericField, number>> = {};
  const missing: string[] = [];
  for (const [field, rule] of Object.entries(FIELD_RULES) as [NumericField, FieldRule][]) {
    const value = raw[field];
    // transformers writes null for an unset pad_token_id; treat null like an absent field.
    if (value === undefined || value === null) {
      if (rule.required) missing.push(field);
      continue;
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || !rule.isValid(value)) {
      throw new CheckpointError(file, `"${field}" must be ${rule.expected}, got ${JSON.stringify(value)}`);
    }
    values[field] = value;
  }
  if (missing.length > 0) {
    throw new CheckpointError(
      file,
      `the model config lacks the required field(s) ${missing.map((f) => `"${f}"`).join(', ')}`,
    );
  }
  return values;
}

function readHiddenAct(raw: Record<string, unknown>, file: string): BertConfig['hidden_act'] {
  const value = raw.hidden_act;
  if (value === undefined) return DEFAULT_BERT_CONFIG.hidden_act;
  if (!HIDDEN_ACTIVATIONS.includes(value as BertConfig['hidden_act'])) {
    throw new CheckpointError(
      file,
      `"hidden_act" ${JSON.stringify(value)} is not supported (supported: ${HIDDEN_ACTIVATIONS.join(', ')})`,
    );
  }
  return value as BertConfig['hidden_act'];
}

function checkConsistency(config: BertConfig, file: string): void {
  if (config.hidden_size % config.num_attention_heads !== 0) {
    throw new CheckpointError(
      file,
      `"hidden_size" ${config.hidden_size} is not a multiple of "num_attention_heads" ${config.num_attention_heads}: ` +
        'each attention head gets hidden_size / num_attention_heads dimensions',
    );
  }
  if (config.pad_token_id >= config.vocab_size) {
    throw new CheckpointError(
      file,
      `"pad_token_id" ${config.pad_token_id} is outside the vocabulary (vocab_size ${config.vocab_size})`,
    );
  }
  if (usablePositions(config) < 2) {
    throw new CheckpointError(
      file,
      `"max_position_embeddings" ${config.max_position_embeddings} leaves no room for a sequence after the first padding_idx + 1 (${config.pad_token_id + 1}) positions`,
    );
  }
  if (config.modernbert && (config.hidden_size / config.num_attention_heads) % 2 !== 0) {
    throw new CheckpointError(
      file,
      `the attention head size ${config.hidden_size / config.num_attention_heads} must be even for rotary position embeddings`,
    );
  }
}

/** config.json as `transformers` writes it for a BertModel. */
function configJson(config: BertConfig): Record<string, unknown> {
  const fields: Record<string, unknown> = { architectures: ['BertModel'], model_type: 'bert' };
  for (const field of Object.keys(FIELD_RULES) as NumericField[]) fields[field] = config[field];
  fields.hidden_act = config.hidden_act;
  return fields;
}

// ---------------------------------------------------------------- reading weights

const POOLER_PREFIX = 'bert.pooler.';
/** Families whose checkpoints may carry a pooler; the others never have one, so its absence is no news. */
const POOLER_FAMILIES = new Set(['bert', 'roberta', 'xlm-roberta']);
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
const MAX_PROBLEM_LINES = 20;
const MAX_EXTRA_NAMES_SHOWN = 5;

/**
 * Reads a Hugging Face BERT folder: config.json and model.safetensors (or a sharded
 * model.safetensors.index.json), names normalised to `bertWeightShapes`, every weight float32.
 * All missing and mis-shaped weights are reported together in one CheckpointError.
 */
export function readBertFolder(folder: string): BertFolder {
  checkFolderExists(folder);
  const config = readBertConfig(folder);
  const weightsFile = locateWeights(folder);
  const tensors = weightsFile.endsWith(SHARDED_WEIGHTS_INDEX_FILE)
    ? readShardedSafetensors(weightsFile)
    : readSafetensors(weightsFile).tensors;
  const { weights, warnings } = matchWeights(config, normaliseNames(config, tensors, weightsFile), weightsFile);
  return { config, weights, files: { config: path.join(folder, CONFIG_FILE), weights: weightsFile }, warnings };
}

function checkFolderExists(folder: string): void {
  let stats: fs.Stats;
  try {
    stats = fs.statSync(folder);
  } catch {
    throw new CheckpointError(folder, 'model folder does not exist');
  }
  if (!stats.isDirectory()) throw new CheckpointError(folder, 'is a file, not a model folder');
}

function locateWeights(folder: string): string {
  for (const name of [WEIGHTS_FILE, SHARDED_WEIGHTS_INDEX_FILE]) {
    const file = path.join(folder, name);
    if (fs.existsSync(file)) return file;
  }
  const unsupported = UNSUPPORTED_WEIGHT_FILES.find((name) => fs.existsSync(path.join(folder, name)));
  if (unsupported !== undefined) {
    throw new CheckpointError(
      path.join(folder, unsupported),
      `the folder has ${unsupported} but no ${WEIGHTS_FILE}. ${safetensorsConversionHint(folder, folder)}`,
    );
  }
  throw new CheckpointError(
    path.join(folder, WEIGHTS_FILE),
    `model weights not found: the folder has neither ${WEIGHTS_FILE} nor ${SHARDED_WEIGHTS_INDEX_FILE}`,
  );
}

/** Large checkpoints are split into shards listed in an index: {"weight_map": {tensor name: shard file}}. */
function readShardedSafetensors(indexFile: string): Map<string, NamedTensor> {
  const weightMap = readShardIndex(indexFile);
  const merged = new Map<string, NamedTensor>();
  for (const shard of new Set(weightMap.values())) {
    const shardFile = path.join(path.dirname(indexFile), shard);
    for (const [name, tensor] of readSafetensors(shardFile).tensors) {
      if (merged.has(name)) throw new CheckpointError(shardFile, `tensor "${name}" is also in another shard`);
      merged.set(name, tensor);
    }
  }
  for (const [name, shard] of weightMap) {
    if (!merged.has(name))
      throw new CheckpointError(indexFile, `lists tensor "${name}" in ${shard}, but that shard does not contain it`);
  }
  return merged;
}

/** The index's tensor-to-shard map. Shard names must be plain file names so an index cannot point outside its folder. */
export function readShardIndex(indexFile: string): Map<string, string> {
  const index = readJsonFile(indexFile, 'safetensors shard index');
  const weightMap = isPlainObject(index) ? index.weight_map : undefined;
  if (!isPlainObject(weightMap)) {
    throw new CheckpointError(
      indexFile,
      'a shard index must have a "weight_map" object mapping tensor names to shard files',
    );
  }
  const result = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || !isPlainFileName(shard)) {
      throw new CheckpointError(
        indexFile,
        `"weight_map" entry "${name}" must be a file name in the same folder, got ${JSON.stringify(shard)}`,
      );
    }
    result.set(name, shard);
  }
  return result;
}

interface Candidate {
  rawName: string;
  tensor: NamedTensor;
}

/** Maps the naming variants found in the wild onto the family's checkpoint names; task heads are dropped. */
function normaliseNames(config: BertConfig, tensors: Map<string, NamedTensor>, file: string): Map<string, Candidate> {
  const candidates = new Map<string, Candidate>();
  for (const [rawName, tensor] of tensors) {
    const name = prefixedName(config, rawName);
    if (name === undefined) continue;
    const previous = candidates.get(name);
    if (previous !== undefined) {
      throw new CheckpointError(
        file,
        `tensors "${previous.rawName}" and "${rawName}" are the same weight ${name} under two names`,
      );
    }
    candidates.set(name, { rawName, tensor });
  }
  return candidates;
}

/** The checkpoint name of a stored BERT tensor, or undefined for tensors that are never part of the encoder. */
export function normalisedWeightName(rawName: string): string | undefined {
  return prefixedName(DEFAULT_BERT_CONFIG as BertConfig, rawName);
}

interface TensorDescription {
  dtype: string;
  shape: number[];
}

interface WeightCheck {
  problems: string[];
  poolerMissing: boolean;
  unexpected: string[];
}

/**
 * Compares found tensors with the architecture. Non-float tensors that are not expected weights are
 * buffers such as `position_ids`, not parameters, so they are neither used nor reported.
 */
function checkWeights(config: BertConfig, found: Map<string, TensorDescription>): WeightCheck {
  const expected = hfLayout(config);
  const problems: string[] = [];
  const missingPooler: string[] = [];
  const isPooler = (layout: { parts: { canonical: string }[] }) =>
    layout.parts.every((p) => p.canonical.startsWith(POOLER_PREFIX));
  for (const [name, layout] of expected) {
    const tensor = found.get(name);
    const shape = layout.shape;
    if (tensor === undefined) {
      (isPooler(layout) ? missingPooler : problems).push(`missing ${name} (expected shape ${formatShape(shape)})`);
    } else if (!FLOAT_DTYPES.has(tensor.dtype)) {
      problems.push(`${name}: expected a float tensor, found ${tensor.dtype}`);
    } else if (!sameShape(tensor.shape, shape)) {
      problems.push(`${name}: expected shape ${formatShape(shape)}, found ${formatShape(tensor.shape)}`);
    }
  }
  const poolerWeightCount = [...expected.values()].filter(isPooler).length;
  // Half a pooler is a damaged checkpoint, not a deliberately headless one.
  const poolerMissing = missingPooler.length === poolerWeightCount;
  if (!poolerMissing) problems.push(...missingPooler);
  const unexpected = [...found]
    .filter(([name, t]) => !expected.has(name) && FLOAT_DTYPES.has(t.dtype))
    .map(([name]) => name);
  return { problems, poolerMissing: poolerMissing && POOLER_FAMILIES.has(modelTypeOf(config)), unexpected };
}

function matchWeights(
  config: BertConfig,
  candidates: Map<string, Candidate>,
  file: string,
): { weights: WeightMap; warnings: string[] } {
  const found = new Map(
    [...candidates].map(([name, { tensor }]) => [name, { dtype: tensor.dtype, shape: tensor.shape }]),
  );
  const check = checkWeights(config, found);
  if (check.problems.length > 0) throw weightProblemsError(file, check.problems, candidates.size, config);
  const byCanonical = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, layout] of hfLayout(config)) {
    const candidate = candidates.get(name);
    if (candidate === undefined) continue;
    const data = toFloat32(candidate.tensor);
    for (const part of layout.parts) {
      // A stacked tensor (ModernBERT's Wqkv) gives each weight its rows; others are taken whole.
      const rowSize = part.shape.slice(1).reduce((n, size) => n * size, 1);
      const whole = layout.parts.length === 1 && part.rowOffset === 0;
      byCanonical.set(part.canonical, {
        shape: part.shape,
        data: whole ? data : data.slice(part.rowOffset * rowSize, (part.rowOffset + part.shape[0]!) * rowSize),
      });
    }
  }
  // In encoderWeightShapes' order, which is the order the model adds its parameters in.
  const weights: WeightMap = new Map();
  for (const name of encoderWeightShapes(config).keys()) {
    const w = byCanonical.get(name);
    if (w) weights.set(name, w);
  }
  return { weights, warnings: weightWarnings(check, config) };
}

function weightWarnings(check: WeightCheck, config: BertConfig): string[] {
  const warnings: string[] = [];
  if (check.poolerMissing) {
    warnings.push(
      `the checkpoint has no pooler (${checkpointNameOf(config, 'bert.pooler.dense.weight').replace(/\.weight$/, '')}.*); it will be initialised randomly`,
    );
  }
  if (check.unexpected.length > 0) {
    const shown = check.unexpected.slice(0, MAX_EXTRA_NAMES_SHOWN).join(', ');
    const more =
      check.unexpected.length > MAX_EXTRA_NAMES_SHOWN
        ? `, and ${check.unexpected.length - MAX_EXTRA_NAMES_SHOWN} more`
        : '';
    warnings.push(`ignored ${check.unexpected.length} tensor(s) that are not part of the encoder: ${shown}${more}`);
  }
  return warnings;
}

function weightProblemsError(
  file: string,
  problems: string[],
  tensorCount: number,
  config: BertConfig,
): CheckpointError {
  const shown = problems.slice(0, MAX_PROBLEM_LINES);
  if (problems.length > MAX_PROBLEM_LINES) shown.push(`and ${problems.length - MAX_PROBLEM_LINES} more`);
  const architecture =
    `vocab_size ${config.vocab_size}, hidden_size ${config.hidden_size}, ` +
    `${config.num_hidden_layers} layers, intermediate_size ${config.intermediate_size}`;
  return new CheckpointError(
    file,
    `${problems.length} weight problem(s) for the architecture in ${CONFIG_FILE} (${architecture}; ${tensorCount} tensor(s) in the file):\n` +
      shown.map((line) => `  ${line}`).join('\n'),
  );
}

// ---------------------------------------------------------------- writing

/**
 * Writes a folder that both `readBertFolder` and `transformers.AutoModel.from_pretrained` load.
 * Every file is replaced atomically; config.json, which marks a folder as a model, is written last.
 * `extraFiles` (relative path -> text) may add files or override the generated tokenizer_config.json.
 */
export function writeBertFolder(
  folder: string,
  config: BertConfig,
  weights: WeightMap,
  vocabTokens: string[],
  extraFiles: Record<string, string> = {},
): void {
  const configFile = path.join(folder, CONFIG_FILE);
  const weightsFile = path.join(folder, WEIGHTS_FILE);
  const vocabFile = path.join(folder, VOCAB_FILE);
  const checkedConfig = parseBertConfig(configJson(config), configFile);
  checkWeightsToWrite(checkedConfig, weights, weightsFile);
  checkVocab(vocabTokens, checkedConfig, vocabFile);
  const extras = Object.entries(extraFiles).map(([name, text]) => ({ file: fileInside(folder, name), text }));

  writeSafetensors(weightsFile, tensorsToWrite(weights), { format: 'pt' });
  writeTextFile(vocabFile, vocabTokens.map((token) => `${token}\n`).join(''));
  writeJsonFile(path.join(folder, TOKENIZER_CONFIG_FILE), {
    do_lower_case: true,
    model_max_length: checkedConfig.max_position_embeddings,
  });
  for (const { file, text } of extras) writeTextFile(file, text);
  writeJsonFile(configFile, configJson(checkedConfig));
}

function checkWeightsToWrite(config: BertConfig, weights: WeightMap, file: string): void {
  const found = new Map([...weights].map(([name, { shape }]) => [name, { dtype: 'F32', shape }]));
  const { problems } = checkWeights(config, found);
  if (problems.length > 0) throw weightProblemsError(file, problems, weights.size, config);
}

function checkVocab(tokens: string[], config: BertConfig, file: string): void {
  // Models may have more embedding rows than tokens (padded for speed), never fewer.
  if (tokens.length === 0 || tokens.length > config.vocab_size) {
    throw new CheckpointError(
      file,
      `the vocabulary has ${tokens.length} token(s); it needs between 1 and vocab_size (${config.vocab_size})`,
    );
  }
  const broken = tokens.findIndex((token) => /[\r\n]/.test(token));
  if (broken >= 0)
    throw new CheckpointError(file, `token ${broken} contains a line break, which vocab.txt cannot store`);
}

function tensorsToWrite(weights: WeightMap): Record<string, TensorToWrite> {
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, { shape, data }] of weights) tensors[name] = { dtype: 'F32', shape, data };
  return tensors;
}

function fileInside(folder: string, relative: string): string {
  const root = path.resolve(folder);
  const file = path.resolve(root, relative);
  if (path.isAbsolute(relative) || !file.startsWith(root + path.sep)) {
    throw new CheckpointError(
      file,
      `extra file "${relative}" must be a relative path inside the model folder ${folder}`,
    );
  }
  return file;
}

function writeTextFile(file: string, text: string): void {
  try {
    writeFileAtomic(file, text);
  } catch (err) {
    throw new CheckpointError(file, `cannot write: ${(err as Error).message}`);
  }
}

function writeJsonFile(file: string, value: unknown): void {
  try {
    writeJsonAtomic(file, value);
  } catch (err) {
    throw new CheckpointError(file, `cannot write: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------- random initialisation

const WORD_EMBEDDINGS = 'bert.embeddings.word_embeddings.weight';
/** TensorFlow's truncated normal redraws values beyond two standard deviations. */
const TRUNCATION_IN_STDS = 2;

/**
 * Hugging Face's `BertPreTrainedModel._init_weights`: Linear and embedding weights from a normal
 * with std `initializer_range` (truncated at 2 std as in the original TensorFlow BERT, so the actual
 * std is about 0.88 * initializer_range), biases 0, LayerNorm scale 1, the padding token's
 * embedding 0. Each tensor draws from its own stream seeded by `seed` and its name, so a tensor's
 * values do not depend on the architecture around it (`randomPooler` matches this pooler exactly).
 */
export function randomBertWeights(config: BertConfig, seed: number, init: StructuredInit = {}): WeightMap {
  const weights = initialise(config, seed, () => true);
  if (init.positions === 'sinusoidal') {
    const positions = weights.get(POSITION_EMBEDDINGS)!;
    positions.data = sinusoidalPositions(
      positions.shape[0]!,
      positions.shape[1]!,
      TRUNCATED_STD_FACTOR * config.initializer_range,
    );
  }
  if (init.attention === 'mimetic') {
    for (let layer = 0; layer < config.num_hidden_layers; layer++) addMimeticAttention(weights, config, layer, seed);
  }
  return weights;
}

/** Initialisations beyond BERT's random one, for models pretrained from scratch (see the schema's `positionInit`, `attentionInit`). */
export interface StructuredInit {
  positions?: 'normal' | 'sinusoidal';
  attention?: 'normal' | 'mimetic';
}

const POSITION_EMBEDDINGS = 'bert.embeddings.position_embeddings.weight';
/** The spread of a normal truncated at two standard deviations, as a share of its std. */
const TRUNCATED_STD_FACTOR = 0.8796;
/** Mimetic initialisation's strengths (Trockman & Kolter 2023, their ViT values): W_q W_kᵀ ≈ 0.7 I, W_v W_o ≈ -0.4 I. */
const MIMETIC_QK = 0.7;
const MIMETIC_VO = 0.4;

/**
 * The Transformer's position encoding (sin at even, cos at odd columns, wavelengths from 2π to
 * 10000·2π), scaled to root-mean-square `rms`, so it weighs as much as the word embeddings it is added to.
 */
export function sinusoidalPositions(positions: number, width: number, rms: number): Float32Array {
  const out = new Float32Array(positions * width);
  const scale = rms * Math.SQRT2; // a sinusoid's rms is 1/√2
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < width; i++) {
      const angle = p / 10000 ** ((2 * Math.floor(i / 2)) / width);
      out[p * width + i] = scale * (i % 2 === 0 ? Math.sin(angle) : Math.cos(angle));
    }
  }
  return out;
}

/**
 * Mimetic initialisation (Trockman & Kolter, "Mimetic Initialization of Self-Attention Layers",
 * 2023) on top of the random weights: with O a random orthogonal matrix whose columns the heads
 * share out, W_q = W_k = √0.7·O and W_v = √0.4·P, W_o = -√0.4·Pᵀ (another orthogonal P), so that
 * summed over heads W_q W_kᵀ = 0.7 I and W_v W_o = -0.4 I, as in trained Transformers: every token
 * starts attending to tokens like itself, and, with position embeddings that have a structure, to
 * its neighbours. Hugging Face's Linear weights are [out, in], the transposes of W above.
 */
function addMimeticAttention(weights: WeightMap, config: BertConfig, layer: number, seed: number): void {
  const d = config.hidden_size;
  const prefix = `bert.encoder.layer.${layer}.attention`;
  const qk = randomOrthogonal(d, new Rng(tensorSeed(seed, `${prefix}.mimetic.qk`)));
  const vo = randomOrthogonal(d, new Rng(tensorSeed(seed, `${prefix}.mimetic.vo`)));
  const add = (name: string, matrix: Float32Array, scale: number, transpose: boolean): void => {
    const w = weights.get(name)!.data;
    for (let r = 0; r < d; r++)
      for (let c = 0; c < d; c++) w[r * d + c]! += scale * matrix[transpose ? c * d + r : r * d + c]!;
  };
  add(`${prefix}.self.query.weight`, qk, Math.sqrt(MIMETIC_QK), true);
  add(`${prefix}.self.key.weight`, qk, Math.sqrt(MIMETIC_QK), true);
  add(`${prefix}.self.value.weight`, vo, Math.sqrt(MIMETIC_VO), true);
  add(`${prefix}.output.dense.weight`, vo, -Math.sqrt(MIMETIC_VO), false);
}

/** A random orthogonal n x n matrix (row-major): Gram-Schmidt, twice for accuracy, on the columns of a Gaussian one. */
function randomOrthogonal(n: number, rng: Rng): Float32Array {
  const columns = Array.from({ length: n }, () => {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i += 2) {
      const radius = Math.sqrt(-2 * Math.log(1 - rng.next()));
      const angle = 2 * Math.PI * rng.next();
      v[i] = radius * Math.cos(angle);
      if (i + 1 < n) v[i + 1] = radius * Math.sin(angle);
    }
    return v;
  });
  for (let j = 0; j < n; j++) {
    const v = columns[j]!;
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        const u = columns[k]!;
        let dot = 0;
        for (let i = 0; i < n; i++) dot += u[i]! * v[i]!;
        for (let i = 0; i < n; i++) v[i]! -= dot * u[i]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += v[i]! * v[i]!;
    norm = Math.sqrt(norm);
    for (let i = 0; i < n; i++) v[i]! /= norm;
  }
  const out = new Float32Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) out[r * n + c] = columns[c]![r]!;
  return out;
}

/** Only the two pooler weights, for checkpoints saved without one. */
export function randomPooler(config: BertConfig, seed: number): WeightMap {
  return initialise(config, seed, (name) => name.startsWith(POOLER_PREFIX));
}

function initialise(config: BertConfig, seed: number, include: (name: string) => boolean): WeightMap {
  const weights: WeightMap = new Map();
  for (const [name, shape] of bertWeightShapes(config)) {
    if (include(name)) weights.set(name, { shape, data: initialValues(name, shape, config, seed) });
  }
  return weights;
}

function initialValues(name: string, shape: number[], config: BertConfig, seed: number): Float32Array {
  const values = new Float32Array(shape.reduce((product, size) => product * size, 1));
  if (name.endsWith('.bias')) return values;
  if (name.includes('.LayerNorm.')) return values.fill(1);
  fillTruncatedNormal(values, config.initializer_range, new Rng(tensorSeed(seed, name)));
  if (name === WORD_EMBEDDINGS) {
    // nn.Embedding(padding_idx=pad_token_id) keeps this row zero, so padding adds nothing to a sum.
    const width = shape[1];
    values.fill(0, config.pad_token_id * width, (config.pad_token_id + 1) * width);
  }
  return values;
}

/** FNV-1a of the name mixed with the seed; Rng's splitmix then spreads it over the full state. */
function tensorSeed(seed: number, name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return (hash ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
}

/** Box-Muller gives two independent standard normals per pair of uniforms; both are used. */
function fillTruncatedNormal(out: Float32Array, std: number, rng: Rng): void {
  let filled = 0;
  while (filled < out.length) {
    // 1 - u lies in (0, 1], so the logarithm stays finite.
    const radius = Math.sqrt(-2 * Math.log(1 - rng.next()));
    const angle = 2 * Math.PI * rng.next();
    const first = radius * Math.cos(angle);
    if (Math.abs(first) <= TRUNCATION_IN_STDS) out[filled++] = first * std;
    const second = radius * Math.sin(angle);
    if (filled < out.length && Math.abs(second) <= TRUNCATION_IN_STDS) out[filled++] = second * std;
  }
}

// ---------------------------------------------------------------- helpers

function formatShape(shape: number[]): string {
  return `[${shape.join(', ')}]`;
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((size, i) => size === b[i]);
}

function isPlainFileName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\\]/.test(name);
}

/** A JSON string is also a valid Python string literal, with Windows backslashes escaped. */
function pythonString(text: string): string {
  return JSON.stringify(text);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
