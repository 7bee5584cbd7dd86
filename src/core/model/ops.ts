/**
 * Building blocks of the encoder, each with a hand-written gradient.
 *
 * Why hand-written: TensorFlow.js's default matmul gradients multiply by transposed operands,
 * which the wasm backend (XNNPACK) runs 10-40x slower than plain 2-D products. Here every product,
 * forward and backward, is a plain product of row-major operands; frozen weights keep both
 * layouts so their backward pass needs no transpose at all. The fused GELU and LayerNorm
 * gradients also save a dozen intermediate tensors per layer.
 *
 * With the native kernels on the wasm backend (src/core/native/wasm-kernels.ts) GELU (with its bias),
 * LayerNorm, the attention softmax and dropout each run as one native kernel forward and one
 * backward, the attention's per-head products read and write the heads in place, the dense layers
 * add their bias inside the product (_FusedMatMul), and the products'
 * gradients multiply transposed operands directly (OpenBLAS does not need the transposed copies);
 * everywhere else the same maths runs as a composition of tf ops.
 * Both paths give the same numbers within float tolerance (dropout: bit for bit), tested in
 * test/unit/native-fused.test.ts.
 */
import { tf, type Tensor, type Tensor2D } from '../tf';
import { fusedKernelsActive } from '../native/wasm-kernels';
import { aleaState } from '../native/kernels/dropout';
import { FUSED } from '../native/kernels/shared';
import { softmaxMaskGroup } from '../native/kernels/softmax';

type GradFunc = (dy: Tensor, saved: Tensor[]) => Tensor[];
type OpBody = (inputs: Tensor[], save: tf.GradSaveFunc) => { value: Tensor; gradFunc: GradFunc };

/** tf.customGrad with the inputs as an array, which keeps every op below fully typed. */
function customOp(body: OpBody): (...inputs: Tensor[]) => Tensor {
  const wrapped = (...args: (Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    return body(args as Tensor[], save);
  };
  return tf.customGrad(wrapped as unknown as Parameters<typeof tf.customGrad>[0]) as (...inputs: Tensor[]) => Tensor;
}

/** Runs a fused native kernel (only when fusedKernelsActive()). */
function runFused(name: string, inputs: Record<string, Tensor>, attrs: Record<string, number> = {}): Tensor | Tensor[] {
  return tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as Tensor | Tensor[];
}

/** a · bᵀ (2-D or batched): natively the BLAS reads b transposed; otherwise an explicit transpose (fast on wasm). */
function matMulBT(a: Tensor, b: Tensor): Tensor {
  if (fusedKernelsActive()) return tf.matMul(a as Tensor2D, b as Tensor2D, false, true);
  return tf.matMul(a as Tensor2D, transposeLast(b) as Tensor2D);
}

/** aᵀ · b, likewise. */
function matMulAT(a: Tensor, b: Tensor): Tensor {
  if (fusedKernelsActive()) return tf.matMul(a as Tensor2D, b as Tensor2D, true, false);
  return tf.matMul(transposeLast(a) as Tensor2D, b as Tensor2D);
}

/** Swaps the last two axes. */
function transposeLast(x: Tensor): Tensor {
  const perm = x.shape.map((_, i) => i);
  perm.push(...perm.splice(-2).reverse());
  return tf.transpose(x, perm);
}

/**
 * A frozen linear layer: kernel [in, out] for the forward pass; for dx its transpose [out, in], or
 * none, and dx reads the kernel transposed (natively as fast, and no second copy of every frozen
 * weight: 1.2 GB for a model of RoBERTa-large's size).
 */
export interface FrozenDense {
  kernel: Tensor2D;
  kernelT?: Tensor2D;
  bias?: Tensor;
}

/** x · kernel + bias: natively one _FusedMatMul (the bias written into the product), else a product then an add. */
function affine(x: Tensor2D, kernel: Tensor2D, bias: Tensor | undefined): Tensor2D {
  if (!bias) return tf.matMul(x, kernel);
  if (fusedKernelsActive() && bias.rank === 1) return tf.fused.matMul({ a: x, b: kernel, bias }) as Tensor2D;
  return tf.add(tf.matMul(x, kernel), bias) as Tensor2D;
}

/** y = x · kernel + bias with x [N, in]; only dx flows back. */
export function frozenDense(x: Tensor2D, w: FrozenDense): Tensor2D {
  const op = customOp(([xIn]) => ({
    value: affine(xIn as Tensor2D, w.kernel, w.bias),
    gradFunc: (dy: Tensor) => [w.kernelT ? tf.matMul(dy as Tensor2D, w.kernelT) : matMulBT(dy, w.kernel)],
  }));
  return op(x) as Tensor2D;
}

/** y = x · kernel + bias with x [N, in], kernel [in, out] trainable; dx, dKernel and dBias flow back. */
export function dense(x: Tensor2D, kernel: Tensor, bias: Tensor): Tensor2D {
  const op = customOp(([xIn, k, b], save) => {
    save([xIn, k]);
    return {
      value: affine(xIn as Tensor2D, k as Tensor2D, b),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [xs, ks] = saved as Tensor2D[];
        const dy2 = dy as Tensor2D;
        return [matMulBT(dy2, ks), matMulAT(xs, dy2), tf.sum(dy2, 0)];
      },
    };
  });
  return op(x, kernel, bias) as Tensor2D;
}

