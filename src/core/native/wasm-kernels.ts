/**
 * Native kernels for the TensorFlow.js wasm backend, computed in place on the wasm heap:
 *
 * - BatchMatMul, every layout (transposeA/B) and batch form (equal batches, a batch of 1, general
 *   broadcasting), on OpenBLAS's sgemm;
 * - Transpose, any rank and permutation of 4-byte elements (the wasm kernel's generic path takes
 *   ~200 ms for the attention's rank-5 [B, T, 3, H, dh] permutations, this one a few);
 * - Sum and Mean of float32 over leading axes (the bias and LayerNorm gradients' axis-0 sums, which
 *   the wasm kernel computes by transposing first) or trailing axes (LayerNorm's moments, the softmax
 *   gradient), accumulated in double;
 * - Unpack (tf.unstack; the attention's q, k, v split) and GatherV2 with batchDims 0 (the embedding
 *   lookups), as block copies; the wasm kernels slice one output at a time and check indices in JS;
 * - Exp and Erf (GELU and its gradient), vectorised by glibc's libmvec (about 10x the wasm kernels).
 *   Add, Multiply and the other exactly rounded elementwise ops are not replaced: the wasm kernels
 *   (XNNPACK) already run them at memory speed, within 10% of a native loop;
 * - Identity shares its input's heap memory (a reference count, as the cpu backend does) instead of
 *   copying it: tfjs-core clones every tensor it saves for the backward pass through Identity, about
 *   300 copies per training step. No wasm kernel writes into its inputs, so sharing is safe.
 *
 * Installing replaces the wasm backend's own kernels in tfjs-core's registry; uninstalling puts the
 * originals back. What a native kernel does not handle (other dtypes, other Sum axes) goes to the
 * original kernel. The forward pass never calls _FusedMatMul (ops.ts multiplies with tf.matMul and
 * adds biases separately), so it is not replaced.
 *
 *   PEFT_LAB_NATIVE=0                 plain wasm kernels
 *   PEFT_LAB_NATIVE_THREADS=<n>       OpenBLAS threads (default: 2, at most the CPU count)
 */
import * as os from 'node:os';
import { tf } from '../tf';
import { loadNativeAddon, NATIVE_ENV, type NativeAddon } from './addon';

export const NATIVE_THREADS_ENV = 'PEFT_LAB_NATIVE_THREADS';
const BACKEND = 'wasm';

type KernelConfig = ReturnType<typeof tf.getKernel>;
type KernelFunc = KernelConfig['kernelFunc'];
type TensorInfo = tf.TensorInfo;

/** The parts of tfjs-backend-wasm's BackendWasm the kernels use. */
interface WasmBackend {
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: string): TensorInfo;
  disposeData(dataId: object): void;
  incRef(dataId: object): void;
  wasm: { HEAPF32: Float32Array };
}

export interface NativeStatus {
  /** True while the native kernels are registered for the wasm backend. */
  active: boolean;
  /** Kernels replaced, e.g. ['BatchMatMul']. */
  kernels: string[];
  /** OpenBLAS threads in force. */
  threads?: number;
  /** The .node file loaded. */
  path?: string;
  /** OpenBLAS's build and CPU kernel, e.g. "SkylakeX, OpenBLAS 0.3.21 ...". */
  blas?: string;
  /** Why the native kernels are not active. */
  reason?: string;
}

/** Calls of each replaced kernel since it was installed (tests check the native path really ran). */
const calls = new Map<string, number>();

export function nativeCallCounts(): Record<string, number> {
  return Object.fromEntries(calls);
}

let installed: { addon: NativeAddon; originals: KernelConfig[]; status: NativeStatus } | undefined;

/** The thread count asked for (PEFT_LAB_NATIVE_THREADS), else 2 capped at the CPU count. */
export function defaultThreads(): number {
  const asked = Number(process.env[NATIVE_THREADS_ENV]);
  if (Number.isInteger(asked) && asked >= 1) return asked;
  return Math.max(1, Math.min(2, os.cpus().length || 1));
}

/**
 * Registers the native kernels for the wasm backend (idempotent; a second call only changes the
 * thread count). Never throws: when the addon does not load the status says why and nothing changes.
 */
