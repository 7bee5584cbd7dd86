/**
 * The encoder (BERT's post-LayerNorm layer and its relatives, ModernBERT's pre-LayerNorm layer) with
 * hooks where adapters and LoRA attach.
 * Shapes: B batch, T sequence, d hidden, H heads, dh = d / H, N = B * T rows.
 */
import { tf, type Tensor, type Tensor2D } from '../tf';
import type { AdapterMethod, ForwardContext } from '../adapters/method';
import type { LoraTarget } from '../config/types';
import type { BertConfig, ModelType } from './bert-config';
import {
  EMBEDDINGS_PROJECT,
  FINAL_NORM,
  PRE_ATTENTION_NORM,
  PRE_MLP_NORM,
  embeddingWidth,
  isLocalLayer,
  modelTypeOf,
  positionOffset,
} from './families';
import { fusedKernelsActive } from '../native/wasm-kernels';
import {
  activation,
  biasGelu,
  clsSelfAttention,
  dense,
  dropout,
  embeddingLookup,
  frozenDense,
  layerNorm,
  matmulTrainable,
  selfAttention,
  type FrozenDense,
} from './ops';
import type { Param, ParamStore } from './params';

export interface EncoderInputs {
  inputIds: Tensor2D; // [B, T] int32
  tokenTypeIds: Tensor2D; // [B, T] int32
  attentionMask: Tensor2D; // [B, T] float32, 1 = token, 0 = padding
}

/** A linear layer over one or more weights fused along the output axis (Q, K and V in one product). */
class Linear {
  private readonly frozen?: FrozenDense;

  constructor(
    private readonly weights: Param[],
    private readonly biases: Param[],
  ) {
    if (weights.every((w) => !w.trainable) && biases.every((b) => !b.trainable)) {
      const kernel = this.kernel() as Tensor2D;
      // The native products read a transposed operand at full speed; only plain wasm needs the copy.
      this.frozen = { kernel, kernelT: fusedKernelsActive() ? undefined : tf.transpose(kernel), bias: this.bias() };
    }
  }

  apply(x: Tensor2D): Tensor2D {
    if (this.frozen) return frozenDense(x, this.frozen);
    // ModernBERT's layers have no biases
    return this.biases.length ? dense(x, this.kernel(), this.bias()!) : matmulTrainable(x, this.kernel());
  }

  /** x · kernel alone, and the bias (if any) for the caller to add (fused into the GELU that follows). */
  product(x: Tensor2D): { y: Tensor2D; bias?: BiasTerm } {
    if (this.frozen) {
      const y = frozenDense(x, { kernel: this.frozen.kernel, kernelT: this.frozen.kernelT });
      return { y, bias: this.frozen.bias ? { value: this.frozen.bias, trainable: false } : undefined };
    }
    const bias = this.bias();
    return { y: matmulTrainable(x, this.kernel()), bias: bias ? { value: bias, trainable: true } : undefined };
  }

  private kernel(): Tensor {
    const kernels = this.weights.map((w) => w.value);
    return kernels.length === 1 ? kernels[0] : tf.concat(kernels, 1);
  }

  private bias(): Tensor | undefined {
    const biases = this.biases.map((b) => b.value);
    if (biases.length === 0) return undefined;
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
  intermediate: Linear;
  output: Linear;
  /** Post-LN (BERT and its relatives): after the attention and after the feed-forward block. */
  attentionNorm?: NormWeights;
  outputNorm?: NormWeights;
  /** Pre-LN (ModernBERT): before the attention (none in layer 0) and before the MLP. */
  preAttentionNorm?: NormWeights;
  preMlpNorm?: NormWeights;
}

/** A LayerNorm's gain and its bias; ModernBERT's norms have no bias, and a constant zero stands in. */
type NormWeights = [Param, Param | undefined];

/** Which rows of the last layer `encode` returns: every token's, the [CLS] rows, or these flat row indices. */
export type Readout = 'all' | 'cls' | tf.Tensor1D;

const MASK_PENALTY = -10000; // the original BERT's additive mask for padded keys

/** Attention masks of one batch: [B, 1, 1, T] over padding, and ModernBERT's local window as [B, 1, T, T]. */
interface Masks {
  padding: Tensor;
  local?: Tensor;
  /** Rotary cos and sin per layer kind, each [T, 3d] (1 and 0 over the values). */
  rotary?: Map<number, { cos: Tensor; sin: Tensor }>;
}

/**
 * The encoders PEFT Lab fine-tunes, in one class: BERT's post-LayerNorm layer, shared by RoBERTa,
 * XLM-R, ELECTRA and DistilBERT with their own embeddings (families.ts names the weights), and
 * ModernBERT's pre-LayerNorm layer with rotary attention, GeGLU and local windows. Adapter sites
 * sit where the `adapters` library puts them for every family: after the attention output
 * projection ("mh_adapter") and after the feed-forward output projection ("output_adapter").
 */
export class BertEncoder {
  private readonly layers: LayerWeights[];
  private readonly type: ModelType;
  /** Zero biases for ModernBERT's bias-free LayerNorms, by width. */
  private readonly zeroBias = new Map<number, Tensor>();
  private readonly rotate?: FrozenDense;

