/**
 * The encoder families PEFT Lab fine-tunes, each as the few pieces in which it differs from BERT:
 * how its config.json names the architecture, and where its weights sit in a Hugging Face
 * checkpoint. Inside PEFT Lab every family's weights carry one canonical name set (BERT's, plus
 * the pieces BERT lacks: ELECTRA's `embeddings_project`, ModernBERT's pre-LayerNorms and final
 * norm), so the encoder (bert.ts), the methods and the checkpoints have one naming to follow.
 *
 * Sources, read from huggingface/transformers (src/transformers/models/<type>/modeling_<type>.py):
 *   roberta, xlm-roberta  BERT's modules under `roberta.`; position ids start at padding_idx + 1
 *   electra               BERT's modules under `electra.`; embeddings of `embedding_size`, then
 *                         `embeddings_project` (a Linear to hidden_size) when the two differ; no pooler
 *   distilbert            `distilbert.embeddings` (no token types), `distilbert.transformer.layer.{i}`
 *                         with attention.{q,k,v,out}_lin, sa_layer_norm, ffn.lin1/lin2, output_layer_norm
 *   modernbert            `model.embeddings.{tok_embeddings,norm}`, `model.layers.{i}` with attn_norm
 *                         (absent in layer 0), attn.Wqkv (q, k, v stacked), attn.Wo, mlp_norm,
 *                         mlp.Wi (GeGLU input and gate stacked), mlp.Wo, then `model.final_norm`
 */
import { CheckpointError } from '../errors';
import { DEFAULT_BERT_CONFIG, MODEL_TYPES, type BertConfig, type ModelType } from './bert-config';
import type { PlacementArchitecture } from '../../protocol/worker';

/** The checkpoint's top-level module that holds the encoder (its `base_model_prefix`). */
export const HF_PREFIX: Record<ModelType, string> = {
  bert: 'bert',
  roberta: 'roberta',
  'xlm-roberta': 'roberta',
  distilbert: 'distilbert',
  electra: 'electra',
  modernbert: 'model',
};

/** Top-level modules of the bare model class, whose save_pretrained writes names without the prefix. */
const BASE_MODULES: Record<ModelType, string[]> = {
  bert: ['embeddings.', 'encoder.', 'pooler.'],
  roberta: ['embeddings.', 'encoder.', 'pooler.'],
  'xlm-roberta': ['embeddings.', 'encoder.', 'pooler.'],
  distilbert: ['embeddings.', 'transformer.'],
  electra: ['embeddings.', 'embeddings_project.', 'encoder.'],
  modernbert: ['embeddings.', 'layers.', 'final_norm.'],
};

/** Task heads of the family's pretraining and fine-tuning classes: never part of the encoder, dropped without a word. */
const HEAD_PREFIXES: Record<ModelType, string[]> = {
  bert: ['cls.'],
  roberta: ['lm_head.', 'classifier.'],
  'xlm-roberta': ['lm_head.', 'classifier.'],
  distilbert: ['vocab_transform.', 'vocab_layer_norm.', 'vocab_projector.', 'pre_classifier.', 'classifier.'],
  electra: ['discriminator_predictions.', 'generator_predictions.', 'generator_lm_head.', 'classifier.'],
  modernbert: ['head.', 'decoder.', 'classifier.'],
};

export function modelTypeOf(config: BertConfig): ModelType {
  return config.model_type ?? 'bert';
}

/** The family's display name, for messages and the dashboard. */
export const FAMILY_NAMES: Record<ModelType, string> = {
  bert: 'BERT',
  roberta: 'RoBERTa',
  'xlm-roberta': 'XLM-RoBERTa',
  distilbert: 'DistilBERT',
  electra: 'ELECTRA',
  modernbert: 'ModernBERT',
};

// ---------------------------------------------------------------- config.json

export function isSupportedModelType(value: unknown): value is ModelType {
  return (MODEL_TYPES as readonly unknown[]).includes(value);
}

