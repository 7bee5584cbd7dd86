/** Unpack, GatherV2, SplitV, Concat and Slice as block copies on the heap. */
import { tf } from '../../tf';
import type { NativeAddon } from '../addon';
import { FOUR_BYTES, type KernelFunc, offsetOf, type TensorInfo, type WasmBackend } from './shared';

export function unpackKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
  return (args) => {
    const { value } = args.inputs as { value: TensorInfo };
    const rank = value.shape.length;
    let { axis } = (args.attrs ?? {}) as { axis: number };
    if (axis < 0) axis += rank;
    if (!FOUR_BYTES.has(value.dtype) || !(axis >= 0 && axis < rank)) return original(args);
    const backend = args.backend as WasmBackend;
    const num = value.shape[axis]!;
    const outShape = value.shape.filter((_, i) => i !== axis);
    const outer = tf.util.sizeFromShape(value.shape.slice(0, axis));
    const inner = tf.util.sizeFromShape(value.shape.slice(axis + 1));
    const outs: TensorInfo[] = [];
    for (let i = 0; i < num; i++) outs.push(backend.makeOutput(outShape, value.dtype));
    if (outer * inner === 0) return outs;
    const src = offsetOf(backend, value);
    for (let i = 0; i < num; i++) {
      // Output i: `outer` blocks of `inner` elements, every num·inner elements of the input from i·inner.
      addon.copyBlocks(backend.wasm.HEAPF32, src + 4 * i * inner, offsetOf(backend, outs[i]!), outer, inner, num * inner, inner);
    }
    return outs;
  };
}

export function gatherKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
  return (args) => {
    const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = (args.attrs ?? {}) as { axis: number; batchDims?: number };
    const rank = x.shape.length;
    const a = axis < 0 ? axis + rank : axis;
    if (!FOUR_BYTES.has(x.dtype) || indices.dtype !== 'int32' || (batchDims ?? 0) !== 0 || !(a >= 0 && a < rank)) return original(args);
    const backend = args.backend as WasmBackend;
    const dim = x.shape[a]!;
    const outer = tf.util.sizeFromShape(x.shape.slice(0, a));
    const inner = tf.util.sizeFromShape(x.shape.slice(a + 1));
    const n = tf.util.sizeFromShape(indices.shape);
    const out = backend.makeOutput([...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)], x.dtype);
    if (outer * n * inner === 0) return out;
    const bad = addon.gatherRows(backend.wasm.HEAPF32, offsetOf(backend, x), offsetOf(backend, indices), offsetOf(backend, out), outer, dim, inner, n);
    if (bad !== undefined) {
      backend.disposeData(out.dataId);
      throw new Error(`GatherV2: the index value ${bad} is not in [0, ${dim - 1}]`);
    }
    return out;
  };
}

/**
 * SplitV and Concat along any axis as block copies: for `outer` = the product of the dims before the
 * axis and `inner` of those after it, part i is `outer` blocks of size_i · inner elements, every
 * total · inner elements of the whole, from start_i · inner (the fused QKV kernel's concat forward
 * and split backward; the wasm SplitV takes about a millisecond for a [256, 768] split).
 */
export function splitKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { numOrSizeSplits, axis } = (args.attrs ?? {}) as { numOrSizeSplits: number | number[]; axis: number | number[] };
    if (!FOUR_BYTES.has(x.dtype)) return original(args);
    const a = tf.util.parseAxisParam(axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, a);
    const backend = args.backend as WasmBackend;
    const outer = tf.util.sizeFromShape(x.shape.slice(0, a));
    const inner = tf.util.sizeFromShape(x.shape.slice(a + 1));
    const total = x.shape[a]!;
    let start = 0;
    return sizes.map((size) => {
      const out = backend.makeOutput(x.shape.map((d, i) => (i === a ? size : d)), x.dtype);
      if (outer * size * inner > 0) {
        addon.copyBlocks(backend.wasm.HEAPF32, offsetOf(backend, x) + 4 * start * inner, offsetOf(backend, out), outer, size * inner, total * inner, size * inner);
      }
      start += size;
      return out;
    });
  };
}

export function concatKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
  return (args) => {
    const parts = Object.values(args.inputs) as TensorInfo[];
    const { axis } = (args.attrs ?? {}) as { axis: number };
    const first = parts[0];
    if (!first || !parts.every((t) => FOUR_BYTES.has(t.dtype) && t.dtype === first.dtype && t.shape.length === first.shape.length)) return original(args);
    const a = tf.util.parseAxisParam(axis, first.shape)[0]!;
    if (!parts.every((t) => t.shape.every((d, i) => i === a || d === first.shape[i]))) return original(args);
    const backend = args.backend as WasmBackend;
    const total = parts.reduce((n, t) => n + t.shape[a]!, 0);
    const out = backend.makeOutput(first.shape.map((d, i) => (i === a ? total : d)), first.dtype);
    const outer = tf.util.sizeFromShape(first.shape.slice(0, a));
    const inner = tf.util.sizeFromShape(first.shape.slice(a + 1));
    let start = 0;
    for (const t of parts) {
      const size = t.shape[a]!;
      if (outer * size * inner > 0) {
        addon.copyBlocks(backend.wasm.HEAPF32, offsetOf(backend, t), offsetOf(backend, out) + 4 * start * inner, outer, size * inner, size * inner, total * inner);
      }
      start += size;
    }
    return out;
  };
}

/** Most block copies one native Slice makes (one N-API call each) before leaving it to the wasm kernel. */
const SLICE_MAX_CALLS = 1024;

/**
 * Slice as block copies. The dims after the last one not taken whole are contiguous, so each index of
 * the dims before it is one run of size[k] · inner elements; copyBlocks takes the runs along dim
 * k - 1 in one call, and the dims before that are counted here.
 */
export function sliceKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { begin, size } = (args.attrs ?? {}) as { begin: number | number[]; size?: number | number[] };
    if (!FOUR_BYTES.has(x.dtype)) return original(args);
    const [start, extent] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    const rank = x.shape.length;
    let k = rank - 1;
    while (k > 0 && extent[k] === x.shape[k]) k--;
    const outerCalls = tf.util.sizeFromShape(extent.slice(0, Math.max(0, k - 1)));
    if (rank === 0 || outerCalls > SLICE_MAX_CALLS) return original(args);
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput(extent, x.dtype);
    if (tf.util.sizeFromShape(extent) === 0) return out;
    const strides = [...tf.util.computeStrides(x.shape), 1];
    const inner = strides[k]!;
    const block = extent[k]! * inner;
    const count = k > 0 ? extent[k - 1]! : 1;
    const srcStride = k > 0 ? strides[k - 1]! : block;
    const src0 = offsetOf(backend, x) + 4 * start.reduce((sum, b, d) => sum + b * strides[d]!, 0);
    const dst0 = offsetOf(backend, out);
    const idx = new Array<number>(Math.max(0, k - 1)).fill(0);
    for (let call = 0; call < outerCalls; call++) {
      const src = src0 + 4 * idx.reduce((sum, i, d) => sum + i * strides[d]!, 0);
      addon.copyBlocks(backend.wasm.HEAPF32, src, dst0 + 4 * call * count * block, count, block, srcStride, block);
      for (let d = idx.length - 1; d >= 0 && ++idx[d]! === extent[d]; d--) idx[d] = 0;
    }
    return out;
  };
}
