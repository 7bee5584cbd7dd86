/**
 * Native kernels for the TensorFlow.js wasm backend, computed in place on the wasm heap:
 *
 * - BatchMatMul, every layout (transposeA/B) and batch form (equal batches, a batch of 1, general
 *   broadcasting), on OpenBLAS's sgemm; _FusedMatMul with a bias and no activation (ops.ts's
 *   dense layers, natively) the same way, the bias written into the output before sgemm adds the product;
 * - Transpose, any rank and permutation of 4-byte elements (the wasm kernel's generic path takes
 *   ~200 ms for the attention's rank-5 [B, T, 3, H, dh] permutations, this one a few);
 * - Sum and Mean of float32 over leading axes (the bias and LayerNorm gradients' axis-0 sums, which
 *   the wasm kernel computes by transposing first) or trailing axes (LayerNorm's moments, the softmax
 *   gradient), accumulated in double;
 * - Unpack (tf.unstack; the attention's q, k, v split), GatherV2 with batchDims 0 (the embedding
 *   lookups), Slice (the [CLS] rows, the position embeddings), SplitV and Concat (the fused QKV
 *   kernel's, trained), as block copies; the wasm kernels
 *   slice one output at a time, check indices in JS, or copy the whole input out of the heap first;
 * - Exp and Erf (GELU and its gradient), vectorised by glibc's libmvec (about 10x the wasm kernels).
 *   Add, Multiply and the other exactly rounded elementwise ops are not replaced: the wasm kernels
 *   (XNNPACK) already run them at memory speed, within 10% of a native loop;
 * - Identity shares its input's heap memory (a reference count, as the cpu backend does) instead of
 *   copying it: tfjs-core clones every tensor it saves for the backward pass through Identity, about
 *   300 copies per training step. No wasm kernel writes into its inputs (PeftAdamW below does, only
 *   into memory no other tensor shares), so sharing is safe. Cast to the same dtype (every Multiply
 *   gradient casts its other operand to float32) shares the same way.
 *
 * And fused training kernels under names of their own (FUSED below), which only src/core/model/ops.ts
 * and the optimizer call, through tf.engine().runKernel, when fusedKernelsActive(); each has a plain
 * composition of tf ops next to it for every other case, tested to give the same numbers:
 *
 * - PeftGeluBias, PeftGeluBiasGrad: gelu(x + b) with the exact erf, and its gradient, in one pass each
 *   (the composition takes 5 kernels forward and 7 backward over [N, 4 d] tensors);
 * - PeftLayerNorm, PeftLayerNormGrad: LayerNorm's moments, normalisation, gain and bias in one pass;
 *   the backward pass gives dx, dgain and dbias in one pass (instead of about 15 kernels);
 * - PeftSoftmax, PeftSoftmaxGrad: the attention's softmax(scores / sqrt(dh) + key mask) and its
 *   gradient;
 * - PeftDropout: tf.dropout bit for bit (seedrandom's Alea generator in C instead of JavaScript, the
 *   mask and the product in one pass) and the mask for the backward pass;
 * - PeftAdamW: a whole AdamW step, every parameter and its moments written in place (only when no
 *   other tensor shares their memory) in one call, the clipping factor applied to the gradients on
 *   the way, instead of about 15 kernels and 3 new tensors per parameter; PeftSumSquares: the global
 *   gradient norm's sum of squares over every gradient in one call. Both are direct calls on the
 *   heap (they make no tensors), not registered kernels;
 * - PeftAttnScores, PeftAttnContext, PeftAttnProbsGrad, PeftAttnQkvGrad: the attention's per-head
 *   products q · kᵀ and probs · v and their gradients, read straight from the fused QKV projection
 *   [B·T, 3·d] and written straight into [B·T, d] (strided views, OpenBLAS sgemm per head), instead
 *   of a transpose, an unstack and a transpose forward and a stack and two transposes backward.
 *
 * Installing replaces the wasm backend's own kernels in tfjs-core's registry and registers the fused
 * ones; uninstalling puts the originals back and removes the fused ones. What a native kernel does
 * not handle (other dtypes, other Sum axes, fused activations) goes to the original kernel.
 *
 *   PEFT_LAB_NATIVE=0                 plain wasm kernels
 *   PEFT_LAB_NATIVE_FUSED=0           the replacement kernels without the fused ones
 *   PEFT_LAB_NATIVE_THREADS=<n>       the kernels' threads (default: the physical cores this process
 *                                     may use, within a container's CPU quota; see cores.ts)
 *
 * Every kernel, products included, splits its work over those threads in the addon's own pool
 * (native/peft_pool.c), OpenBLAS single-threaded in each part.
 */
