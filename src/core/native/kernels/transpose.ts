/** Transpose of 4-byte elements, any rank and permutation. */
import { tf } from '../../tf';
import type { NativeAddon } from '../addon';
import { type KernelFunc, offsetOf, type TensorInfo, type WasmBackend } from './shared';

export function transposeKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { perm } = (args.attrs ?? {}) as { perm: number[] };
    if ((x.dtype !== 'float32' && x.dtype !== 'int32') || !Array.isArray(perm) || perm.length !== x.shape.length) return original(args);
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput(
      perm.map((p) => x.shape[p]!),
      x.dtype,
    );
    if (tf.util.sizeFromShape(x.shape) === 0) return out;
    addon.transpose(backend.wasm.HEAPF32, offsetOf(backend, x), offsetOf(backend, out), Int32Array.from(x.shape), Int32Array.from(perm));
    return out;
  };
}