  constructor(
    readonly config: BertConfig,
    private readonly store: ParamStore,
    private readonly method: AdapterMethod,
    private readonly dropoutRate: { hidden: number; attention: number },
  ) {
    this.type = modelTypeOf(config);
    this.layers = Array.from({ length: config.num_hidden_layers }, (_, i) => this.layerWeights(i));
    if (config.modernbert) this.rotate = rotateHalfMatrix(config.hidden_size / config.num_attention_heads);
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
    const masks = this.masks(inputs.attentionMask, batch, seq);
    const last = this.layers.length - 1;
    if (last < 0) {
      x = this.finalNorm(x);
      return readout === 'all' ? x : readout === 'cls' ? this.clsRows(x, batch, seq) : embeddingLookup(x, readout);
    }
    // A tidy per layer frees the layer's intermediates as soon as it is done (what its backward pass
    // needs is saved by the ops themselves), instead of keeping every layer's until the pass ends.
    for (let i = 0; i < this.layers.length; i++) {
      const input = x;
      const layerReadout = i === last ? readout : 'all';
      x = tf.tidy(() => {
        const y = this.config.modernbert
          ? this.preNormLayer(i, input, masks, batch, seq, ctx, layerReadout)
          : this.layer(i, input, masks.padding, batch, seq, ctx, layerReadout);
        return i === last ? this.finalNorm(y) : y;
      });
    }
    return x;
  }

  /** The first token's row of each sequence: [N, d] -> [B, d]. */
  clsRows(x: Tensor2D, batch: number, seq: number): Tensor2D {
    const d = this.config.hidden_size;
    return tf.reshape(tf.slice(tf.reshape(x, [batch, seq, d]), [0, 0, 0], [batch, 1, d]), [batch, d]);
  }

  private masks(attentionMask: Tensor2D, batch: number, seq: number): Masks {
    // [B, 1, 1, T]: 0 for tokens, -10000 for padded keys, broadcast over heads and queries
    const padding = tf.reshape(tf.mul(tf.sub(1, attentionMask), MASK_PENALTY), [batch, 1, 1, seq]);
    const mb = this.config.modernbert;
    if (!mb) return { padding };
    const half = Math.floor(mb.localAttention / 2);
    const window = new Float32Array(seq * seq);
    for (let q = 0; q < seq; q++)
      for (let k = 0; k < seq; k++) if (Math.abs(q - k) > half) window[q * seq + k] = MASK_PENALTY;
    // [B, 1, T, T]: a key is hidden when padded or farther than the window
    const local = tf.minimum(padding, tf.tensor4d(window, [1, 1, seq, seq]));
    const rotary = new Map<number, { cos: Tensor; sin: Tensor }>();
    for (const theta of new Set([mb.globalRopeTheta, mb.localRopeTheta]))
      rotary.set(theta, rotaryTables(seq, this.config, theta));
    return { padding, local, rotary };
  }

  private embed(inputs: EncoderInputs, ctx: ForwardContext): Tensor2D {
    const [batch, seq] = inputs.inputIds.shape;
    const width = embeddingWidth(this.config);
    let summed = this.lookup('bert.embeddings.word_embeddings.weight', tf.reshape(inputs.inputIds, [-1])); // [N, e]
    if (this.store.has('bert.embeddings.position_embeddings.weight'))
      summed = this.addPositions(summed, inputs.attentionMask, batch, seq, width);
    if (this.store.has('bert.embeddings.token_type_embeddings.weight')) {
      // One token type (RoBERTa, XLM-R): every token reads row 0, as their tokenizers give no segment ids
      const types =
        this.config.type_vocab_size > 1 ? tf.reshape(inputs.tokenTypeIds, [-1]) : tf.zeros([batch * seq], 'int32');
      summed = tf.add(summed, this.lookup('bert.embeddings.token_type_embeddings.weight', types)) as Tensor2D;
    }
    const normed = this.norm(summed, 'bert.embeddings.LayerNorm');
    const dropped = dropout(normed, this.dropoutRate.hidden, ctx.dropoutSeed()) as Tensor2D;
    // ELECTRA: embeddings narrower than the encoder are projected after their LayerNorm and dropout
    if (!this.store.has(`${EMBEDDINGS_PROJECT}.weight`)) return dropped;
    return dense(
      dropped,
      this.store.tensor(`${EMBEDDINGS_PROJECT}.weight`),
      this.store.tensor(`${EMBEDDINGS_PROJECT}.bias`),
    );
  }

