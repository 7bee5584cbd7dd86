/**
 * The optimizer's two native calls, made directly on the heap (they make no tensors, so they are not
 * registered kernels): a whole AdamW step in place, and the global gradient norm's sum of squares.
 */
import { tf } from '../../tf';
import { countCall, fusedAddon } from '../wasm-kernels';
import { FUSED, offsetOf, type TensorInfo, type WasmBackend } from './shared';

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
  const addon = fusedAddon();
  if (!addon) return false;
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
  addon.adamw(backend.wasm.HEAPF32, table, beta1, 1 - beta1, beta2, 1 - beta2, epsilon, gradScale);
  countCall(FUSED.adamw);
  return true;
}

/** Each tensor is the only one on its memory (no reshape, clone or Identity shares it). */
function sharesNothing(backend: WasmBackend, ...tensors: TensorInfo[]): boolean {
  return tensors.every((t) => backend.dataIdMap.get(t.dataId)?.refCount === 1) && new Set(tensors.map((t) => t.dataId)).size === tensors.length;
}

/** The sum of the squares of every element of every tensor, natively in one call; undefined when the caller must use tf ops. */
export function sumOfSquares(tensors: readonly tf.Tensor[]): number | undefined {
  const addon = fusedAddon();
  if (!addon) return undefined;
  const backend = tf.backend() as unknown as WasmBackend;
  if (!tensors.every((t) => t.dtype === 'float32' && backend.dataIdMap.get(t.dataId) !== undefined)) return undefined;
  const table = new Float64Array(tensors.length * 2);
  tensors.forEach((t, i) => table.set([offsetOf(backend, t), t.size], 2 * i));
  countCall(FUSED.sumSquares);
  return addon.sumSquares(backend.wasm.HEAPF32, table);
}
