/** Sum and Mean of float32 over leading or trailing axes, accumulated in double. */
import { tf } from '../../tf';
import type { NativeAddon } from '../addon';
import { type KernelFunc, offsetOf, type TensorInfo, type WasmBackend } from './shared';

/** The axes `axis` names (all when undefined or null), normalised, unique and sorted. */
function reductionAxes(axis: number | number[] | undefined | null, rank: number): number[] {
  if (axis === undefined || axis === null) return Array.from({ length: rank }, (_, i) => i);
  const list = (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a));
  return [...new Set(list)].sort((p, q) => p - q);
}

/** The number of leading axes `axis` names (0..k-1, in any order), or -1 if it names others. */
export function leadingAxes(axis: number | number[] | undefined | null, rank: number): number {
  const axes = reductionAxes(axis, rank);
  return axes.every((a, i) => a === i) ? axes.length : -1;
}

/** The number of trailing axes `axis` names (rank-k..rank-1, in any order), or -1 if it names others. */
export function trailingAxes(axis: number | number[] | undefined | null, rank: number): number {
  const axes = reductionAxes(axis, rank);
  const k = axes.length;
  return axes.every((a, i) => a === rank - k + i) ? k : -1;
}

/** Sum (mean = false) or Mean of float32 over leading or trailing axes; anything else goes to the original. */
export function reduceKernel(addon: NativeAddon, original: KernelFunc, mean: boolean): KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { axis, keepDims } = (args.attrs ?? {}) as { axis?: number | number[]; keepDims?: boolean };
    if (x.dtype !== 'float32') return original(args);
    const rank = x.shape.length;
    const lead = leadingAxes(axis, rank);
    const trail = lead > 0 ? -1 : trailingAxes(axis, rank);
    if (lead < 1 && trail < 1) return original(args);
    const reduced = lead > 0 ? x.shape.slice(0, lead) : x.shape.slice(rank - trail);
    const kept = lead > 0 ? x.shape.slice(lead) : x.shape.slice(0, rank - trail);
    const count = tf.util.sizeFromShape(reduced);
    if (count === 0) return original(args); // empty reductions (zeros, or NaN means): leave them to the original
    const ones = reduced.map(() => 1);
    const outShape = keepDims ? (lead > 0 ? [...ones, ...kept] : [...kept, ...ones]) : kept;
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput(outShape, 'float32');
    const others = tf.util.sizeFromShape(kept);
    if (others === 0) return out;
    const scale = mean ? 1 / count : 1;
    if (lead > 0) addon.sumRows(backend.wasm.HEAPF32, offsetOf(backend, x), offsetOf(backend, out), count, others, scale);
    else addon.sumCols(backend.wasm.HEAPF32, offsetOf(backend, x), offsetOf(backend, out), others, count, scale);
    return out;
  };
}