/**
 * y = x · tableᵀ + bias for x [M, d] and a trainable table [V, d] (a decoder tied to the word
 * embeddings): natively one product reading the table transposed, with dx = dy · table and
 * dtable = dyᵀ · x, so the [V, d] table is never transposed; otherwise through its transpose.
 */
export function tiedDense(x: Tensor2D, table: Tensor2D, bias: Tensor): Tensor2D {
  const op = customOp(([xIn, t, b], save) => {
    save([xIn!, t!]);
    const value = fusedKernelsActive()
      ? (tf.fused.matMul({ a: xIn as Tensor2D, b: t as Tensor2D, transposeB: true, bias: b }) as Tensor2D)
      : affine(xIn as Tensor2D, tf.transpose(t as Tensor2D), b);
    return {
      value,
      gradFunc: (dy: Tensor, [xs, ts]: Tensor[]) => [
        tf.matMul(dy as Tensor2D, ts as Tensor2D),
        matMulAT(dy, xs!),
        tf.sum(dy, 0),
      ],
    };
  });
  return op(x, table, bias) as Tensor2D;
}

/**
 * Mean softmax cross-entropy of logits [M, V] against int32 targets [M], with the gradient
 * softmax − one-hot written by hand: autodiff through logSoftmax and a one-hot product would keep
 * four [M, V] tensors for the backward pass; this keeps the logits and one [M] vector. Natively
 * one pass forward (per-row log-sum-exp) and one backward.
 */
export function softmaxCrossEntropy(logits: Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  const [rows, vocab] = logits.shape;
  if (fusedKernelsActive() && logits.dtype === 'float32') {
    const op = customOp(([x], save) => {
      const [losses, lse] = runFused(FUSED.xent, { x: x!, targets }) as Tensor[];
      // targets is saved too: it may be an intermediate that is disposed before the backward pass
      save([x!, lse!, targets]);
      return {
        value: tf.mean(losses!),
        gradFunc: (dy: Tensor, [xs, l, ts]: Tensor[]) => [
          runFused(FUSED.xentGrad, { x: xs!, lse: l!, targets: ts! }, { scale: dy.dataSync()[0]! / rows }) as Tensor,
        ],
      };
    });
    return op(logits) as tf.Scalar;
  }
  const op = customOp(([x], save) => {
    const logSumExp = tf.logSumExp(x!, 1); // [M]
    const flat = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(vocab, 'int32')), targets); // index of each target logit in x
    const picked = tf.gather(tf.reshape(x!, [-1]), flat); // [M]
    save([x!, logSumExp, targets]);
    return {
      value: tf.mean(tf.sub(logSumExp, picked)),
      gradFunc: (dy: Tensor, [xs, lse, ts]: Tensor[]) => {
        const softmax = tf.exp(tf.sub(xs!, tf.reshape(lse!, [rows, 1])));
        return [tf.mul(tf.sub(softmax, tf.oneHot(ts as tf.Tensor1D, vocab)), tf.div(dy, rows))];
      },
    };
  });
  return op(logits) as tf.Scalar;
}

