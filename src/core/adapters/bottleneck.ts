import { type Tensor, type Tensor2D, type Variable } from '../tf';
import { activation, biasGelu, dense, matmulTrainable } from '../model/ops';
import type { ParamStore } from '../model/params';
import type { Rng } from '../random';
import type { Activation } from '../config/types';
import { truncatedNormal } from './init';

/** A projection held in engine layout: kernel [in, out], bias [out]. */
export interface Projection {
  kernel: Tensor;
  bias: Tensor;
}

/** A projection whose tensors are trainable variables (not merged copies). */
export interface TrainableProjection extends Projection {
  kernel: Variable;
  bias: Variable;
}

/**
 * Adds a projection `${prefix}.weight` [out, in] (torch layout on disk) and `${prefix}.bias` [out],
 * near-identity initialised: truncated normal weights with a small std, zero bias.
 */
export function addProjection(
  store: ParamStore,
  prefix: string,
  inSize: number,
  outSize: number,
  initStd: number,
  rng: Rng,
): TrainableProjection {
  const weight = store.add(`${prefix}.weight`, [outSize, inSize], truncatedNormal(inSize * outSize, initStd, rng), {
    trainable: true,
    group: 'adapter',
    linear: true,
  });
  const bias = store.add(`${prefix}.bias`, [outSize], new Float32Array(outSize), { trainable: true, group: 'adapter' });
  return { kernel: weight.value, bias: bias.value };
}

/** up(act(down(h))), without the skip connection: the caller decides where the result is added. */
export function bottleneckDelta(h: Tensor2D, down: Projection, up: Projection, act: Activation): Tensor2D {
  // GELU takes the bias in the same kernel; the other activations after a plain dense layer.
  const z =
    act === 'gelu'
      ? biasGelu(matmulTrainable(h, down.kernel), down.bias)
      : activation(act, dense(h, down.kernel, down.bias)); // [N, m]
  return dense(z as Tensor2D, up.kernel, up.bias); // [N, d]
}

/** Houlsby et al.: 2md + d + m parameters per adapter. */
export function bottleneckParams(d: number, m: number): number {
  return 2 * m * d + d + m;
}
