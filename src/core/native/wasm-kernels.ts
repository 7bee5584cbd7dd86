/**
 * Installs the native kernels for the TensorFlow.js wasm backend, computed in place on the wasm heap;
 * one file per kernel family in kernels/ (matmul, transpose, reduce, copy, identity, elementwise,
 * norm, softmax, dropout, attention, optimizer), as tfjs-backend-wasm keeps one kernel per file:
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
 * And fused training kernels under names of their own (FUSED in kernels/shared.ts), which only src/core/model/ops.ts
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
import { attnContextKernel, attnProbsGradKernel, attnQkvGradKernel, attnScoresKernel } from './kernels/attention';
import { concatKernel, gatherKernel, sliceKernel, splitKernel, unpackKernel } from './kernels/copy';
import { dropoutKernel } from './kernels/dropout';
import { geluBiasGradKernel, geluBiasKernel, unaryKernel } from './kernels/elementwise';
import { batchMatMulKernel, fusedMatMulKernel } from './kernels/matmul';
import { layerNormGradKernel, layerNormKernel } from './kernels/norm';
import { reduceKernel } from './kernels/reduce';
import { castKernel, identityKernel } from './kernels/identity';
import { BACKEND, FUSED, type KernelConfig, type KernelFunc } from './kernels/shared';
import { softmaxGradKernel, softmaxKernel, xentGradKernel, xentKernel } from './kernels/softmax';
import { transposeKernel } from './kernels/transpose';

export const NATIVE_THREADS_ENV = 'PEFT_LAB_NATIVE_THREADS';
/** PEFT_LAB_NATIVE_FUSED=0: the replacement kernels only, not the fused ones (ops.ts then composes tf ops; for A/B timing). */
export const NATIVE_FUSED_ENV = 'PEFT_LAB_NATIVE_FUSED';

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

/** Counts a call of a kernel that is not registered with tfjs-core (the optimizer's direct calls). */
export function countCall(kernelName: string): void {
  calls.set(kernelName, (calls.get(kernelName) ?? 0) + 1);
}

let installed: { addon: NativeAddon; originals: KernelConfig[]; fused: string[]; status: NativeStatus } | undefined;

/** True when ops.ts may call the fused kernels: they are installed and the wasm backend is the active one. */
export function fusedKernelsActive(): boolean {
  return installed !== undefined && installed.fused.length > 0 && tf.getBackend() === BACKEND;
}

/** The addon while the fused kernels may be called (kernels/optimizer.ts calls it directly), else undefined. */
export function fusedAddon(): NativeAddon | undefined {
  return fusedKernelsActive() ? installed?.addon : undefined;
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
        countCall(kernelName);
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
        countCall(kernelName);
        return inner(args);
      },
    });
  }
  // The optimizer's two are direct calls on the heap (adamwInPlace, sumOfSquares), counted all the same.
  for (const name of [FUSED.adamw, FUSED.sumSquares]) calls.set(name, 0);
  return [...kernels.map(([name]) => name), FUSED.adamw, FUSED.sumSquares];
}