/** y = x · kernel without bias, kernel trainable (LoRA's A and B). */
export function matmulTrainable(x: Tensor2D, kernel: Tensor): Tensor2D {
  const op = customOp(([xIn, k], save) => {
    save([xIn, k]);
    return {
      value: tf.matMul(xIn as Tensor2D, k as Tensor2D),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [xs, ks] = saved as Tensor2D[];
        return [matMulBT(dy, ks), matMulAT(xs, dy)];
      },
    };
  });
  return op(x, kernel) as Tensor2D;
}

/**
 * Batched a · bᵀ with a [G, M, K], b [G, N, K] (the attention scores q · kᵀ): natively one product
 * reading b transposed, with da = dy · b and db = dyᵀ · a; otherwise batchMatMul of an explicit
 * transpose.
 */
export function batchMatMulBT(a: Tensor, b: Tensor): Tensor {
  if (!fusedKernelsActive()) return batchMatMul(a, transposeLast(b));
  const op = customOp(([aIn, bIn], save) => {
    save([aIn!, bIn!]);
    return {
      value: tf.matMul(aIn as tf.Tensor3D, bIn as tf.Tensor3D, false, true),
      gradFunc: (dy: Tensor, [as, bs]: Tensor[]) => [
        tf.matMul(dy as tf.Tensor3D, bs as tf.Tensor3D),
        matMulAT(dy, as!),
      ],
    };
  });
  return op(a, b);
}

/** Batched a · b with a [G, M, K], b [G, K, N]; both gradients multiply transposed operands. */
export function batchMatMul(a: Tensor, b: Tensor): Tensor {
  const op = customOp(([aIn, bIn], save) => {
    save([aIn, bIn]);
    return {
      value: tf.matMul(aIn as tf.Tensor3D, bIn as tf.Tensor3D),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [as, bs] = saved as tf.Tensor3D[];
        const d = dy as tf.Tensor3D;
        return [matMulBT(d, bs), matMulAT(as, d)];
      },
    };
  });
  return op(a, b);
}

const SQRT_HALF = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as Hugging Face's `gelu`. */
export function gelu(x: Tensor): Tensor {
  return biasGelu(x);
}

/**
 * gelu(x + bias) for x [N, d] and bias [d] (or none): the bias add of the layer before the GELU,
 * fused into it. `biasTrainable` false makes the bias a constant: no gradient is computed for it.
 */
export function biasGelu(x: Tensor, bias?: Tensor, biasTrainable = true): Tensor {
  const native = fusedKernelsActive() && x.dtype === 'float32';
  const gradOfBias = bias !== undefined && biasTrainable;
  const op = customOp((inputs, save) => {
    const xIn = inputs[0]!;
    const b = gradOfBias ? inputs[1] : bias;
    /** dx, and db = dx summed over rows when the bias is trainable. */
    const grads = (dx: Tensor): Tensor[] => (gradOfBias ? [dx, sumRows(dx)] : [dx]);
    if (native) {
      // Saves the pre-bias input only: the gradient kernel recomputes x + b, erf and exp.
      save(b ? [xIn, b] : [xIn]);
      return {
        value: runFused(FUSED.geluBias, b ? { x: xIn, b } : { x: xIn }) as Tensor,
        gradFunc: (dy: Tensor, [xs, bs]: Tensor[]) =>
          grads(runFused(FUSED.geluBiasGrad, bs ? { dy, x: xs!, b: bs } : { dy, x: xs! }) as Tensor),
      };
    }
    const u = b ? tf.add(xIn, b) : xIn;
    const cdf = tf.mul(0.5, tf.add(1, tf.erf(tf.mul(u, SQRT_HALF))));
    save([u, cdf]);
    return {
      value: tf.mul(u, cdf),
      gradFunc: (dy: Tensor, [us, c]: Tensor[]) => {
        const pdf = tf.mul(INV_SQRT_2PI, tf.exp(tf.mul(-0.5, tf.square(us!))));
        return grads(tf.mul(dy, tf.add(c!, tf.mul(us!, pdf))));
      },
    };
  });
  return gradOfBias ? op(x, bias) : op(x);
}

