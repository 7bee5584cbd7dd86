/** The attention's masked, scaled softmax and its gradient; softmax cross-entropy and its gradient. */
import { tf } from '../../tf';
import type { NativeAddon } from '../addon';
import { FUSED, type KernelFunc, offsetOf, requireFloat32, rowsCols, type TensorInfo, type WasmBackend } from './shared';

/**
 * Rows of x per row of the mask when `mask` [M, 1, ..., 1, T] broadcasts against x [M, ..., T]
 * (the attention's key mask [B, 1, 1, T] over scores [B, H, T, T]), else 0: those are the only
 * masks PeftSoftmax takes.
 */
export function softmaxMaskGroup(x: number[], mask: number[]): number {
  const rank = x.length;
  if (rank < 2 || mask.length !== rank || mask[0] !== x[0] || mask[rank - 1] !== x[rank - 1]) return 0;
  if (!mask.slice(1, -1).every((d) => d === 1)) return 0;
  const rows = tf.util.sizeFromShape(x.slice(0, -1));
  return rows === 0 ? 1 : rows / x[0]!; // no rows: nothing to group
}

/** softmax(x · scale + mask) over the last axis; attrs: scale. */
export function softmaxKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { x, mask } = args.inputs as { x: TensorInfo; mask?: TensorInfo };
    const { scale } = args.attrs as { scale: number };
    requireFloat32(FUSED.softmax, x, mask);
    const [rows, cols] = rowsCols(x.shape);
    const group = mask ? softmaxMaskGroup(x.shape, mask.shape) : 1;
    const backend = args.backend as WasmBackend;
    const y = backend.makeOutput(x.shape, 'float32');
    if (rows * cols === 0) return y;
    if (group < 1) throw new Error(`${FUSED.softmax}: mask [${mask?.shape}] does not broadcast as [M, 1, ..., 1, T] against [${x.shape}]`);
    addon.softmax(backend.wasm.HEAPF32, offsetOf(backend, x), mask ? offsetOf(backend, mask) : -1, offsetOf(backend, y), rows, cols, group, scale);
    return y;
  };
}

/** Its gradient from the output y; attrs: scale. */
export function softmaxGradKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { dy, y } = args.inputs as { dy: TensorInfo; y: TensorInfo };
    const { scale } = args.attrs as { scale: number };
    requireFloat32(FUSED.softmaxGrad, dy, y);
    const [rows, cols] = rowsCols(y.shape);
    const backend = args.backend as WasmBackend;
    const dx = backend.makeOutput(y.shape, 'float32');
    if (rows * cols > 0) addon.softmaxGrad(backend.wasm.HEAPF32, offsetOf(backend, dy), offsetOf(backend, y), offsetOf(backend, dx), rows, cols, scale);
    return dx;
  };
}

/** Softmax cross-entropy of logits x [rows, cols] against int32 targets [rows]: [loss [rows], logsumexp [rows]]. */
export function xentKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { x, targets } = args.inputs as { x: TensorInfo; targets: TensorInfo };
    requireFloat32(FUSED.xent, x);
    if (targets.dtype !== 'int32') throw new Error(`${FUSED.xent}: int32 targets only, got ${targets.dtype}`);
    const [rows, cols] = rowsCols(x.shape);
    if (tf.util.sizeFromShape(targets.shape) !== rows) throw new Error(`${FUSED.xent}: expected ${rows} targets, got shape [${targets.shape}]`);
    const backend = args.backend as WasmBackend;
    const loss = backend.makeOutput([rows], 'float32');
    const lse = backend.makeOutput([rows], 'float32');
    if (rows > 0) addon.xent(backend.wasm.HEAPF32, offsetOf(backend, x), offsetOf(backend, targets), offsetOf(backend, loss), offsetOf(backend, lse), rows, cols);
    return [loss, lse];
  };
}

/** Its gradient, scale · (softmax(x) − onehot(targets)), from x and the logsumexp; attrs: scale. */
export function xentGradKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { x, lse, targets } = args.inputs as { x: TensorInfo; lse: TensorInfo; targets: TensorInfo };
    const { scale } = args.attrs as { scale: number };
    requireFloat32(FUSED.xentGrad, x, lse);
    const [rows, cols] = rowsCols(x.shape);
    const backend = args.backend as WasmBackend;
    const dx = backend.makeOutput(x.shape, 'float32');
    if (rows > 0) addon.xentGrad(backend.wasm.HEAPF32, offsetOf(backend, x), offsetOf(backend, lse), offsetOf(backend, targets), offsetOf(backend, dx), rows, cols, scale);
    return dx;
  };
}