export function unsupportedModelTypeError(file: string, modelType: unknown): CheckpointError {
  return new CheckpointError(
    file,
    `model_type ${JSON.stringify(modelType)} is not supported yet: PEFT Lab fine-tunes ${MODEL_TYPES.map((t) => `"${t}"`).join(', ')} encoders`,
  );
}

/**
 * A family's config.json rewritten into BERT's field names, so that one set of checks reads them
 * all; the family's own settings are returned beside it.
 */
export function bertFieldsOf(type: ModelType, raw: Record<string, unknown>): Record<string, unknown> {
  switch (type) {
    case 'distilbert':
      return {
        vocab_size: raw.vocab_size,
        hidden_size: raw.dim ?? 768,
        num_hidden_layers: raw.n_layers ?? 6,
        num_attention_heads: raw.n_heads ?? 12,
        intermediate_size: raw.hidden_dim ?? 3072,
        hidden_act: raw.activation ?? 'gelu',
        hidden_dropout_prob: raw.dropout,
        attention_probs_dropout_prob: raw.attention_dropout,
        max_position_embeddings: raw.max_position_embeddings,
        layer_norm_eps: 1e-12,
        pad_token_id: raw.pad_token_id ?? 0,
        initializer_range: raw.initializer_range,
      };
    case 'modernbert':
      return {
        vocab_size: raw.vocab_size,
        hidden_size: raw.hidden_size,
        num_hidden_layers: raw.num_hidden_layers,
        num_attention_heads: raw.num_attention_heads,
        intermediate_size: raw.intermediate_size,
        hidden_act: modernBertActivation(raw.hidden_activation),
        hidden_dropout_prob: raw.mlp_dropout ?? 0,
        attention_probs_dropout_prob: raw.attention_dropout ?? 0,
        max_position_embeddings: raw.max_position_embeddings ?? 8192,
        layer_norm_eps: raw.norm_eps ?? 1e-5,
        pad_token_id: raw.pad_token_id ?? 50283,
        initializer_range: raw.initializer_range,
      };
    default:
      return raw;
  }
}

function modernBertActivation(value: unknown): unknown {
  if (value === undefined) return 'gelu';
  // transformers' "gelu_pytorch_tanh" is the tanh approximation that PEFT Lab calls gelu_new
  return value === 'gelu_pytorch_tanh' ? 'gelu_new' : value;
}

/** The family's own settings: ELECTRA's embedding width, ModernBERT's attention pattern and biases. */
export function familySettings(
  type: ModelType,
  raw: Record<string, unknown>,
  file: string,
  config: BertConfig,
): Partial<BertConfig> {
  if (type === 'bert') return {};
  if (type === 'electra') {
    const embedding = raw.embedding_size ?? config.hidden_size;
    if (typeof embedding !== 'number' || !Number.isInteger(embedding) || embedding < 1) {
      throw new CheckpointError(file, `"embedding_size" must be a positive integer, got ${JSON.stringify(embedding)}`);
    }
    return { model_type: type, embedding_size: embedding };
  }
  if (type !== 'modernbert') return { model_type: type };
  const num = (field: string, fallback: number, integer = false): number => {
    const value = raw[field] ?? fallback;
    if (typeof value !== 'number' || !(value > 0) || (integer && !Number.isInteger(value))) {
      throw new CheckpointError(
        file,
        `"${field}" must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(value)}`,
      );
    }
    return value;
  };
  const flag = (field: string): boolean => {
    const value = raw[field] ?? false;
    if (typeof value !== 'boolean')
      throw new CheckpointError(file, `"${field}" must be true or false, got ${JSON.stringify(value)}`);
    return value;
  };
  const rope = ropeThetas(raw);
  const globalTheta = rope.global ?? num('global_rope_theta', 160000);
  return {
    model_type: type,
    modernbert: {
      localAttention: num('local_attention', 128, true),
      globalEvery: num('global_attn_every_n_layers', 3, true),
      globalRopeTheta: globalTheta,
      // transformers falls back to the global base when local_rope_theta is null
      localRopeTheta: rope.local ?? (raw.local_rope_theta === null ? globalTheta : num('local_rope_theta', 10000)),
      attentionBias: flag('attention_bias'),
      mlpBias: flag('mlp_bias'),
      normBias: flag('norm_bias'),
    },
  };
}