  /**
   * x [N, e] plus its position rows. BERT's position t is row t (one [T, e] slice broadcast over the
   * batch); RoBERTa's is row padding_idx + 1 + t, and a padded position reads row padding_idx
   * (transformers' create_position_ids_from_input_ids, for batches padded on the right, whose
   * padding is exactly where the attention mask is 0).
   */
  private addPositions(x: Tensor2D, attentionMask: Tensor2D, batch: number, seq: number, width: number): Tensor2D {
    const table = this.store.tensor('bert.embeddings.position_embeddings.weight');
    const offset = positionOffset(this.config);
    if (offset === 0) {
      const positions = tf.slice(table, [0, 0], [seq, width]); // [T, e]
      return tf.reshape(tf.add(tf.reshape(x, [batch, seq, width]), positions), [-1, width]) as Tensor2D;
    }
    const mask = attentionMask.dataSync();
    const ids = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++)
      for (let t = 0; t < seq; t++) ids[b * seq + t] = mask[b * seq + t]! > 0 ? offset + t : this.config.pad_token_id;
    return tf.add(x, this.lookup('bert.embeddings.position_embeddings.weight', tf.tensor1d(ids, 'int32'))) as Tensor2D;
  }

  private lookup(name: string, ids: Tensor): Tensor2D {
    const table = this.store.get(name);
    // A frozen table is a constant for autodiff, so the plain gather (whose gradient wasm lacks) is safe
    return table.trainable ? embeddingLookup(table.value as Tensor2D, ids) : (tf.gather(table.value, ids) as Tensor2D);
  }

  /** One post-LN encoder layer; its output for every row, the [CLS] rows alone ([B, d]) or the rows given ([M, d]). */
  private layer(
    i: number,
    input: Tensor2D,
    maskBias: Tensor,
    batch: number,
    seq: number,
    ctx: ForwardContext,
    readout: Readout,
  ): Tensor2D {
    const w = this.layers[i];
    const clsOnly = readout === 'cls';
    let a = this.selfAttention(this.qkvWithLora(i, input), maskBias, batch, seq, ctx, clsOnly); // [N or B, d]
    let x = clsOnly ? this.clsRows(input, batch, seq) : input;
    if (typeof readout !== 'string') {
      a = embeddingLookup(a, readout); // [M, d]
      x = embeddingLookup(input, readout);
    }
    a = this.withLora(i, 'attention_output', w.attentionOutput.apply(a), a);
    // DistilBERT adds the attention output to its input without a dropout in between
    if (this.type !== 'distilbert') a = dropout(a, this.dropoutRate.hidden, ctx.dropoutSeed()) as Tensor2D;
    a = this.method.applyAtSite(i, 'attention', a, x, ctx); // Houlsby site 1
    const x1 = this.normPair(tf.add(a, x) as Tensor2D, w.attentionNorm!);

    const { y: product, bias } = w.intermediate.product(x1); // [N, I], the bias goes into the activation
    let h = this.withLora(i, 'intermediate', product, x1);
    h = hiddenActivation(this.config.hidden_act, h, bias);
    let f = this.withLora(i, 'output', w.output.apply(h), h); // [N, d]
    f = dropout(f, this.dropoutRate.hidden, ctx.dropoutSeed()) as Tensor2D;
    f = this.method.applyAtSite(i, 'ffn', f, x1, ctx); // Houlsby site 2
    return this.normPair(tf.add(f, x1) as Tensor2D, w.outputNorm!);
  }