import { tf } from '../tf';
import { loadNativeAddon, NATIVE_ENV, type NativeAddon } from './addon';
import { usableCores } from './cores';

export const NATIVE_THREADS_ENV = 'PEFT_LAB_NATIVE_THREADS';
/** PEFT_LAB_NATIVE_FUSED=0: the replacement kernels only, not the fused ones (ops.ts then composes tf ops; for A/B timing). */
export const NATIVE_FUSED_ENV = 'PEFT_LAB_NATIVE_FUSED';
const BACKEND = 'wasm';

type KernelConfig = ReturnType<typeof tf.getKernel>;
type KernelFunc = KernelConfig['kernelFunc'];
type TensorInfo = tf.TensorInfo;

/** The parts of tfjs-backend-wasm's BackendWasm the kernels use. */
interface WasmBackend {
  dataIdMap: { get(dataId: object): { memoryOffset: number; refCount: number } | undefined };
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
  /** Threads of the native kernels in force. */
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

let installed: { addon: NativeAddon; originals: KernelConfig[]; fused: string[]; status: NativeStatus } | undefined;

/** The fused kernels' names in tfjs-core's registry (wasm backend only). */
export const FUSED = {
  geluBias: 'PeftGeluBias',
  geluBiasGrad: 'PeftGeluBiasGrad',
  layerNorm: 'PeftLayerNorm',
  layerNormGrad: 'PeftLayerNormGrad',
  softmax: 'PeftSoftmax',
  softmaxGrad: 'PeftSoftmaxGrad',
  xent: 'PeftXent',
  xentGrad: 'PeftXentGrad',
  dropout: 'PeftDropout',
  adamw: 'PeftAdamW',
  sumSquares: 'PeftSumSquares',
  attnScores: 'PeftAttnScores',
  attnContext: 'PeftAttnContext',
  attnProbsGrad: 'PeftAttnProbsGrad',
  attnQkvGrad: 'PeftAttnQkvGrad',
} as const;

/** True when ops.ts may call the fused kernels: they are installed and the wasm backend is the active one. */
export function fusedKernelsActive(): boolean {
  return installed !== undefined && installed.fused.length > 0 && tf.getBackend() === BACKEND;
}

/** The thread count asked for (PEFT_LAB_NATIVE_THREADS), else the physical cores this process may use (cores.ts). */
export function defaultThreads(): number {
  const asked = Number(process.env[NATIVE_THREADS_ENV]);
  if (Number.isInteger(asked) && asked >= 1) return asked;
  return usableCores();
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
    { kernelName: '_FusedMatMul', make: (original) => fusedMatMulKernel(addon, original) },
    { kernelName: 'Transpose', make: (original) => transposeKernel(addon, original) },
    { kernelName: 'Sum', make: (original) => reduceKernel(addon, original, false) },
    { kernelName: 'Mean', make: (original) => reduceKernel(addon, original, true) },
    { kernelName: 'Unpack', make: (original) => unpackKernel(addon, original) },
    { kernelName: 'GatherV2', make: (original) => gatherKernel(addon, original) },
    { kernelName: 'Slice', make: (original) => sliceKernel(addon, original) },
    { kernelName: 'SplitV', make: (original) => splitKernel(addon, original) },
    { kernelName: 'Concat', make: (original) => concatKernel(addon, original) },
    { kernelName: 'Identity', make: (original) => identityKernel(original) },
    { kernelName: 'Cast', make: (original) => castKernel(original) },
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
  const fused = process.env[NATIVE_FUSED_ENV] === '0' ? [] : registerFused(addon);
  const status: NativeStatus = {
    active: true,
    kernels: [...originals.map((k) => k.kernelName), ...fused],
    threads: addon.setThreads(threads),
    path: load.path,
    blas: `${info.corename}, ${info.config.trim()}`,
  };
  installed = { addon, originals, fused, status };
  return { ...status };
}

/** Puts the wasm backend's own kernels back (tests compare both paths in one process). */
export function uninstallNativeKernels(): void {
  if (!installed) return;
  for (const original of installed.originals) {
    tf.unregisterKernel(original.kernelName, BACKEND);
    tf.registerKernel(original);
  }
  for (const kernelName of installed.fused) if (tf.getKernel(kernelName, BACKEND)) tf.unregisterKernel(kernelName, BACKEND);
  calls.clear();
  installed = undefined;
}

export function nativeStatus(): NativeStatus {
  return installed ? { ...installed.status } : { active: false, kernels: [], reason: 'not installed' };
}

/** Registers the fused kernels (counted like the replacements); returns their names. */
function registerFused(addon: NativeAddon): string[] {
  const kernels: [string, KernelFunc][] = [
    [FUSED.geluBias, geluBiasKernel(addon)],
    [FUSED.geluBiasGrad, geluBiasGradKernel(addon)],
    [FUSED.layerNorm, layerNormKernel(addon)],
    [FUSED.layerNormGrad, layerNormGradKernel(addon)],
    [FUSED.softmax, softmaxKernel(addon)],
    [FUSED.softmaxGrad, softmaxGradKernel(addon)],
    [FUSED.xent, xentKernel(addon)],
    [FUSED.xentGrad, xentGradKernel(addon)],
    [FUSED.dropout, dropoutKernel(addon)],
    [FUSED.attnScores, attnScoresKernel(addon)],
    [FUSED.attnContext, attnContextKernel(addon)],
    [FUSED.attnProbsGrad, attnProbsGradKernel(addon)],
    [FUSED.attnQkvGrad, attnQkvGradKernel(addon)],
  ];
  for (const [kernelName, inner] of kernels) {
    calls.set(kernelName, 0);
    tf.registerKernel({
      kernelName,
      backendName: BACKEND,
      kernelFunc: (args) => {
        calls.set(kernelName, (calls.get(kernelName) ?? 0) + 1);
        return inner(args);
      },
    });
  }
  // The optimizer's two are direct calls on the heap (adamwInPlace, sumOfSquares), counted all the same.
  for (const name of [FUSED.adamw, FUSED.sumSquares]) calls.set(name, 0);
  return [...kernels.map(([name]) => name), FUSED.adamw, FUSED.sumSquares];
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
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return original(args);
    return nativeMatMul(addon, args);
  };
}

