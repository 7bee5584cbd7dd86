/** BatchMatMul and _FusedMatMul (with a bias, no activation) on OpenBLAS sgemm, every layout and batch form. */
import { tf } from '../../tf';
import type { NativeAddon } from '../addon';
import { type KernelFunc, offsetOf, type TensorInfo, type WasmBackend } from './shared';

/**
 * For each flat index of the broadcast batch shape `out`, the flat index into `dims` (the operand's
 * own batch dims, right-aligned against `out`, size-1 dims broadcast).
 */
export function broadcastBatchIndex(dims: number[], out: number[]): Int32Array {
  const total = out.reduce((p, d) => p * d, 1);
  const index = new Int32Array(total);
  const offset = out.length - dims.length;
  // Strides of the operand's dims, 0 where it broadcasts.
  const strides = new Array<number>(out.length).fill(0);
  let stride = 1;
  for (let d = dims.length - 1; d >= 0; d--) {
    strides[d + offset] = dims[d] === 1 ? 0 : stride;
    stride *= dims[d]!;
  }
  const coord = new Array<number>(out.length).fill(0);
  let flat = 0;
  for (let i = 0; i < total; i++) {
    index[i] = flat;
    // Increment the output coordinate (row-major), keeping `flat` in step.
    for (let d = out.length - 1; d >= 0; d--) {
      coord[d]!++;
      flat += strides[d]!;
      if (coord[d]! < out[d]!) break;
      flat -= strides[d]! * out[d]!;
      coord[d] = 0;
    }
  }
  return index;
}

export function batchMatMulKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return original(args);
    return nativeMatMul(addon, args);
  };
}

/**
 * _FusedMatMul (tf.fused.matMul) with a rank-1 bias and no activation, the dense layers' x · W + b:
 * the bias is written into C first and the product added to it, one pass instead of a separate Add.
 * Activations, PReLU weights and other biases go to the original kernel.
 */
export function fusedMatMulKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
  return (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as Record<'a' | 'b' | 'bias' | 'preluActivationWeights', TensorInfo | undefined>;
    const { activation, transposeB } = (args.attrs ?? {}) as { activation?: string; transposeB?: boolean };
    const n = b ? (transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1]) : undefined;
    const plain = (activation ?? 'linear') === 'linear' && !preluActivationWeights && [a, b, bias].every((t) => t?.dtype === 'float32');
    if (!plain || bias!.shape.length !== 1 || bias!.shape[0] !== n) return original(args);
    return nativeMatMul(addon, args, bias);
  };
}

/** BatchMatMul natively (float32 a and b), plus a bias of N floats on every row when given. */
function nativeMatMul(addon: NativeAddon, args: Parameters<KernelFunc>[0], bias?: TensorInfo): TensorInfo {
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
  const backend = args.backend as WasmBackend;
  const transposeA = !!attrs.transposeA;
  const transposeB = !!attrs.transposeB;
  const aRank = a.shape.length;
  const bRank = b.shape.length;
  const m = transposeA ? a.shape[aRank - 1]! : a.shape[aRank - 2]!;
  const k = transposeA ? a.shape[aRank - 2]! : a.shape[aRank - 1]!;
  const kB = transposeB ? b.shape[bRank - 1]! : b.shape[bRank - 2]!;
  const n = transposeB ? b.shape[bRank - 2]! : b.shape[bRank - 1]!;
  if (k !== kB) {
    throw new Error(
      `Error in matMul: inner shapes (${k}) and (${kB}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  const batch = tf.util.sizeFromShape(outer);
  const batchA = tf.util.sizeFromShape(outerA);
  const batchB = tf.util.sizeFromShape(outerB);
  const out = backend.makeOutput([...outer, m, n], 'float32');
  if (batch * m * n === 0) return out;
  const aIndex = batchA === 1 || batchA === batch ? null : broadcastBatchIndex(outerA, outer);
  const bIndex = batchB === 1 || batchB === batch ? null : broadcastBatchIndex(outerB, outer);
  // makeOutput may have grown the heap: take the current view after it.
  addon.sgemm(
    backend.wasm.HEAPF32,
    offsetOf(backend, a),
    offsetOf(backend, b),
    offsetOf(backend, out),
    m,
    n,
    k,
    transposeA,
    transposeB,
    batch,
    batchA,
    batchB,
    aIndex,
    bIndex,
    bias ? offsetOf(backend, bias) : -1,
  );
  return out;
}
