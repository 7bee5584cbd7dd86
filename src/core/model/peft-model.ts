/**
 * A BERT encoder, a parameter-efficient method placed in it, and a pooled [CLS] head:
 * the whole trainable model of a run.
 */
import { tf, type Tensor, type Tensor2D } from '../tf';
import type { MethodConfig, MethodType, TaskType } from '../config/types';
import { buildMethod, type AdapterMethod, type ForwardContext } from '../adapters/method';
import { truncatedNormal } from '../adapters/init';
import type { Placement } from '../../protocol/worker';
import { architectureOf } from './families';
import { Rng } from '../random';
import type { BertConfig, WeightMap } from './bert-config';
import { BertEncoder, type EncoderInputs } from './bert';
import { batchMatMul, dense, detach, dropout } from './ops';
import { ParamStore, type ParamGroup } from './params';

export interface ModelSpec {
  bert: BertConfig;
  /** Pretrained (or freshly initialised) encoder weights in Hugging Face layout, pooler included. */
  base: WeightMap;
  method: MethodConfig;
  task: TaskType;
  /** Classes for classification; 1 for regression. */
  outputs: number;
  /** Seeds adapter and head initialisation. */
  seed: number;
  /** Overrides the checkpoint's hidden and attention dropout. */
  dropout?: number;
  /** What the head reads: the [CLS] row (default) or the mean of the real tokens' rows. */
  pooling?: 'cls' | 'mean';
}

const ADAPTER_METHODS: ReadonlySet<MethodType> = new Set(['houlsby', 'pfeiffer', 'parallel', 'adamix']);

export class PeftModel {
  readonly store = new ParamStore();
  readonly method: AdapterMethod;
  readonly encoder: BertEncoder;

  /** The spec without its base weights: the store holds them, and a copy kept here would double a large model's memory. */
  readonly spec: Omit<ModelSpec, 'base'>;

  constructor(spec: ModelSpec) {
    const { base: _base, ...rest } = spec;
    this.spec = rest;
    const rng = new Rng(spec.seed);
    this.addBase(spec);
    this.method = buildMethod(spec.method, spec.bert, this.store, rng);
    this.addClassifier(rng);
    const hidden = spec.dropout ?? spec.bert.hidden_dropout_prob;
    const attention = spec.dropout ?? spec.bert.attention_probs_dropout_prob;
    this.encoder = new BertEncoder(spec.bert, this.store, this.method, { hidden, attention });
  }

  /** Logits [B, outputs]. */
  forward(inputs: EncoderInputs, ctx: ForwardContext): Tensor2D {
    if (this.spec.pooling === 'mean')
      return this.head(meanOfTokens(this.encoder.encode(inputs, ctx), inputs.attentionMask), ctx);
    // The head reads the [CLS] rows only, so the encoder's last layer computes only those.
    const cls = this.encoder.encode(inputs, ctx, 'cls'); // [B, d]
    return this.head(cls, ctx);
  }

  /** The pooled rows [B, d] ([CLS] or the mean) through the pooler (dense + tanh), dropout, then the classifier. */
  head(cls: Tensor2D, ctx: ForwardContext): Tensor2D {
    const pooled = tf.tanh(
      dense(cls, this.store.tensor('bert.pooler.dense.weight'), this.store.tensor('bert.pooler.dense.bias')),
    );
    const rate = this.spec.dropout ?? this.spec.bert.hidden_dropout_prob;
    const dropped = dropout(pooled, rate, ctx.dropoutSeed()) as Tensor2D;
    return dense(dropped, this.store.tensor('classifier.weight'), this.store.tensor('classifier.bias'));
  }