export function activation(name: 'gelu' | 'relu' | 'swish' | 'tanh', x: Tensor): Tensor {
  switch (name) {
    case 'gelu':
      return gelu(x);
    case 'relu':
      return tf.relu(x);
    case 'swish':
      return tf.mul(x, tf.sigmoid(x));
    case 'tanh':
      return tf.tanh(x);
  }
}

/** x [..., d] summed over every axis but the last; zeros without rows (the wasm Sum of an empty axis is not). */
function sumRows(x: Tensor): Tensor {
  const d = x.shape[x.rank - 1]!;
  return x.size === 0 ? tf.zeros([d]) : tf.sum(tf.reshape(x, [-1, d]), 0);
}

/** LayerNorm over the last axis of x [N, d] with gain and bias [d]. */
export function layerNorm(x: Tensor2D, gain: Tensor, bias: Tensor, eps: number): Tensor2D {
  if (fusedKernelsActive() && x.dtype === 'float32') return nativeLayerNorm(x, gain, bias, eps);
  const op = customOp(([xIn, g, b], save) => {
    const { mean, variance } = tf.moments(xIn, -1, true);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(tf.sub(xIn, mean), rstd);
    save([xhat, rstd, g]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: Tensor, [xh, rs, gs]: Tensor[]) => {
        // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), the standard closed form
        const dxhat = tf.mul(dy, gs);
        const meanDxhat = tf.mean(dxhat, -1, true);
        const meanDxhatXhat = tf.mean(tf.mul(dxhat, xh), -1, true);
        const dx = tf.mul(rs, tf.sub(tf.sub(dxhat, meanDxhat), tf.mul(xh, meanDxhatXhat)));
        return [dx, tf.sum(tf.mul(dy, xh), 0), tf.sum(dy, 0)];
      },
    };
  });
  return op(x, gain, bias) as Tensor2D;
}

/** LayerNorm in one native kernel; saves x with its row means and 1 / std, and the gain. */
function nativeLayerNorm(x: Tensor2D, gain: Tensor, bias: Tensor, eps: number): Tensor2D {
  const op = customOp(([xIn, g, b], save) => {
    const [y, mean, rstd] = runFused(FUSED.layerNorm, { x: xIn!, gain: g!, bias: b! }, { eps }) as Tensor[];
    save([xIn!, mean!, rstd!, g!]);
    return {
      value: y!,
      gradFunc: (dy: Tensor, [xs, m, r, gs]: Tensor[]) =>
        runFused(FUSED.layerNormGrad, { dy, x: xs!, mean: m!, rstd: r!, gain: gs! }) as Tensor[],
    };
  });
  return op(x, gain, bias) as Tensor2D;
}

/**
 * softmax(scores · scale + mask) over the last axis, the attention's probabilities: scores
 * [B, H, T, T], scale 1 / sqrt(dh), mask [B, 1, 1, T] a constant (0 for tokens, a large negative
 * number for padding; no gradient).
 */
export function maskedSoftmax(scores: Tensor, mask: Tensor, scale = 1): Tensor {
  if (
    !fusedKernelsActive() ||
    scores.dtype !== 'float32' ||
    mask.dtype !== 'float32' ||
    softmaxMaskGroup(scores.shape, mask.shape) < 1
  ) {
    return tf.softmax(tf.add(scale === 1 ? scores : tf.mul(scores, scale), mask));
  }
  const op = customOp(([s], save) => {
    const y = runFused(FUSED.softmax, { x: s!, mask }, { scale }) as Tensor;
    save([y]);
    return {
      value: y,
      gradFunc: (dy: Tensor, [ys]: Tensor[]) => [runFused(FUSED.softmaxGrad, { dy, y: ys! }, { scale }) as Tensor],
    };
  });
  return op(scores);
}