export function installNativeKernels(options: { threads?: number } = {}): NativeStatus {
  if (process.env[NATIVE_ENV] === '0') {
    uninstallNativeKernels();
    return { active: false, kernels: [], reason: `disabled by ${NATIVE_ENV}=0` };
  }
  const threads = options.threads ?? defaultThreads();
  if (installed) {
    installed.status.threads = installed.addon.setThreads(threads);
    return { ...installed.status };
  }
  const load = loadNativeAddon();
  if (!load.ok) return { active: false, kernels: [], reason: load.reason };
  const { addon } = load;
  let info: ReturnType<NativeAddon['info']>;
  try {
    info = addon.info();
  } catch (err) {
    return { active: false, kernels: [], reason: `addon info() failed: ${err instanceof Error ? err.message : String(err)}` };
  }
  const replacements: { kernelName: string; make: (original: KernelFunc) => KernelFunc }[] = [
    { kernelName: 'BatchMatMul', make: (original) => batchMatMulKernel(addon, original) },
    { kernelName: 'Transpose', make: (original) => transposeKernel(addon, original) },
    { kernelName: 'Sum', make: (original) => reduceKernel(addon, original, false) },
    { kernelName: 'Mean', make: (original) => reduceKernel(addon, original, true) },
    { kernelName: 'Unpack', make: (original) => unpackKernel(addon, original) },
    { kernelName: 'GatherV2', make: (original) => gatherKernel(addon, original) },
    { kernelName: 'Identity', make: (original) => identityKernel(original) },
    { kernelName: 'Exp', make: (original) => unaryKernel(addon, original, 0) },
    { kernelName: 'Erf', make: (original) => unaryKernel(addon, original, 1) },
  ];
  const originals: KernelConfig[] = [];
  for (const { kernelName, make } of replacements) {
    const original = tf.getKernel(kernelName, BACKEND);
    if (!original) continue; // the wasm backend is not registered: nothing to replace
    originals.push(original);
    tf.unregisterKernel(kernelName, BACKEND);
    // The original's setup and dispose stay: the fallback to the original kernel needs its setup,
    // which runs when the wasm backend initialises (already done if it is active now).
    const inner = make(original.kernelFunc);
    calls.set(kernelName, 0);
    tf.registerKernel({
      kernelName,
      backendName: BACKEND,
      setupFunc: original.setupFunc,
      disposeFunc: original.disposeFunc,
      kernelFunc: (args) => {
        calls.set(kernelName, (calls.get(kernelName) ?? 0) + 1);
        return inner(args);
      },
    });
  }
  if (originals.length === 0) return { active: false, kernels: [], reason: 'the wasm backend has no kernels registered' };
  const status: NativeStatus = {
    active: true,
    kernels: originals.map((k) => k.kernelName),
    threads: addon.setThreads(threads),
    path: load.path,
    blas: `${info.corename}, ${info.config.trim()}`,
  };
  installed = { addon, originals, status };
  return { ...status };
}

/** Puts the wasm backend's own kernels back (tests compare both paths in one process). */
export function uninstallNativeKernels(): void {
  if (!installed) return;
  for (const original of installed.originals) {
    tf.unregisterKernel(original.kernelName, BACKEND);
    tf.registerKernel(original);
  }
  calls.clear();
  installed = undefined;
}

export function nativeStatus(): NativeStatus {
  return installed ? { ...installed.status } : { active: false, kernels: [], reason: 'not installed' };
}

// ---------------------------------------------------------------- BatchMatMul

function offsetOf(backend: WasmBackend, t: TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (!data) throw new Error('native BatchMatMul: operand is not on the wasm backend');
  return data.memoryOffset;
}

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

function batchMatMulKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return original(args);
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
    );
    return out;
  };
}

// ---------------------------------------------------------------- Transpose

function transposeKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
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

// ---------------------------------------------------------------- Sum

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
function reduceKernel(addon: NativeAddon, original: KernelFunc, mean: boolean): KernelFunc {
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

// ---------------------------------------------------------------- Unpack and GatherV2

const FOUR_BYTES = new Set(['float32', 'int32']);

function unpackKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
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

function gatherKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
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

// ---------------------------------------------------------------- Identity

function identityKernel(original: KernelFunc): KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype === 'string') return original(args);
    const backend = args.backend as WasmBackend;
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

// ---------------------------------------------------------------- elementwise

function unaryKernel(addon: NativeAddon, original: KernelFunc, op: number): KernelFunc {
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