  /**
   * One ModernBERT layer (pre-LN): h = x + Wo(attention(attn_norm(x))), then h + mlp(mlp_norm(h))
   * with mlp(u) = Wo(act(input) * gate) for [input, gate] = Wi(u). The adapters sit on Wo's outputs
   * and a parallel adapter reads the normed input of its block, as the `adapters` library's hooks
   * place them (its ModernBERT interface: attn.Wo, mlp.Wo, with the residual taken before attn and mlp).
   */
  private preNormLayer(
    i: number,
    input: Tensor2D,
    masks: Masks,
    batch: number,
    seq: number,
    ctx: ForwardContext,
    readout: Readout,
  ): Tensor2D {
    const w = this.layers[i];
    const mb = this.config.modernbert!;
    const clsOnly = readout === 'cls';
    const local = isLocalLayer(this.config, i);
    const attentionInput = w.preAttentionNorm ? this.normPair(input, w.preAttentionNorm) : input; // layer 0: identity
    const rotary = masks.rotary!.get(local ? mb.localRopeTheta : mb.globalRopeTheta)!;
    const qkv = this.withRotary(this.qkvWithLora(i, attentionInput), rotary, batch, seq);
    let mask = local ? masks.local! : masks.padding;
    if (clsOnly && local) mask = tf.slice(mask, [0, 0, 0, 0], [batch, 1, 1, seq]); // the first query's row of the window
    let a = this.selfAttention(qkv, mask, batch, seq, ctx, clsOnly);
    let x = clsOnly ? this.clsRows(input, batch, seq) : input;
    let normed = clsOnly ? this.clsRows(attentionInput, batch, seq) : attentionInput;
    if (typeof readout !== 'string') {
      a = embeddingLookup(a, readout);
      x = embeddingLookup(input, readout);
      normed = embeddingLookup(attentionInput, readout);
    }
    a = this.withLora(i, 'attention_output', w.attentionOutput.apply(a), a);
    a = this.method.applyAtSite(i, 'attention', a, normed, ctx);
    a = dropout(a, this.dropoutRate.attention, ctx.dropoutSeed()) as Tensor2D; // out_drop
    const h = tf.add(x, a) as Tensor2D;

    const mlpInput = this.normPair(h, w.preMlpNorm!);
    const { y: product, bias } = w.intermediate.product(mlpInput); // [N, 2I]
    let u = this.withLora(i, 'intermediate', product, mlpInput);
    if (bias) u = tf.add(u, bias.value) as Tensor2D;
    const [gateInput, gate] = tf.split(u, 2, 1) as [Tensor2D, Tensor2D];
    let g = tf.mul(hiddenActivation(this.config.hidden_act, gateInput), gate) as Tensor2D;
    g = dropout(g, this.dropoutRate.hidden, ctx.dropoutSeed()) as Tensor2D;
    let f = this.withLora(i, 'output', w.output.apply(g), g);
    f = this.method.applyAtSite(i, 'ffn', f, mlpInput, ctx);
    return tf.add(h, f) as Tensor2D;
  }

  /** ModernBERT's last step: final_norm over the last hidden states (row by row, so any readout). */
  private finalNorm(x: Tensor2D): Tensor2D {
    return this.store.has(`${FINAL_NORM}.weight`) ? this.norm(x, FINAL_NORM) : x;
  }

  /** q and k rotated by their positions (rotary embeddings); v as it is. qkv [N, 3d]. */
  private withRotary(qkv: Tensor2D, { cos, sin }: { cos: Tensor; sin: Tensor }, batch: number, seq: number): Tensor2D {
    const width = qkv.shape[1];
    const dh = this.config.hidden_size / this.config.num_attention_heads;
    const rotated = tf.reshape(frozenDense(tf.reshape(qkv, [-1, dh]) as Tensor2D, this.rotate!), [batch, seq, width]); // rotate_half per head
    const mixed = tf.add(tf.mul(tf.reshape(qkv, [batch, seq, width]), cos), tf.mul(rotated, sin));
    return tf.reshape(mixed, [-1, width]) as Tensor2D;
  }

  private selfAttention(
    qkv: Tensor2D,
    maskBias: Tensor,
    batch: number,
    seq: number,
    ctx: ForwardContext,
    clsOnly: boolean,
  ): Tensor2D {
    const attend = clsOnly ? clsSelfAttention : selfAttention;
    return attend(
      qkv,
      maskBias,
      batch,
      seq,
      this.config.num_attention_heads,
      this.dropoutRate.attention,
      ctx.dropoutSeed(),
    ); // [N or B, d]
  }

  private qkvWithLora(i: number, x: Tensor2D): Tensor2D {
    const qkv = this.layers[i].qkv.apply(x);
    const deltas = (['query', 'key', 'value'] as const).map((t) => this.method.loraDelta(i, t, x));
    if (deltas.every((delta) => delta === undefined)) return qkv;
    const d = this.config.hidden_size;
    const zeros = tf.zeros([x.shape[0], d]);
    return tf.add(
      qkv,
      tf.concat(
        deltas.map((delta) => delta ?? zeros),
        1,
      ),
    ) as Tensor2D;
  }