/**
 * Multi-head self-attention of B sequences of T tokens from the fused projection qkv [B·T, 3·d] (for each token q, k, v, each as
 * H heads of dh = d / H) to the context [B·T, d]: softmax(q · kᵀ / sqrt(dh) + mask) with dropout
 * (`rate`, `seed`), times v, per head. mask [B, 1, 1, T] is a constant.
 *
 * Natively the per-head products read q, k and v where they lie in qkv and write the context in
 * place of its heads (PeftAttn* kernels), and the backward pass is native too; otherwise the heads
 * are split out with a transpose and an unstack, and put back with a transpose.
 */
export function selfAttention(
  qkv: Tensor2D,
  mask: Tensor,
  batch: number,
  seq: number,
  heads: number,
  rate: number,
  seed: number | undefined,
): Tensor2D {
  const dh = qkv.shape[1] / 3 / heads;
  const scale = 1 / Math.sqrt(dh);
  const drop = rate > 0 && seed !== undefined;
  const native = fusedKernelsActive() && qkv.dtype === 'float32' && mask.dtype === 'float32' && rate < 1;
  if (!native || softmaxMaskGroup([batch, heads, seq, seq], mask.shape) < 1)
    return composedAttention(qkv, mask, batch, seq, heads, rate, seed);
  const attrs = { batch, heads };
  const op = customOp(([x], save) => {
    const probs = runFused(
      FUSED.softmax,
      { x: runFused(FUSED.attnScores, { qkv: x! }, attrs) as Tensor, mask },
      { scale },
    ) as Tensor;
    const [dropped, keep] = drop
      ? (runFused(FUSED.dropout, { x: probs }, { keep: 1 - rate, ...aleaState(String(seed)) }) as Tensor[])
      : [probs, undefined];
    save(keep ? [x!, probs, dropped!, keep] : [x!, probs]);
    return {
      value: runFused(FUSED.attnContext, { probs: dropped!, qkv: x! }, attrs) as Tensor,
      gradFunc: (dy: Tensor, [xs, p, pd = p, m]: Tensor[]) => {
        const dDropped = runFused(FUSED.attnProbsGrad, { dcontext: dy, qkv: xs! }, attrs) as Tensor;
        const dProbs = m ? tf.mul(dDropped, m) : dDropped;
        const dScores = runFused(FUSED.softmaxGrad, { dy: dProbs, y: p! }, { scale }) as Tensor;
        return [runFused(FUSED.attnQkvGrad, { dscores: dScores, probs: pd!, dcontext: dy, qkv: xs! }, attrs) as Tensor];
      },
    };
  });
  return op(qkv) as Tensor2D;
}

/** selfAttention as a composition: heads split out by a transpose and an unstack, products per head, put back by a transpose. */
function composedAttention(
  qkv: Tensor2D,
  mask: Tensor,
  batch: number,
  seq: number,
  heads: number,
  rate: number,
  seed: number | undefined,
): Tensor2D {
  const d = qkv.shape[1] / 3;
  const dh = d / heads;
  const [q, k, v] = splitHeads(qkv, batch, seq, heads);
  const scores = tf.reshape(
    batchMatMulBT(tf.reshape(q, [batch * heads, seq, dh]), tf.reshape(k, [batch * heads, seq, dh])),
    [batch, heads, seq, seq],
  );
  const probs = dropout(maskedSoftmax(scores, mask, 1 / Math.sqrt(dh)), rate, seed);
  const context = batchMatMul(tf.reshape(probs, [batch * heads, seq, seq]), tf.reshape(v, [batch * heads, seq, dh])); // [B*H, T, dh]
  return tf.reshape(tf.transpose(tf.reshape(context, [batch, heads, seq, dh]), [0, 2, 1, 3]), [-1, d]) as Tensor2D;
}

/** q, k and v of qkv [B·T, 3·d], each [B, H, T, dh]. */
function splitHeads(qkv: Tensor2D, batch: number, seq: number, heads: number): Tensor[] {
  const dh = qkv.shape[1] / 3 / heads;
  // [B, T, 3, H, dh] -> [3, B, H, T, dh]
  return tf.unstack(tf.transpose(tf.reshape(qkv, [batch, seq, 3, heads, dh]), [2, 0, 3, 1, 4]));
}