/**
 * _FusedMatMul (tf.fused.matMul) with a rank-1 bias and no activation, the dense layers' x · W + b:
 * the bias is written into C first and the product added to it, one pass instead of a separate Add.
 * Activations, PReLU weights and other biases go to the original kernel.
 */
function fusedMatMulKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
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

/**
 * SplitV and Concat along any axis as block copies: for `outer` = the product of the dims before the
 * axis and `inner` of those after it, part i is `outer` blocks of size_i · inner elements, every
 * total · inner elements of the whole, from start_i · inner (the fused QKV kernel's concat forward
 * and split backward; the wasm SplitV takes about a millisecond for a [256, 768] split).
 */
function splitKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
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

function concatKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
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
function sliceKernel(addon: NativeAddon, original: KernelFunc): KernelFunc {
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

function castKernel(original: KernelFunc): KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { dtype } = (args.attrs ?? {}) as { dtype?: string };
    if (x.dtype !== dtype || x.dtype === 'string') return original(args);
    (args.backend as WasmBackend).incRef(x.dataId);
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

// ---------------------------------------------------------------- fused training kernels

/** [rows, cols] of a tensor taken as rows of its last dim (a scalar is one row of one). */
function rowsCols(shape: number[]): [number, number] {
  const cols = shape.length ? shape[shape.length - 1]! : 1;
  const size = tf.util.sizeFromShape(shape);
  return [cols === 0 ? tf.util.sizeFromShape(shape.slice(0, -1)) : size / cols, cols];
}

function requireFloat32(name: string, ...tensors: (TensorInfo | undefined)[]): void {
  for (const t of tensors) if (t && t.dtype !== 'float32') throw new Error(`${name}: float32 tensors only, got ${t.dtype}`);
}

/** A per-column operand ([cols]: a bias, a LayerNorm gain) must have exactly cols elements. */
function requireColumns(name: string, t: TensorInfo | undefined, cols: number): void {
  if (t && tf.util.sizeFromShape(t.shape) !== cols) throw new Error(`${name}: expected ${cols} elements, got shape [${t.shape}]`);
}

function geluBiasKernel(addon: NativeAddon): KernelFunc {
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

function geluBiasGradKernel(addon: NativeAddon): KernelFunc {
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

/** Outputs y (x's shape), mean [rows] and rstd [rows]. */
function layerNormKernel(addon: NativeAddon): KernelFunc {
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
function layerNormGradKernel(addon: NativeAddon): KernelFunc {
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
function softmaxKernel(addon: NativeAddon): KernelFunc {
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
function softmaxGradKernel(addon: NativeAddon): KernelFunc {
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
function xentKernel(addon: NativeAddon): KernelFunc {
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
function xentGradKernel(addon: NativeAddon): KernelFunc {
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

/** seedrandom's Alea state right after seeding with `seed` (what tf.randomUniform(…, seed) starts from). */
export function aleaState(seed: string): { s0: number; s1: number; s2: number; c: number } {
  // Baagøe's Mash hash, as seedrandom's lib/alea.js writes it (double arithmetic, >>> 0 truncations).
  let n = 0xefc8249d;
  const mash = (data: string): number => {
    for (let i = 0; i < data.length; i++) {
      n += data.charCodeAt(i);
      let h = 0.02519603282416938 * n;
      n = h >>> 0;
      h -= n;
      h *= n;
      n = h >>> 0;
      h -= n;
      n += h * 0x100000000;
    }
    return (n >>> 0) * 2.3283064365386963e-10;
  };
  let s0 = mash(' ');
  let s1 = mash(' ');
  let s2 = mash(' ');
  s0 -= mash(seed);
  if (s0 < 0) s0 += 1;
  s1 -= mash(seed);
  if (s1 < 0) s1 += 1;
  s2 -= mash(seed);
  if (s2 < 0) s2 += 1;
  return { s0, s1, s2, c: 1 };
}

/** Outputs y and the mask (both x's shape); attrs: keep = 1 - rate and the Alea state. */
function dropoutKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { keep, s0, s1, s2, c } = args.attrs as { keep: number; s0: number; s1: number; s2: number; c: number };
    requireFloat32(FUSED.dropout, x);
    const backend = args.backend as WasmBackend;
    const outs = [backend.makeOutput(x.shape, 'float32'), backend.makeOutput(x.shape, 'float32')];
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) addon.dropout(backend.wasm.HEAPF32, offsetOf(backend, x), offsetOf(backend, outs[0]!), offsetOf(backend, outs[1]!), n, keep, s0, s1, s2, c);
    return outs;
  };
}

/** One parameter's AdamW update, its scalars as ops on float32 tensors would take them (see AdamW.update). */
export interface AdamWUpdate {
  param: tf.Tensor;
  grad: tf.Tensor;
  m: tf.Tensor;
  v: tf.Tensor;
  /** 1 - beta2^t */
  correction2: number;
  /** lr * weight decay (0 without decay) */
  decay: number;
  /** lr / (1 - beta1^t) */
  stepSize: number;
}

/** The scalars every parameter of a step shares. */
export interface AdamWShared {
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Every gradient's factor (global-norm clipping; 1 without). */
  gradScale: number;
}

const ADAMW_ROW = 8;

/**
 * Every update of an AdamW step in one native call, each parameter and its moments written in place
 * on the wasm heap: true when done, false when the caller must use its tf ops (fused kernels not
 * active, a tensor not float32 or not on the wasm backend, or memory to update shared with another
 * tensor). All or nothing: nothing is written when it returns false.
 */
export function adamwInPlace(updates: readonly AdamWUpdate[], shared: AdamWShared): boolean {
  if (!fusedKernelsActive() || !installed) return false;
  const backend = tf.backend() as unknown as WasmBackend;
  const usable = (t: tf.Tensor) => t.dtype === 'float32' && backend.dataIdMap.get(t.dataId) !== undefined;
  for (const u of updates) {
    if (![u.param, u.grad, u.m, u.v].every(usable) || !sharesNothing(backend, u.param, u.m, u.v)) return false;
    if ([u.grad, u.m, u.v].some((t) => t.size !== u.param.size)) throw new Error(`${FUSED.adamw}: shapes differ`);
  }
  const table = new Float64Array(updates.length * ADAMW_ROW);
  updates.forEach((u, i) => {
    const off = (t: tf.Tensor) => offsetOf(backend, t);
    table.set([off(u.param), off(u.grad), off(u.m), off(u.v), u.param.size, Math.sqrt(u.correction2), 1 - u.decay, u.stepSize], i * ADAMW_ROW);
  });
  const { beta1, beta2, epsilon, gradScale } = shared;
  installed.addon.adamw(backend.wasm.HEAPF32, table, beta1, 1 - beta1, beta2, 1 - beta2, epsilon, gradScale);
  calls.set(FUSED.adamw, (calls.get(FUSED.adamw) ?? 0) + 1);
  return true;
}

/** Each tensor is the only one on its memory (no reshape, clone or Identity shares it). */
function sharesNothing(backend: WasmBackend, ...tensors: TensorInfo[]): boolean {
  return tensors.every((t) => backend.dataIdMap.get(t.dataId)?.refCount === 1) && new Set(tensors.map((t) => t.dataId)).size === tensors.length;
}

/** The sum of the squares of every element of every tensor, natively in one call; undefined when the caller must use tf ops. */
export function sumOfSquares(tensors: readonly tf.Tensor[]): number | undefined {
  if (!fusedKernelsActive() || !installed) return undefined;
  const backend = tf.backend() as unknown as WasmBackend;
  if (!tensors.every((t) => t.dtype === 'float32' && backend.dataIdMap.get(t.dataId) !== undefined)) return undefined;
  const table = new Float64Array(tensors.length * 2);
  tensors.forEach((t, i) => table.set([offsetOf(backend, t), t.size], 2 * i));
  calls.set(FUSED.sumSquares, (calls.get(FUSED.sumSquares) ?? 0) + 1);
  return installed.addon.sumSquares(backend.wasm.HEAPF32, table);
}

// ---------------------------------------------------------------- attention products

/**
 * The attention's layout: qkv [B·T, 3·d] holds, for token (b, t), q, k and v each as H heads of dh;
 * scores and probs are [B, H, T, T]; the context [B·T, d] holds head h at columns h·dh. Every
 * per-head matrix is a strided view of these, so one sgemmStrided call covers all B·H heads.
 */
interface AttnLayout {
  batch: number;
  heads: number;
  seq: number;
  d: number;
  dh: number;
}

function attnLayout(qkv: TensorInfo, attrs: unknown): AttnLayout {
  const { batch, heads } = attrs as { batch: number; heads: number };
  const [rows, width] = qkv.shape as [number, number];
  if (qkv.shape.length !== 2 || width % (3 * heads) !== 0 || rows % batch !== 0) {
    throw new Error(`attention: qkv [${qkv.shape}] is not [B·T, 3·d] for ${batch} sequences and ${heads} heads`);
  }
  const d = width / 3;
  return { batch, heads, seq: rows / batch, d, dh: d / heads };
}

/** A per-head view: its base (byte offset), row stride, and element strides between sequences and heads. */
interface View {
  offset: number;
  ld: number;
  perSeq: number;
  perHead: number;
}

/** Head views of q (part 0), k (1) or v (2) in qkv, of a [B·T, d] context, and of [B, H, T, T] scores. */
function qkvView(backend: WasmBackend, qkv: TensorInfo, part: number, l: AttnLayout): View {
  return { offset: offsetOf(backend, qkv) + 4 * part * l.d, ld: 3 * l.d, perSeq: l.seq * 3 * l.d, perHead: l.dh };
}
function contextView(backend: WasmBackend, t: TensorInfo, l: AttnLayout): View {
  return { offset: offsetOf(backend, t), ld: l.d, perSeq: l.seq * l.d, perHead: l.dh };
}
function scoresView(backend: WasmBackend, t: TensorInfo, l: AttnLayout): View {
  return { offset: offsetOf(backend, t), ld: l.seq, perSeq: l.heads * l.seq * l.seq, perHead: l.seq * l.seq };
}

/** C = op(A) · op(B) for every head, [m, k] · [k, n] after the transposes. */
function headProducts(addon: NativeAddon, backend: WasmBackend, l: AttnLayout, m: number, n: number, k: number, a: View, ta: boolean, b: View, tb: boolean, c: View): void {
  addon.sgemmStrided(
    backend.wasm.HEAPF32,
    a.offset,
    b.offset,
    c.offset,
    m,
    n,
    k,
    ta ? 1 : 0,
    tb ? 1 : 0,
    a.ld,
    b.ld,
    c.ld,
    1,
    0,
    l.batch,
    a.perSeq,
    b.perSeq,
    c.perSeq,
    l.heads,
    a.perHead,
    b.perHead,
    c.perHead,
  );
}

/** scores [B, H, T, T] = q · kᵀ per head (unscaled: PeftSoftmax scales). */
function attnScoresKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { qkv } = args.inputs as { qkv: TensorInfo };
    requireFloat32(FUSED.attnScores, qkv);
    const l = attnLayout(qkv, args.attrs);
    const backend = args.backend as WasmBackend;
    const scores = backend.makeOutput([l.batch, l.heads, l.seq, l.seq], 'float32');
    if (l.batch * l.seq * l.dh === 0) return scores;
    headProducts(addon, backend, l, l.seq, l.seq, l.dh, qkvView(backend, qkv, 0, l), false, qkvView(backend, qkv, 1, l), true, scoresView(backend, scores, l));
    return scores;
  };
}

/** context [B·T, d] = probs · v per head. */
function attnContextKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { probs, qkv } = args.inputs as { probs: TensorInfo; qkv: TensorInfo };
    requireFloat32(FUSED.attnContext, probs, qkv);
    const l = attnLayout(qkv, args.attrs);
    const backend = args.backend as WasmBackend;
    const context = backend.makeOutput([l.batch * l.seq, l.d], 'float32');
    if (l.batch * l.seq * l.d === 0) return context;
    headProducts(addon, backend, l, l.seq, l.dh, l.seq, scoresView(backend, probs, l), false, qkvView(backend, qkv, 2, l), false, contextView(backend, context, l));
    return context;
  };
}

/** d(probs) [B, H, T, T] = d(context) · vᵀ per head. */
function attnProbsGradKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { dcontext, qkv } = args.inputs as { dcontext: TensorInfo; qkv: TensorInfo };
    requireFloat32(FUSED.attnProbsGrad, dcontext, qkv);
    const l = attnLayout(qkv, args.attrs);
    const backend = args.backend as WasmBackend;
    const dprobs = backend.makeOutput([l.batch, l.heads, l.seq, l.seq], 'float32');
    if (l.batch * l.seq * l.dh === 0) return dprobs;
    headProducts(addon, backend, l, l.seq, l.seq, l.dh, contextView(backend, dcontext, l), false, qkvView(backend, qkv, 2, l), true, scoresView(backend, dprobs, l));
    return dprobs;
  };
}

