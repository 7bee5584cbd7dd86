/**
 * A post-LayerNorm BERT encoder (Devlin et al.) with hooks where adapters and LoRA attach.
 * Shapes: B batch, T sequence, d hidden, H heads, dh = d / H, N = B * T rows.
 */
import { tf, type Tensor, type Tensor2D } from '../tf';
import type { AdapterMethod, ForwardContext } from '../adapters/method';
import type { LoraTarget } from '../config/types';
import type { BertConfig } from './bert-config';
import { fusedKernelsActive } from '../native/wasm-kernels';
import { activation, biasGelu, clsSelfAttention, dense, dropout, embeddingLookup, frozenDense, layerNorm, matmulTrainable, selfAttention, type FrozenDense } from './ops';
import type { Param, ParamStore } from './params';

export interface EncoderInputs {
  inputIds: Tensor2D; // [B, T] int32
  tokenTypeIds: Tensor2D; // [B, T] int32
  attentionMask: Tensor2D; // [B, T] float32, 1 = token, 0 = padding
}

/** A linear layer over one or more weights fused along the output axis (Q, K and V in one product). */
class Linear {
  private readonly frozen?: FrozenDense;

  constructor(private readonly weights: Param[], private readonly biases: Param[]) {
    if (weights.every((w) => !w.trainable) && biases.every((b) => !b.trainable)) {
      const kernel = this.kernel() as Tensor2D;
      // The native products read a transposed operand at full speed; only plain wasm needs the copy.
      this.frozen = { kernel, kernelT: fusedKernelsActive() ? undefined : tf.transpose(kernel), bias: this.bias() };
    }
  }

  apply(x: Tensor2D): Tensor2D {
    if (this.frozen) return frozenDense(x, this.frozen);
    return dense(x, this.kernel(), this.bias());
  }

  /** x · kernel alone, and the bias for the caller to add (fused into the GELU that follows). */
  product(x: Tensor2D): { y: Tensor2D; bias: BiasTerm } {
    if (this.frozen) {
      const y = frozenDense(x, { kernel: this.frozen.kernel, kernelT: this.frozen.kernelT });
      return { y, bias: { value: this.frozen.bias!, trainable: false } };
    }
    return { y: matmulTrainable(x, this.kernel()), bias: { value: this.bias(), trainable: true } };
  }

  private kernel(): Tensor {
    const kernels = this.weights.map((w) => w.value);
    return kernels.length === 1 ? kernels[0] : tf.concat(kernels, 1);
  }

  private bias(): Tensor {
    const biases = this.biases.map((b) => b.value);
    return biases.length === 1 ? biases[0] : tf.concat(biases, 0);
  }

  dispose(): void {
    if (!this.frozen) return;
    if (this.weights.length > 1) this.frozen.kernel.dispose();
    if (this.biases.length > 1) this.frozen.bias?.dispose();
    this.frozen.kernelT?.dispose();
  }
}

/** A bias still to be added; a frozen one takes no gradient. */
export interface BiasTerm {
  value: Tensor;
  trainable: boolean;
}

interface LayerWeights {
  qkv: Linear;
  attentionOutput: Linear;
  attentionNorm: [Param, Param];
  intermediate: Linear;
  output: Linear;
  outputNorm: [Param, Param];
}

/** Which rows of the last layer `encode` returns: every token's, the [CLS] rows, or these flat row indices. */
export type Readout = 'all' | 'cls' | tf.Tensor1D;

const MASK_PENALTY = -10000; // the original BERT's additive mask for padded keys

export class BertEncoder {
  private readonly layers: LayerWeights[];

  constructor(
    readonly config: BertConfig,
    private readonly store: ParamStore,
    private readonly method: AdapterMethod,
    private readonly dropoutRate: { hidden: number; attention: number },
  ) {
    this.layers = Array.from({ length: config.num_hidden_layers }, (_, i) => this.layerWeights(i));
  }

