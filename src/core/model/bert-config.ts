/** The encoder families PEFT Lab reads: config.json's `model_type`. */
export const MODEL_TYPES = ['bert', 'roberta', 'xlm-roberta', 'distilbert', 'electra', 'modernbert'] as const;
export type ModelType = (typeof MODEL_TYPES)[number];

/** ModernBERT's own architecture settings (its config.json names in the comments). */
export interface ModernBertSettings {
  /** `local_attention`: a local layer's token attends to tokens at most local_attention / 2 away. */
  localAttention: number;
  /** `global_attn_every_n_layers`: layer i attends globally when i % n == 0, else within the window. */
  globalEvery: number;
  /** Rotary bases: `global_rope_theta`, `local_rope_theta` (or `rope_parameters`). */
  globalRopeTheta: number;
  localRopeTheta: number;
  /** `attention_bias`, `mlp_bias`, `norm_bias`: ModernBERT's linear layers and LayerNorms have none by default. */
  attentionBias: boolean;
  mlpBias: boolean;
  normBias: boolean;
}

/**
 * Architecture of an encoder, with Hugging Face's BERT `config.json` field names; other families'
 * configs are read into these names (DistilBERT's `dim` is `hidden_size`, ...), with what is their
 * own in the optional fields. A config without `model_type` is BERT's.
 */
export interface BertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: 'gelu' | 'relu' | 'gelu_new' | 'gelu_python';
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
  pad_token_id: number;
  initializer_range: number;
  /** The family; absent for BERT. */
  model_type?: ModelType;
  /** ELECTRA: the width of the embeddings, projected to hidden_size by `embeddings_project` when they differ. */
  embedding_size?: number;
  /** ModernBERT: pre-LayerNorm layers with rotary attention, GeGLU and local windows. */
  modernbert?: ModernBertSettings;
}

export const DEFAULT_BERT_CONFIG: Omit<BertConfig, 'vocab_size'> = {
  hidden_size: 256,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  intermediate_size: 1024,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
  max_position_embeddings: 512,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  pad_token_id: 0,
  initializer_range: 0.02,
};

/** Every weight of a BERT encoder with its pooler, as Hugging Face names and shapes them (Linear: [out, in]). */
export function bertWeightShapes(c: BertConfig): Map<string, number[]> {
  const d = c.hidden_size;
  const shapes = new Map<string, number[]>([
    ['bert.embeddings.word_embeddings.weight', [c.vocab_size, d]],
    ['bert.embeddings.position_embeddings.weight', [c.max_position_embeddings, d]],
    ['bert.embeddings.token_type_embeddings.weight', [c.type_vocab_size, d]],
    ['bert.embeddings.LayerNorm.weight', [d]],
    ['bert.embeddings.LayerNorm.bias', [d]],
  ]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `bert.encoder.layer.${i}`;
    for (const proj of ['query', 'key', 'value']) {
      shapes.set(`${p}.attention.self.${proj}.weight`, [d, d]);
      shapes.set(`${p}.attention.self.${proj}.bias`, [d]);
    }
    shapes.set(`${p}.attention.output.dense.weight`, [d, d]);
    shapes.set(`${p}.attention.output.dense.bias`, [d]);
    shapes.set(`${p}.attention.output.LayerNorm.weight`, [d]);
    shapes.set(`${p}.attention.output.LayerNorm.bias`, [d]);
    shapes.set(`${p}.intermediate.dense.weight`, [c.intermediate_size, d]);
    shapes.set(`${p}.intermediate.dense.bias`, [c.intermediate_size]);
    shapes.set(`${p}.output.dense.weight`, [d, c.intermediate_size]);
    shapes.set(`${p}.output.dense.bias`, [d]);
    shapes.set(`${p}.output.LayerNorm.weight`, [d]);
    shapes.set(`${p}.output.LayerNorm.bias`, [d]);
  }
  shapes.set('bert.pooler.dense.weight', [d, d]);
  shapes.set('bert.pooler.dense.bias', [d]);
  return shapes;
}

/** A set of named float32 weights in Hugging Face layout, independent of any tensor engine. */
export type WeightMap = Map<string, { shape: number[]; data: Float32Array }>;