/**
 * d(qkv) [B·T, 3·d] in one tensor: dq = dscores · k, dk = dscoresᵀ · q, dv = probsᵀ · d(context)
 * per head (dscores with respect to the unscaled scores, probs after dropout).
 */
function attnQkvGradKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { dscores, probs, dcontext, qkv } = args.inputs as Record<'dscores' | 'probs' | 'dcontext' | 'qkv', TensorInfo>;
    requireFloat32(FUSED.attnQkvGrad, dscores, probs, dcontext, qkv);
    const l = attnLayout(qkv, args.attrs);
    const backend = args.backend as WasmBackend;
    const dqkv = backend.makeOutput(qkv.shape, 'float32');
    if (l.batch * l.seq * l.dh === 0) return dqkv;
    const [t, dh] = [l.seq, l.dh];
    const ds = scoresView(backend, dscores, l);
    headProducts(addon, backend, l, t, dh, t, ds, false, qkvView(backend, qkv, 1, l), false, qkvView(backend, dqkv, 0, l));
    headProducts(addon, backend, l, t, dh, t, ds, true, qkvView(backend, qkv, 0, l), false, qkvView(backend, dqkv, 1, l));
    headProducts(addon, backend, l, t, dh, t, scoresView(backend, probs, l), true, contextView(backend, dcontext, l), false, qkvView(backend, dqkv, 2, l));
    return dqkv;
  };
}