  /**
   * The last hidden states: every token's, [N, d]; with `readout` 'cls' only the first token's of
   * each sequence, [B, d]; with a Tensor1D of flat row indices (b · T + t) only those rows, [M, d]
   * (the masked positions of masked-language modelling).
   *
   * A [CLS] readout computes the last layer for the [CLS] rows alone: its keys and values still come
   * from every token, but its queries, attention output, adapters, LayerNorms and feed-forward block
   * run on B rows instead of B·T; the layer costs about a fifth of a full one (the query, key and
   * value projection of every token). A readout of rows attends for every token, then runs the
   * attention output, adapters, LayerNorms and feed-forward block on the chosen rows alone. Every op
   * past the attention is row by row, so the rows read out are the same numbers either way.
   */
  encode(inputs: EncoderInputs, ctx: ForwardContext, readout: Readout = 'all'): Tensor2D {
    const [batch, seq] = inputs.inputIds.shape;
    let x = this.embed(inputs, ctx); // [N, d]
    // [B, 1, 1, T]: 0 for tokens, -10000 for padded keys, broadcast over heads and queries
    const maskBias = tf.reshape(tf.mul(tf.sub(1, inputs.attentionMask), MASK_PENALTY), [batch, 1, 1, seq]);
    const last = this.layers.length - 1;
    if (last < 0) return readout === 'all' ? x : readout === 'cls' ? this.clsRows(x, batch, seq) : embeddingLookup(x, readout);
    // A tidy per layer frees the layer's intermediates as soon as it is done (what its backward pass
    // needs is saved by the ops themselves), instead of keeping every layer's until the pass ends.
    for (let i = 0; i < this.layers.length; i++) {
      const input = x;
      x = tf.tidy(() => this.layer(i, input, maskBias, batch, seq, ctx, i === last ? readout : 'all'));
    }
    return x;
  }

  /** The first token's row of each sequence: [N, d] -> [B, d]. */
  clsRows(x: Tensor2D, batch: number, seq: number): Tensor2D {
    const d = this.config.hidden_size;
    return tf.reshape(tf.slice(tf.reshape(x, [batch, seq, d]), [0, 0, 0], [batch, 1, d]), [batch, d]);
  }

  private embed(inputs: EncoderInputs, ctx: ForwardContext): Tensor2D {
    const [batch, seq] = inputs.inputIds.shape;
    const d = this.config.hidden_size;
    const words = this.lookup('bert.embeddings.word_embeddings.weight', tf.reshape(inputs.inputIds, [-1])); // [N, d]
    const types = this.lookup('bert.embeddings.token_type_embeddings.weight', tf.reshape(inputs.tokenTypeIds, [-1]));
    const positions = tf.slice(this.store.tensor('bert.embeddings.position_embeddings.weight'), [0, 0], [seq, d]); // [T, d]
    const summed = tf.add(tf.reshape(tf.add(words, types), [batch, seq, d]), positions); // [B, T, d]
    const normed = this.norm(tf.reshape(summed, [-1, d]) as Tensor2D, 'bert.embeddings.LayerNorm');
    return dropout(normed, this.dropoutRate.hidden, ctx.dropoutSeed()) as Tensor2D;
  }

  private lookup(name: string, ids: Tensor): Tensor2D {
    const table = this.store.get(name);
    // A frozen table is a constant for autodiff, so the plain gather (whose gradient wasm lacks) is safe
    return table.trainable ? embeddingLookup(table.value as Tensor2D, ids) : (tf.gather(table.value, ids) as Tensor2D);
  }

  /** One encoder layer; its output for every row, the [CLS] rows alone ([B, d]) or the rows given ([M, d]). */
  private layer(i: number, input: Tensor2D, maskBias: Tensor, batch: number, seq: number, ctx: ForwardContext, readout: Readout): Tensor2D {
    const w = this.layers[i];
    const clsOnly = readout === 'cls';
    let a = this.selfAttention(i, input, maskBias, batch, seq, ctx, clsOnly); // [N or B, d]
    let x = clsOnly ? this.clsRows(input, batch, seq) : input;
    if (typeof readout !== 'string') {
      a = embeddingLookup(a, readout); // [M, d]
      x = embeddingLookup(input, readout);
    }
    a = this.withLora(i, 'attention_output', w.attentionOutput.apply(a), a);
    a = dropout(a, this.dropoutRate.hidden, ctx.dropoutSeed()) as Tensor2D;
    a = this.method.applyAtSite(i, 'attention', a, x, ctx); // Houlsby site 1
    const x1 = this.normPair(tf.add(a, x) as Tensor2D, w.attentionNorm);

    const { y: product, bias } = w.intermediate.product(x1); // [N, I], the bias goes into the activation
    let h = this.withLora(i, 'intermediate', product, x1);
    h = hiddenActivation(this.config.hidden_act, h, bias);
    let f = this.withLora(i, 'output', w.output.apply(h), h); // [N, d]
    f = dropout(f, this.dropoutRate.hidden, ctx.dropoutSeed()) as Tensor2D;
    f = this.method.applyAtSite(i, 'ffn', f, x1, ctx); // Houlsby site 2
    return this.normPair(tf.add(f, x1) as Tensor2D, w.outputNorm);
  }