  /** Mean cross-entropy (classification) or mean squared error (regression). */
  taskLoss(logits: Tensor2D, labels: Tensor): Tensor {
    if (this.spec.task === 'regression') return tf.mean(tf.square(tf.sub(tf.reshape(logits, [-1]), labels)));
    const oneHot = tf.oneHot(tf.cast(labels, 'int32'), this.spec.outputs);
    return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), -1)));
  }

  /**
   * AdaMix's consistency term between two routed passes: symmetric KL of the predicted
   * distributions, each side against the other's detached prediction as in the reference code;
   * MSE between the two outputs for regression.
   */
  consistencyLoss(first: Tensor2D, second: Tensor2D): Tensor {
    if (this.spec.task === 'regression') return tf.mean(tf.square(tf.sub(first, second)));
    const p1 = tf.logSoftmax(first);
    const p2 = tf.logSoftmax(second);
    return tf.mul(0.5, tf.add(klDivergence(p1, detach(p2)), klDivergence(p2, detach(p1))));
  }

  placement(): Placement {
    const bert = this.spec.bert;
    const byGroup: Record<string, number> = {};
    for (const p of this.store.trainable()) byGroup[p.group] = (byGroup[p.group] ?? 0) + p.value.size;
    const base = this.store.count((p) => BASE_GROUPS.has(p.group) && !p.name.startsWith('classifier'));
    return {
      method: this.spec.method.type,
      architecture: architectureOf(bert),
      layers: bert.num_hidden_layers,
      hiddenSize: bert.hidden_size,
      heads: bert.num_attention_heads,
      intermediateSize: bert.intermediate_size,
      baseParams: base,
      trainableParams: this.store.count((p) => p.trainable),
      trainableByGroup: byGroup,
      leftOut: 'leaveOut' in this.spec.method ? [...this.spec.method.leaveOut] : [],
      sites: this.method.sites,
    };
  }

  dispose(): void {
    this.encoder.dispose();
    this.store.dispose();
  }

  private addBase(spec: ModelSpec): void {
    const type = spec.method.type;
    for (const [name, w] of spec.base) {
      const group = groupOf(name);
      this.store.add(name, w.shape, w.data, {
        trainable: isTrainable(type, name, group),
        group,
        linear: isLinearWeight(name),
      });
    }
  }

  private addClassifier(rng: Rng): void {
    const d = this.spec.bert.hidden_size;
    const n = this.spec.outputs;
    const std = this.spec.bert.initializer_range;
    this.store.add('classifier.weight', [n, d], truncatedNormal(n * d, std, rng), {
      trainable: true,
      group: 'head',
      linear: true,
    });
    this.store.add('classifier.bias', [n], new Float32Array(n), { trainable: true, group: 'head' });
  }
}

const BASE_GROUPS: ReadonlySet<ParamGroup> = new Set(['embeddings', 'encoder', 'layerNorm', 'pooler']);

/** KL(target || p) for log-probabilities, averaged over the batch (torch's kl_div with log_target, 'batchmean'). */
function klDivergence(logP: Tensor, logTarget: Tensor): Tensor {
  const batch = logP.shape[0];
  return tf.div(tf.sum(tf.mul(tf.exp(logTarget), tf.sub(logTarget, logP))), batch);
}

export function groupOf(name: string): ParamGroup {
  if (name.includes('LayerNorm')) return 'layerNorm';
  if (name.startsWith('bert.pooler')) return 'pooler';
  if (name.startsWith('bert.embeddings')) return 'embeddings';
  return 'encoder';
}

/**
 * Adapter methods train every layer's two LayerNorms (Houlsby et al.); every method trains the
 * pooler and classifier; `full` trains everything.
 */
function isTrainable(method: MethodType, name: string, group: ParamGroup): boolean {
  if (method === 'full' || group === 'pooler') return true;
  if (group === 'layerNorm') return ADAPTER_METHODS.has(method) && name.startsWith('bert.encoder.');
  return false;
}

export function isLinearWeight(name: string): boolean {
  // ELECTRA's embeddings_project is a Linear; the embedding tables are not
  return name.endsWith('.weight') && !name.includes('LayerNorm') && !name.includes('embeddings.');
}

/**
 * The mean of each sequence's real-token rows: hidden [B·T, d] with attentionMask [B, T] (1 token,
 * 0 padding) gives [B, d]. As one batched product w · h with w = mask / count [B, 1, T], whose
 * gradients are plain products too.
 */
export function meanOfTokens(hidden: Tensor2D, attentionMask: Tensor2D): Tensor2D {
  const [batch, seq] = attentionMask.shape;
  const d = hidden.shape[1];
  const counts = tf.maximum(tf.sum(attentionMask, 1, true), 1); // [B, 1]; a row of padding alone averages nothing
  const weights = tf.reshape(tf.div(attentionMask, counts), [batch, 1, seq]);
  return tf.reshape(batchMatMul(weights, tf.reshape(hidden, [batch, seq, d])), [batch, d]) as Tensor2D;
}
