/**
 * Building blocks of the encoder, each with a hand-written gradient.
 *
 * Why hand-written: TensorFlow.js's default matmul gradients multiply by transposed operands,
 * which the wasm backend (XNNPACK) runs 10-40x slower than plain 2-D products. Here every product,
 * forward and backward, is a plain product of row-major operands; frozen weights keep both
 * layouts so their backward pass needs no transpose at all. The fused GELU and LayerNorm
 * gradients also save a dozen intermediate tensors per layer.
 */
import { tf, type Tensor, type Tensor2D } from '../tf';

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

/** A frozen linear layer: kernel [in, out] for the forward pass, its transpose [out, in] for dx. */
export interface FrozenDense {
  kernel: Tensor2D;
  kernelT: Tensor2D;
  bias?: Tensor;
}

/** y = x · kernel + bias with x [N, in]; only dx flows back. */
export function frozenDense(x: Tensor2D, w: FrozenDense): Tensor2D {
  const op = customOp(([xIn]) => {
    const y = tf.matMul(xIn as Tensor2D, w.kernel);
    return {
      value: w.bias ? tf.add(y, w.bias) : y,
      gradFunc: (dy: Tensor) => [tf.matMul(dy as Tensor2D, w.kernelT)],
    };
  });
  return op(x) as Tensor2D;
}

/** y = x · kernel + bias with x [N, in], kernel [in, out] trainable; dx, dKernel and dBias flow back. */
export function dense(x: Tensor2D, kernel: Tensor, bias: Tensor): Tensor2D {
  const op = customOp(([xIn, k, b], save) => {
    save([xIn, k]);
    return {
      value: tf.add(tf.matMul(xIn as Tensor2D, k as Tensor2D), b),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [xs, ks] = saved as Tensor2D[];
        const dy2 = dy as Tensor2D;
        return [tf.matMul(dy2, tf.transpose(ks)), tf.matMul(tf.transpose(xs), dy2), tf.sum(dy2, 0)];
      },
    };
  });
  return op(x, kernel, bias) as Tensor2D;
}

/** y = x · kernel without bias, kernel trainable (LoRA's A and B). */
export function matmulTrainable(x: Tensor2D, kernel: Tensor): Tensor2D {
  const op = customOp(([xIn, k], save) => {
    save([xIn, k]);
    return {
      value: tf.matMul(xIn as Tensor2D, k as Tensor2D),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [xs, ks] = saved as Tensor2D[];
        return [tf.matMul(dy as Tensor2D, tf.transpose(ks)), tf.matMul(tf.transpose(xs), dy as Tensor2D)];
      },
    };
  });
  return op(x, kernel) as Tensor2D;
}

/** Batched a · b with a [G, M, K], b [G, K, N]; both gradients via explicit transposes. */
export function batchMatMul(a: Tensor, b: Tensor): Tensor {
  const op = customOp(([aIn, bIn], save) => {
    save([aIn, bIn]);
    return {
      value: tf.matMul(aIn as tf.Tensor3D, bIn as tf.Tensor3D),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [as, bs] = saved as tf.Tensor3D[];
        const d = dy as tf.Tensor3D;
        return [tf.matMul(d, tf.transpose(bs, [0, 2, 1])), tf.matMul(tf.transpose(as, [0, 2, 1]), d)];
      },
    };
  });
  return op(a, b);
}

const SQRT_HALF = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as Hugging Face's `gelu`. */
export function gelu(x: Tensor): Tensor {
  const op = customOp(([xIn], save) => {
    const cdf = tf.mul(0.5, tf.add(1, tf.erf(tf.mul(xIn, SQRT_HALF))));
    save([xIn, cdf]);
    return {
      value: tf.mul(xIn, cdf),
      gradFunc: (dy: Tensor, [xs, c]: Tensor[]) => {
        const pdf = tf.mul(INV_SQRT_2PI, tf.exp(tf.mul(-0.5, tf.square(xs))));
        return [tf.mul(dy, tf.add(c, tf.mul(xs, pdf)))];
      },
    };
  });
  return op(x);
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

/** LayerNorm over the last axis of x [N, d] with gain and bias [d]. */
export function layerNorm(x: Tensor2D, gain: Tensor, bias: Tensor, eps: number): Tensor2D {
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

/** Inverted dropout with an explicit seed, so a run's masks are reproducible and resumable. */
export function dropout(x: Tensor, rate: number, seed: number | undefined): Tensor {
  if (rate <= 0 || seed === undefined) return x;
  return tf.dropout(x, rate, undefined, seed);
}
