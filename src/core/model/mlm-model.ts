/**
 * BERT with its masked-language-model head, named and shaped as Hugging Face's `BertForMaskedLM`:
 *
 *   cls.predictions.transform.dense        d -> d, then `hidden_act`
 *   cls.predictions.transform.LayerNorm    over d
 *   decoder                                d -> V, its weight tied to bert.embeddings.word_embeddings
 *   cls.predictions.bias                   [V], the decoder's bias
 *
 * There is no pooler (BertForMaskedLM has none) and no stored decoder weight (`transformers` drops
 * tied weights when saving and re-ties them on loading). Every weight trains.
 *
 * Work and memory: the decoder's logits are [M, V] for the M selected positions only, and the last
 * encoder layer past its attention runs for those rows alone, so a batch of 32 x 128 tokens with 15%
 * selected computes about 600 rows there and in the head, not 4,096.
 */
import { tf, type Tensor1D, type Tensor2D } from '../tf';
import { buildMethod, type ForwardContext } from '../adapters/method';
import { truncatedNormal } from '../adapters/init';
import type { Placement } from '../../protocol/worker';
import { Rng } from '../random';
import type { BertConfig, WeightMap } from './bert-config';
import { BertEncoder, hiddenActivation, type EncoderInputs } from './bert';
import { dense, layerNorm, softmaxCrossEntropy, tiedDense } from './ops';
import { ParamStore } from './params';
import { groupOf, isLinearWeight } from './peft-model';

export const WORD_EMBEDDINGS = 'bert.embeddings.word_embeddings.weight';
export const MLM_HEAD_PREFIX = 'cls.predictions.';
const TRANSFORM = 'cls.predictions.transform';
const DECODER_BIAS = 'cls.predictions.bias';
/** What `placement.method` and `status.json` call a pretraining run. */
export const MLM_METHOD = 'mlm';

/** The head's weights with their Hugging Face shapes (Linear: [out, in]). */
export function mlmHeadShapes(config: BertConfig): Map<string, number[]> {
  const d = config.hidden_size;
  return new Map([
    [`${TRANSFORM}.dense.weight`, [d, d]],
    [`${TRANSFORM}.dense.bias`, [d]],
    [`${TRANSFORM}.LayerNorm.weight`, [d]],
    [`${TRANSFORM}.LayerNorm.bias`, [d]],
    [DECODER_BIAS, [config.vocab_size]],
  ]);
}

/** Hugging Face's init of the head: dense weight ~ N(0, initializer_range) truncated at 2 std, biases 0, LayerNorm scale 1. */
export function randomMlmHead(config: BertConfig, seed: number): WeightMap {
  const rng = new Rng(seed ^ 0x6d6c6d); // a stream of its own, apart from the encoder's and the trainer's
  const weights: WeightMap = new Map();
  for (const [name, shape] of mlmHeadShapes(config)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = name.endsWith('dense.weight')
      ? truncatedNormal(size, config.initializer_range, rng)
      : new Float32Array(size).fill(name.endsWith('LayerNorm.weight') ? 1 : 0);
    weights.set(name, { shape, data });
  }
  return weights;
}

export interface MlmModelSpec {
  bert: BertConfig;
  /** Encoder weights in Hugging Face layout; a pooler among them is left out (BertForMaskedLM has none). */
  encoder: WeightMap;
  /** The `cls.predictions.*` weights; every one must be present (see `randomMlmHead`). */
  head: WeightMap;
  /** Overrides the checkpoint's hidden and attention dropout. */
  dropout?: number;
}

export class MlmModel {
  readonly store = new ParamStore();
  readonly encoder: BertEncoder;

  /** The spec without its weights: the store holds them, and a copy kept here would double the model's memory. */
  readonly spec: Omit<MlmModelSpec, 'encoder' | 'head'>;

  constructor(spec: MlmModelSpec) {
    const { encoder: _encoder, head: _head, ...rest } = spec;
    this.spec = rest;
    const { bert } = spec;
    for (const [name, w] of spec.encoder) {
      if (name.startsWith('bert.pooler.')) continue;
      this.store.add(name, w.shape, w.data, { trainable: true, group: groupOf(name), linear: isLinearWeight(name) });
    }
    for (const [name, shape] of mlmHeadShapes(bert)) {
      const w = spec.head.get(name);
      if (!w) throw new Error(`the MLM head lacks ${name}`);
      if (w.shape.join() !== shape.join()) throw new Error(`${name}: expected shape [${shape}], got [${w.shape}]`);
      this.store.add(name, w.shape, w.data, { trainable: true, group: 'head', linear: isLinearWeight(name) });
    }
    const hidden = spec.dropout ?? bert.hidden_dropout_prob;
    const attention = spec.dropout ?? bert.attention_probs_dropout_prob;
    // `full` places nothing in the encoder: the plain BERT layer.
    const method = buildMethod({ type: 'full' }, bert, this.store, new Rng(0));
    this.encoder = new BertEncoder(bert, this.store, method, { hidden, attention });
  }

  /** Logits over the vocabulary at `positions` (flat indices into the B x T tokens), [M, V]. */
  logits(inputs: EncoderInputs, positions: Tensor1D, ctx: ForwardContext): Tensor2D {
    const s = this.store;
    // The last layer past its attention runs for the selected rows alone (the head reads no other).
    const selected = this.encoder.encode(inputs, ctx, positions); // [M, d]
    const transformed = hiddenActivation(
      this.spec.bert.hidden_act,
      dense(selected, s.tensor(`${TRANSFORM}.dense.weight`), s.tensor(`${TRANSFORM}.dense.bias`)),
    );
    const normed = layerNorm(
      transformed,
      s.tensor(`${TRANSFORM}.LayerNorm.weight`),
      s.tensor(`${TRANSFORM}.LayerNorm.bias`),
      this.spec.bert.layer_norm_eps,
    );
    return tiedDense(normed, s.tensor(WORD_EMBEDDINGS) as Tensor2D, s.tensor(DECODER_BIAS)); // the tied decoder h · Eᵀ + b, [M, V]
  }

  /** Mean cross-entropy of the logits against the original tokens, [M] int32. */
  loss(logits: Tensor2D, targets: Tensor1D): tf.Scalar {
    return softmaxCrossEntropy(logits, targets);
  }

  placement(): Placement {
    const bert = this.spec.bert;
    const byGroup: Record<string, number> = {};
    for (const p of this.store.trainable()) byGroup[p.group] = (byGroup[p.group] ?? 0) + p.value.size;
    return {
      method: MLM_METHOD,
      layers: bert.num_hidden_layers,
      hiddenSize: bert.hidden_size,
      heads: bert.num_attention_heads,
      intermediateSize: bert.intermediate_size,
      baseParams: this.store.count((p) => p.group !== 'head'),
      trainableParams: this.store.count((p) => p.trainable),
      trainableByGroup: byGroup,
      leftOut: [],
      sites: [],
    };
  }

  dispose(): void {
    this.encoder.dispose();
    this.store.dispose();
  }
}