/** Newer ModernBERT configs keep the rotary bases in `rope_parameters` per layer type. */
function ropeThetas(raw: Record<string, unknown>): { global?: number; local?: number } {
  const params = raw.rope_parameters as Record<string, { rope_theta?: unknown } | null> | undefined;
  if (!params || typeof params !== 'object') return {};
  const theta = (key: string) =>
    typeof params[key]?.rope_theta === 'number' ? (params[key]!.rope_theta as number) : undefined;
  return { global: theta('full_attention'), local: theta('sliding_attention') };
}

/** DEFAULT_BERT_CONFIG with the family's defaults where they differ (filled before the file's values). */
export function familyDefaults(type: ModelType): Omit<BertConfig, 'vocab_size'> {
  return type === 'roberta' || type === 'xlm-roberta'
    ? { ...DEFAULT_BERT_CONFIG, pad_token_id: 1, layer_norm_eps: 1e-5, type_vocab_size: 1 }
    : DEFAULT_BERT_CONFIG;
}

/** How many tokens a sequence may have: RoBERTa's first padding_idx + 1 position rows are never used by a token. */
export function usablePositions(config: BertConfig): number {
  const type = modelTypeOf(config);
  if (type === 'modernbert') return config.max_position_embeddings;
  return config.max_position_embeddings - positionOffset(config);
}

/** The position id of a sequence's first token: padding_idx + 1 for RoBERTa and XLM-R, else 0. */
export function positionOffset(config: BertConfig): number {
  const type = modelTypeOf(config);
  return type === 'roberta' || type === 'xlm-roberta' ? config.pad_token_id + 1 : 0;
}

// ---------------------------------------------------------------- canonical weights

/** The embedding width (ELECTRA's embedding_size, else the hidden size). */
export function embeddingWidth(config: BertConfig): number {
  return config.embedding_size ?? config.hidden_size;
}

/** ModernBERT's MLP input projection holds the GeGLU input and gate: twice the intermediate size. */
export function intermediateOutputs(config: BertConfig): number {
  return config.modernbert ? 2 * config.intermediate_size : config.intermediate_size;
}

/** Layer i of ModernBERT attends within its window unless i is a multiple of global_attn_every_n_layers. */
export function isLocalLayer(config: BertConfig, layer: number): boolean {
  return config.modernbert !== undefined && layer % config.modernbert.globalEvery !== 0;
}

/** Canonical names of ModernBERT's pre-LayerNorms and final norm (see the file comment). */
export const PRE_ATTENTION_NORM = 'attention_input.LayerNorm';
export const PRE_MLP_NORM = 'mlp_input.LayerNorm';
export const FINAL_NORM = 'bert.encoder.final.LayerNorm';
export const EMBEDDINGS_PROJECT = 'bert.embeddings_project';

/**
 * Every weight of the encoder with its pooler in canonical names and torch layouts (Linear:
 * [out, in]). The pooler belongs to PEFT Lab's classification head for every family; only BERT,
 * RoBERTa and XLM-R checkpoints may carry one.
 */
