/** LayerNorm's fused forward pass (y, mean, rstd) and its backward pass (dx, dgain, dbias). */
import type { NativeAddon } from '../addon';
import { FUSED, type KernelFunc, offsetOf, requireColumns, requireFloat32, rowsCols, type TensorInfo, type WasmBackend } from './shared';

/** Outputs y (x's shape), mean [rows] and rstd [rows]. */
export function layerNormKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { x, gain, bias } = args.inputs as { x: TensorInfo; gain: TensorInfo; bias: TensorInfo };
    const { eps } = args.attrs as { eps: number };
    requireFloat32(FUSED.layerNorm, x, gain, bias);
    const [rows, cols] = rowsCols(x.shape);
    requireColumns(FUSED.layerNorm, gain, cols);
    requireColumns(FUSED.layerNorm, bias, cols);
    const backend = args.backend as WasmBackend;
    const outs = [backend.makeOutput(x.shape, 'float32'), backend.makeOutput([rows], 'float32'), backend.makeOutput([rows], 'float32')];
    if (rows * cols > 0) {
      const [y, mean, rstd] = outs.map((t) => offsetOf(backend, t)) as [number, number, number];
      addon.layerNorm(backend.wasm.HEAPF32, offsetOf(backend, x), offsetOf(backend, gain), offsetOf(backend, bias), y, mean, rstd, rows, cols, eps);
    }
    return outs;
  };
}

/** Outputs dx (x's shape), dgain and dbias (gain's shape). */
export function layerNormGradKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { dy, x, mean, rstd, gain } = args.inputs as Record<'dy' | 'x' | 'mean' | 'rstd' | 'gain', TensorInfo>;
    requireFloat32(FUSED.layerNormGrad, dy, x, mean, rstd, gain);
    const [rows, cols] = rowsCols(x.shape);
    requireColumns(FUSED.layerNormGrad, gain, cols);
    const backend = args.backend as WasmBackend;
    const outs = [backend.makeOutput(x.shape, 'float32'), backend.makeOutput(gain.shape, 'float32'), backend.makeOutput(gain.shape, 'float32')];
    if (cols === 0) return outs;
    const [dx, dg, db] = outs.map((t) => offsetOf(backend, t)) as [number, number, number];
    // rows === 0 still runs: dgain and dbias are sums over no rows, zeros.
    const off = (t: TensorInfo) => offsetOf(backend, t);
    addon.layerNormGrad(backend.wasm.HEAPF32, off(dy), off(x), off(mean), off(rstd), off(gain), dx, dg, db, rows, cols);
    return outs;
  };
}