/**
 * selfAttention's context for the first token of each sequence alone, [B, d]: its query against
 * every token's key and value (the last layer under a [CLS] readout). Same arguments as selfAttention.
 */
export function clsSelfAttention(
  qkv: Tensor2D,
  mask: Tensor,
  batch: number,
  seq: number,
  heads: number,
  rate: number,
  seed: number | undefined,
): Tensor2D {
  const d = qkv.shape[1] / 3;
  const dh = d / heads;
  const [q, k, v] = splitHeads(qkv, batch, seq, heads);
  const firstQuery = tf.reshape(tf.slice(q!, [0, 0, 0, 0], [batch, heads, 1, dh]), [batch * heads, 1, dh]);
  const scores = tf.reshape(batchMatMulBT(firstQuery, tf.reshape(k!, [batch * heads, seq, dh])), [
    batch,
    heads,
    1,
    seq,
  ]);
  const probs = dropout(maskedSoftmax(scores, mask, 1 / Math.sqrt(dh)), rate, seed);
  const context = batchMatMul(tf.reshape(probs, [batch * heads, 1, seq]), tf.reshape(v!, [batch * heads, seq, dh])); // [B*H, 1, dh]
  return tf.reshape(context, [batch, d]) as Tensor2D; // [B, H, 1, dh] is [B, d] in place
}

/**
 * Rows of `table` [V, d] at `ids` [N]. The gradient is a scatter-add done on the host: the wasm
 * backend has no UnsortedSegmentSum kernel, so tf.gather's own gradient fails there.
 */
export function embeddingLookup(table: Tensor2D, ids: Tensor): Tensor2D {
  const op = customOp(([t], save) => {
    // ids is usually an intermediate of the forward pass (a reshape of the batch's input ids), which
    // the tidy around the forward pass disposes before backprop; saving keeps a clone for the gradient.
    save([ids]);
    return {
      value: tf.gather(t, ids),
      gradFunc: (dy: Tensor, [savedIds]: Tensor[]) => [scatterAddRows(dy as Tensor2D, savedIds, table.shape[0])],
    };
  });
  return op(table) as Tensor2D;
}

function scatterAddRows(rows: Tensor2D, ids: Tensor, vocabSize: number): Tensor2D {
  const [n, d] = rows.shape;
  const src = rows.dataSync();
  const idx = ids.dataSync();
  const out = new Float32Array(vocabSize * d);
  for (let i = 0; i < n; i++) {
    const dst = idx[i] * d;
    const off = i * d;
    for (let j = 0; j < d; j++) out[dst + j] += src[off + j];
  }
  return tf.tensor2d(out, [vocabSize, d]);
}

/** Stops gradients: the consistency loss treats the other pass's prediction as a fixed target. */
export function detach(x: Tensor): Tensor {
  const op = customOp(([xIn]) => ({ value: tf.clone(xIn), gradFunc: (dy: Tensor) => [tf.zerosLike(dy)] }));
  return op(x);
}

/**
 * Inverted dropout with an explicit seed, so a run's masks are reproducible and resumable. The native
 * kernel draws the same numbers as tf.dropout (its generator, seeded the same way) and gives the
 * same result bit for bit; its gradient is dy times the saved mask, as tf.dropout's.
 */
export function dropout(x: Tensor, rate: number, seed: number | undefined): Tensor {
  if (rate <= 0 || seed === undefined) return x;
  if (!fusedKernelsActive() || x.dtype !== 'float32' || !(rate < 1)) return tf.dropout(x, rate, undefined, seed);
  const attrs = { keep: 1 - rate, ...aleaState(String(seed)) };
  const op = customOp(([xIn], save) => {
    const [y, mask] = runFused(FUSED.dropout, { x: xIn! }, attrs) as Tensor[];
    save([mask!]);
    return { value: y!, gradFunc: (dy: Tensor, [m]: Tensor[]) => [tf.mul(dy, m!)] };
  });
  return op(x);
}