export function encoderWeightShapes(c: BertConfig): Map<string, number[]> {
  const d = c.hidden_size;
  const e = embeddingWidth(c);
  const type = modelTypeOf(c);
  const mb = c.modernbert;
  const shapes = new Map<string, number[]>();
  const linear = (name: string, out: number, inSize: number, bias = true) => {
    shapes.set(`${name}.weight`, [out, inSize]);
    if (bias) shapes.set(`${name}.bias`, [out]);
  };
  const norm = (name: string, width: number, bias = true) => {
    shapes.set(`${name}.weight`, [width]);
    if (bias) shapes.set(`${name}.bias`, [width]);
  };
  shapes.set('bert.embeddings.word_embeddings.weight', [c.vocab_size, e]);
  if (!mb) shapes.set('bert.embeddings.position_embeddings.weight', [c.max_position_embeddings, e]);
  if (type !== 'distilbert' && !mb) shapes.set('bert.embeddings.token_type_embeddings.weight', [c.type_vocab_size, e]);
  norm('bert.embeddings.LayerNorm', e, !mb || mb.normBias);
  if (e !== d) linear(EMBEDDINGS_PROJECT, d, e);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `bert.encoder.layer.${i}`;
    const attentionBias = !mb || mb.attentionBias;
    const mlpBias = !mb || mb.mlpBias;
    if (mb && i > 0) norm(`${p}.${PRE_ATTENTION_NORM}`, d, mb.normBias);
    for (const proj of ['query', 'key', 'value']) linear(`${p}.attention.self.${proj}`, d, d, attentionBias);
    linear(`${p}.attention.output.dense`, d, d, attentionBias);
    if (!mb) norm(`${p}.attention.output.LayerNorm`, d);
    if (mb) norm(`${p}.${PRE_MLP_NORM}`, d, mb.normBias);
    linear(`${p}.intermediate.dense`, intermediateOutputs(c), d, mlpBias);
    linear(`${p}.output.dense`, d, c.intermediate_size, mlpBias);
    if (!mb) norm(`${p}.output.LayerNorm`, d);
  }
  if (mb) norm(FINAL_NORM, d, mb.normBias);
  linear('bert.pooler.dense', d, d);
  return shapes;
}

// ---------------------------------------------------------------- names in a Hugging Face checkpoint

/** Where a canonical weight lies in the checkpoint: a tensor, or rows of one that stacks several (ModernBERT's Wqkv). */
export interface WeightSource {
  hfName: string;
  /** First row of this weight in the stacked tensor (0 when it is the whole tensor). */
  rowOffset: number;
}

const DISTILBERT_LAYER: [RegExp, string][] = [
  [/^attention\.self\.query\./, 'attention.q_lin.'],
  [/^attention\.self\.key\./, 'attention.k_lin.'],
  [/^attention\.self\.value\./, 'attention.v_lin.'],
  [/^attention\.output\.dense\./, 'attention.out_lin.'],
  [/^attention\.output\.LayerNorm\./, 'sa_layer_norm.'],
  [/^intermediate\.dense\./, 'ffn.lin1.'],
  [/^output\.dense\./, 'ffn.lin2.'],
  [/^output\.LayerNorm\./, 'output_layer_norm.'],
];

const MODERNBERT_LAYER: [RegExp, string][] = [
  [/^attention_input\.LayerNorm\./, 'attn_norm.'],
  [/^attention\.self\.(query|key|value)\./, 'attn.Wqkv.'],
  [/^attention\.output\.dense\./, 'attn.Wo.'],
  [/^mlp_input\.LayerNorm\./, 'mlp_norm.'],
  [/^intermediate\.dense\./, 'mlp.Wi.'],
  [/^output\.dense\./, 'mlp.Wo.'],
];

/** The checkpoint name (and row offset) of a canonical weight, for `config`'s family. */
export function hfSourceOf(config: BertConfig, canonical: string): WeightSource {
  const type = modelTypeOf(config);
  const prefix = HF_PREFIX[type];
  const whole = (hfName: string): WeightSource => ({ hfName, rowOffset: 0 });
  if (type === 'bert') return whole(canonical);
  if (type === 'roberta' || type === 'xlm-roberta' || type === 'electra')
    return whole(prefix + canonical.slice('bert'.length));
  const layer = /^bert\.encoder\.layer\.(\d+)\.(.+)$/.exec(canonical);
  if (type === 'distilbert') {
    if (layer) {
      const rule = DISTILBERT_LAYER.find(([pattern]) => pattern.test(layer[2]!));
      if (rule) return whole(`distilbert.transformer.layer.${layer[1]}.${layer[2]!.replace(rule[0], rule[1])}`);
    }
    return whole(`distilbert${canonical.slice('bert'.length)}`);
  }
  // modernbert
  if (layer) {
    const rule = MODERNBERT_LAYER.find(([pattern]) => pattern.test(layer[2]!));
    if (rule) {
      const projection = /^attention\.self\.(query|key|value)\./.exec(layer[2]!);
      const rowOffset = projection ? ['query', 'key', 'value'].indexOf(projection[1]!) * config.hidden_size : 0;
      return { hfName: `model.layers.${layer[1]}.${layer[2]!.replace(rule[0], rule[1])}`, rowOffset };
    }
  }
  if (canonical.startsWith(FINAL_NORM)) return whole(`model.final_norm${canonical.slice(FINAL_NORM.length)}`);
  if (canonical.startsWith('bert.embeddings.word_embeddings.')) return whole('model.embeddings.tok_embeddings.weight');
  if (canonical.startsWith('bert.embeddings.LayerNorm.'))
    return whole(`model.embeddings.norm${canonical.slice('bert.embeddings.LayerNorm'.length)}`);
  return whole(`model${canonical.slice('bert'.length)}`);
}

