/** What every native kernel shares: the wasm backend's heap, tensor offsets on it, and the checks on operands. */
import { tf } from '../../tf';

export const BACKEND = 'wasm';

export type KernelConfig = ReturnType<typeof tf.getKernel>;
export type KernelFunc = KernelConfig['kernelFunc'];
export type TensorInfo = tf.TensorInfo;

/** The parts of tfjs-backend-wasm's BackendWasm the kernels use. */
export interface WasmBackend {
  dataIdMap: { get(dataId: object): { memoryOffset: number; refCount: number } | undefined };
  makeOutput(shape: number[], dtype: string): TensorInfo;
  disposeData(dataId: object): void;
  incRef(dataId: object): void;
  wasm: { HEAPF32: Float32Array };
}

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

/** Elements of these dtypes are 4 bytes, which the block copies assume. */
export const FOUR_BYTES = new Set(['float32', 'int32']);

export function offsetOf(backend: WasmBackend, t: TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (!data) throw new Error('native kernel: operand is not on the wasm backend');
  return data.memoryOffset;
}

/** [rows, cols] of a tensor taken as rows of its last dim (a scalar is one row of one). */
export function rowsCols(shape: number[]): [number, number] {
  const cols = shape.length ? shape[shape.length - 1]! : 1;
  const size = tf.util.sizeFromShape(shape);
  return [cols === 0 ? tf.util.sizeFromShape(shape.slice(0, -1)) : size / cols, cols];
}

export function requireFloat32(name: string, ...tensors: (TensorInfo | undefined)[]): void {
  for (const t of tensors) if (t && t.dtype !== 'float32') throw new Error(`${name}: float32 tensors only, got ${t.dtype}`);
}

/** A per-column operand ([cols]: a bias, a LayerNorm gain) must have exactly cols elements. */
export function requireColumns(name: string, t: TensorInfo | undefined, cols: number): void {
  if (t && tf.util.sizeFromShape(t.shape) !== cols) throw new Error(`${name}: expected ${cols} elements, got shape [${t.shape}]`);
}