  private selfAttention(i: number, x: Tensor2D, maskBias: Tensor, batch: number, seq: number, ctx: ForwardContext, clsOnly: boolean): Tensor2D {
    const qkv = this.qkvWithLora(i, x); // [N, 3d]
    const attend = clsOnly ? clsSelfAttention : selfAttention;
    return attend(qkv, maskBias, batch, seq, this.config.num_attention_heads, this.dropoutRate.attention, ctx.dropoutSeed()); // [N or B, d]
  }

  private qkvWithLora(i: number, x: Tensor2D): Tensor2D {
    const qkv = this.layers[i].qkv.apply(x);
    const deltas = (['query', 'key', 'value'] as const).map((t) => this.method.loraDelta(i, t, x));
    if (deltas.every((delta) => delta === undefined)) return qkv;
    const d = this.config.hidden_size;
    const zeros = tf.zeros([x.shape[0], d]);
    return tf.add(qkv, tf.concat(deltas.map((delta) => delta ?? zeros), 1)) as Tensor2D;
  }

  private withLora(i: number, target: LoraTarget, output: Tensor2D, input: Tensor2D): Tensor2D {
    const delta = this.method.loraDelta(i, target, input);
    return delta ? (tf.add(output, delta) as Tensor2D) : output;
  }

  private norm(x: Tensor2D, prefix: string): Tensor2D {
    return this.normPair(x, [this.store.get(`${prefix}.weight`), this.store.get(`${prefix}.bias`)]);
  }

  private normPair(x: Tensor2D, [gain, bias]: [Param, Param]): Tensor2D {
    return layerNorm(x, gain.value, bias.value, this.config.layer_norm_eps);
  }

  private layerWeights(i: number): LayerWeights {
    const p = `bert.encoder.layer.${i}`;
    const s = this.store;
    const linear = (...names: string[]) => new Linear(names.map((n) => s.get(`${n}.weight`)), names.map((n) => s.get(`${n}.bias`)));
    const pair = (n: string): [Param, Param] => [s.get(`${n}.weight`), s.get(`${n}.bias`)];
    return {
      qkv: linear(`${p}.attention.self.query`, `${p}.attention.self.key`, `${p}.attention.self.value`),
      attentionOutput: linear(`${p}.attention.output.dense`),
      attentionNorm: pair(`${p}.attention.output.LayerNorm`),
      intermediate: linear(`${p}.intermediate.dense`),
      output: linear(`${p}.output.dense`),
      outputNorm: pair(`${p}.output.LayerNorm`),
    };
  }

  dispose(): void {
    for (const l of this.layers) for (const lin of [l.qkv, l.attentionOutput, l.intermediate, l.output]) lin.dispose();
  }
}

/**
 * The feed-forward non-linearity named by config.json's `hidden_act` (also the MLM head's), of h plus
 * `bias` when given (GELU adds it in the same kernel).
 */
export function hiddenActivation(name: BertConfig['hidden_act'], h: Tensor2D, bias?: BiasTerm): Tensor2D {
  switch (name) {
    case 'relu':
      return activation('relu', withBias(h, bias)) as Tensor2D;
    case 'gelu_new':
      return geluTanh(withBias(h, bias)) as Tensor2D;
    default:
      return biasGelu(h, bias?.value, bias?.trainable) as Tensor2D;
  }
}

function withBias(h: Tensor2D, bias: BiasTerm | undefined): Tensor2D {
  return bias ? (tf.add(h, bias.value) as Tensor2D) : h;
}

/** Hugging Face's `gelu_new`: the tanh approximation used by some checkpoints. */
function geluTanh(x: Tensor): Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}