/** A checkpoint tensor with the canonical weights it holds, row by row. */
export interface HfTensorLayout {
  shape: number[];
  parts: { canonical: string; rowOffset: number; shape: number[] }[];
}

/** Every tensor the family's checkpoint holds for the encoder (pooler included), by checkpoint name. */
export function hfLayout(config: BertConfig): Map<string, HfTensorLayout> {
  const layout = new Map<string, HfTensorLayout>();
  for (const [canonical, shape] of encoderWeightShapes(config)) {
    const { hfName, rowOffset } = hfSourceOf(config, canonical);
    const entry = layout.get(hfName) ?? { shape: [0, ...shape.slice(1)], parts: [] };
    entry.parts.push({ canonical, rowOffset, shape });
    entry.shape[0] = Math.max(entry.shape[0]!, rowOffset + shape[0]!);
    layout.set(hfName, entry);
  }
  return layout;
}

/**
 * The checkpoint name of a stored tensor with the family's prefix (a bare model's save_pretrained
 * leaves it out), or undefined for a task head that is never part of the encoder.
 */
export function prefixedName(config: BertConfig, rawName: string): string | undefined {
  const type = modelTypeOf(config);
  if (HEAD_PREFIXES[type].some((head) => rawName.startsWith(head))) return undefined;
  const prefixed = BASE_MODULES[type].some((module) => rawName.startsWith(module))
    ? `${HF_PREFIX[type]}.${rawName}`
    : rawName;
  // Checkpoints converted from the original TensorFlow BERT kept TF's gamma/beta names.
  return prefixed.replace(/\.LayerNorm\.gamma$/, '.LayerNorm.weight').replace(/\.LayerNorm\.beta$/, '.LayerNorm.bias');
}

/** The name a canonical weight has in the checkpoint, for messages. */
export function checkpointNameOf(config: BertConfig, canonical: string): string {
  return hfSourceOf(config, canonical).hfName;
}

// ---------------------------------------------------------------- what the dashboard draws

const ACTIVATION_LABELS: Record<BertConfig['hidden_act'], string> = {
  gelu: 'GELU',
  gelu_python: 'GELU',
  gelu_new: 'GELU (tanh)',
  relu: 'ReLU',
};

/** The architecture facts the placement view draws, for placement.json. */
export function architectureOf(config: BertConfig): PlacementArchitecture {
  const type = modelTypeOf(config);
  const mb = config.modernbert;
  const activation = ACTIVATION_LABELS[config.hidden_act];
  return {
    modelType: type,
    family: FAMILY_NAMES[type],
    norm: mb ? 'pre' : 'post',
    feedForward: mb
      ? config.hidden_act === 'gelu' || config.hidden_act === 'gelu_python'
        ? 'GeGLU'
        : `gated ${activation}`
      : activation,
    biases: !mb || (mb.attentionBias && mb.mlpBias),
    positions: mb ? 'rotary' : 'absolute',
    attention: Array.from({ length: config.num_hidden_layers }, (_, i) =>
      isLocalLayer(config, i) ? 'local' : 'global',
    ),
    ...(mb ? { window: mb.localAttention } : {}),
    ...(embeddingWidth(config) !== config.hidden_size ? { embeddingSize: embeddingWidth(config) } : {}),
    finalNorm: mb !== undefined,
  };
}