  private withLora(i: number, target: LoraTarget, output: Tensor2D, input: Tensor2D): Tensor2D {
    const delta = this.method.loraDelta(i, target, input);
    return delta ? (tf.add(output, delta) as Tensor2D) : output;
  }

  private norm(x: Tensor2D, prefix: string): Tensor2D {
    return this.normPair(x, this.normWeights(prefix)!);
  }

  private normPair(x: Tensor2D, [gain, bias]: NormWeights): Tensor2D {
    return layerNorm(x, gain.value, bias?.value ?? this.zeros(gain.value.shape[0]!), this.config.layer_norm_eps);
  }

  private zeros(width: number): Tensor {
    let zero = this.zeroBias.get(width);
    if (!zero) this.zeroBias.set(width, (zero = tf.keep(tf.zeros([width]))));
    return zero;
  }

  private normWeights(prefix: string): NormWeights | undefined {
    if (!this.store.has(`${prefix}.weight`)) return undefined;
    return [
      this.store.get(`${prefix}.weight`),
      this.store.has(`${prefix}.bias`) ? this.store.get(`${prefix}.bias`) : undefined,
    ];
  }

  private layerWeights(i: number): LayerWeights {
    const p = `bert.encoder.layer.${i}`;
    const s = this.store;
    const biasOf = (n: string) => (s.has(`${n}.bias`) ? [s.get(`${n}.bias`)] : []);
    const linear = (...names: string[]) =>
      new Linear(
        names.map((n) => s.get(`${n}.weight`)),
        names.flatMap(biasOf),
      );
    return {
      qkv: linear(`${p}.attention.self.query`, `${p}.attention.self.key`, `${p}.attention.self.value`),
      attentionOutput: linear(`${p}.attention.output.dense`),
      intermediate: linear(`${p}.intermediate.dense`),
      output: linear(`${p}.output.dense`),
      attentionNorm: this.normWeights(`${p}.attention.output.LayerNorm`),
      outputNorm: this.normWeights(`${p}.output.LayerNorm`),
      preAttentionNorm: this.normWeights(`${p}.${PRE_ATTENTION_NORM}`),
      preMlpNorm: this.normWeights(`${p}.${PRE_MLP_NORM}`),
    };
  }

  dispose(): void {
    for (const l of this.layers) for (const lin of [l.qkv, l.attentionOutput, l.intermediate, l.output]) lin.dispose();
    for (const zero of this.zeroBias.values()) zero.dispose();
    this.zeroBias.clear();
    this.rotate?.kernel.dispose();
    this.rotate?.kernelT?.dispose();
  }
}

/**
 * transformers' rotate_half as a product: x · R = cat(-x2, x1) for the halves x1, x2 of a head.
 * Its transpose serves the backward pass.
 */
function rotateHalfMatrix(dh: number): FrozenDense {
  const half = dh / 2;
  const r = new Float32Array(dh * dh);
  for (let j = 0; j < half; j++) r[(j + half) * dh + j] = -1;
  for (let j = half; j < dh; j++) r[(j - half) * dh + j] = 1;
  const kernel = tf.keep(tf.tensor2d(r, [dh, dh]));
  return { kernel, kernelT: tf.keep(tf.transpose(kernel)) };
}

/**
 * cos and sin of every position against every column of qkv [T, 3d]: for q and k, column j of a head
 * turns at inv_freq[j mod dh/2] = theta^(-2 (j mod dh/2) / dh) (transformers' default rope: the
 * frequencies repeated over the two halves); for v, cos 1 and sin 0, so v passes unchanged.
 */
function rotaryTables(seq: number, config: BertConfig, theta: number): { cos: Tensor; sin: Tensor } {
  const d = config.hidden_size;
  const dh = d / config.num_attention_heads;
  const half = dh / 2;
  const cos = new Float32Array(seq * 3 * d);
  const sin = new Float32Array(seq * 3 * d);
  for (let t = 0; t < seq; t++) {
    for (let c = 0; c < 3 * d; c++) {
      const at = t * 3 * d + c;
      if (c >= 2 * d) {
        cos[at] = 1;
        continue;
      }
      const j = (c % dh) % half;
      // float32 as torch computes inv_freq and the angle
      const invFreq = Math.fround(1 / Math.fround(theta ** ((2 * j) / dh)));
      const angle = Math.fround(t * invFreq);
      cos[at] = Math.cos(angle);
      sin[at] = Math.sin(angle);
    }
  }
  return { cos: tf.tensor2d(cos, [seq, 3 * d]), sin: tf.tensor2d(sin, [seq, 3 * d]) };
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
