/** Exp and Erf (vectorised by libmvec), and the fused GELU with its bias and its gradient. */
import { tf } from '../../tf';
import type { NativeAddon } from '../addon';
import { FUSED, type KernelFunc, offsetOf, requireColumns, requireFloat32, rowsCols, type TensorInfo, type WasmBackend } from './shared';

export function unaryKernel(addon: NativeAddon, original: KernelFunc, op: number): KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype !== 'float32') return original(args);
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) addon.unary(backend.wasm.HEAPF32, op, offsetOf(backend, x), offsetOf(backend, out), n);
    return out;
  };
}

export function geluBiasKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { x, b } = args.inputs as { x: TensorInfo; b?: TensorInfo };
    requireFloat32(FUSED.geluBias, x, b);
    const [rows, cols] = rowsCols(x.shape);
    requireColumns(FUSED.geluBias, b, cols);
    const backend = args.backend as WasmBackend;
    const y = backend.makeOutput(x.shape, 'float32');
    if (rows * cols > 0) addon.geluBias(backend.wasm.HEAPF32, offsetOf(backend, x), b ? offsetOf(backend, b) : -1, offsetOf(backend, y), rows, cols);
    return y;
  };
}

export function geluBiasGradKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { dy, x, b } = args.inputs as { dy: TensorInfo; x: TensorInfo; b?: TensorInfo };
    requireFloat32(FUSED.geluBiasGrad, dy, x, b);
    const [rows, cols] = rowsCols(x.shape);
    requireColumns(FUSED.geluBiasGrad, b, cols);
    const backend = args.backend as WasmBackend;
    const dx = backend.makeOutput(x.shape, 'float32');
    if (rows * cols > 0) {
      addon.geluBiasGrad(backend.wasm.HEAPF32, offsetOf(backend, dy), offsetOf(backend, x), b ? offsetOf(backend, b) : -1, offsetOf(backend, dx), rows, cols);
    }
    return dx;
  };
}
