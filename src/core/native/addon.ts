/**
 * Loads PEFT Lab's native CPU kernels (native/peft_native.c, an N-API addon on OpenBLAS built by
 * scripts/build-native.sh). Loading never throws: a missing or broken addon is a reason string,
 * and the engine runs on plain wasm.
 *
 *   PEFT_LAB_NATIVE=0              do not load it (plain wasm kernels)
 *   PEFT_LAB_NATIVE_ADDON=<path>   load this .node file instead of searching for native/build/Release
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const NATIVE_ENV = 'PEFT_LAB_NATIVE';
export const NATIVE_ADDON_ENV = 'PEFT_LAB_NATIVE_ADDON';
export const ADDON_RELATIVE_PATH = path.join('native', 'build', 'Release', 'peft_native.node');

/** What native/peft_native.c exports. Offsets are byte offsets into `heap`'s buffer. */
export interface NativeAddon {
  /**
   * C[i] = op(A[ai]) · op(B[bi]) for i < batch; op(A) is [M, K], op(B) is [K, N], C[i] [M, N], all
   * row-major. ai = aIndex[i], or (aBatches === 1 ? 0 : i) without an index; bi likewise. With a
   * bias, C[i] = op(A[ai]) · op(B[bi]) + bias (each row).
   */
  sgemm(
    heap: Float32Array,
    aOffset: number,
    bOffset: number,
    cOffset: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    batch: number,
    aBatches: number,
    bBatches: number,
    aIndex: Int32Array | null,
    bIndex: Int32Array | null,
    /** N floats added to every row of C (-1 or absent: none). */
    biasOffset?: number,
  ): void;
  /**
   * C[o, r] = alpha · op(A[o, r]) · op(B[o, r]) + beta · C[o, r] for o < outer, r < inner: strided
   * views, each matrix at element offset o · xOuter + r · xInner from its base and row stride ldx.
   */
  sgemmStrided(
    heap: Float32Array,
    aOffset: number,
    bOffset: number,
    cOffset: number,
    m: number,
    n: number,
    k: number,
    transposeA: number,
    transposeB: number,
    lda: number,
    ldb: number,
    ldc: number,
    alpha: number,
    beta: number,
    outer: number,
    aOuter: number,
    bOuter: number,
    cOuter: number,
    inner: number,
    aInner: number,
    bInner: number,
    cInner: number,
  ): void;
  /** y[c] = scale · Σ_r x[r, c] for x [rows, cols] (scale defaults to 1). */
  sumRows(heap: Float32Array, xOffset: number, yOffset: number, rows: number, cols: number, scale?: number): void;
  /** y[r] = scale · Σ_c x[r, c] for x [rows, cols] (scale defaults to 1). */
  sumCols(heap: Float32Array, xOffset: number, yOffset: number, rows: number, cols: number, scale?: number): void;
  /** y = x with its dims permuted (y's dim i is x's dim perm[i]); 4-byte elements of any type. */
  transpose(heap: Float32Array, xOffset: number, yOffset: number, shape: Int32Array, perm: Int32Array): void;
  /**
   * y[o, j, :] = x[o, idx[j], :] for x [outer, dim, inner], int32 idx [n] on the heap, y [outer, n, inner];
   * returns the first index outside [0, dim) (and writes nothing), else undefined.
   */
  gatherRows(heap: Float32Array, xOffset: number, idxOffset: number, yOffset: number, outer: number, dim: number, inner: number, n: number): number | undefined;
  /** `count` blocks of `block` 4-byte elements from src to dst, strides in elements. */
  copyBlocks(heap: Float32Array, srcOffset: number, dstOffset: number, count: number, block: number, srcStride: number, dstStride: number): void;
  /** y = exp(x) (op 0) or erf(x) (op 1) over n float32 elements (vectorised; libmvec accuracy). */
  unary(heap: Float32Array, op: number, xOffset: number, yOffset: number, n: number): void;
  // Fused training kernels (float32, row-major; an optional operand's offset is -1 when absent).
  /** y = gelu(x + b) for x [rows, cols], b [cols] (exact erf). */
  geluBias(heap: Float32Array, xOffset: number, bOffset: number, yOffset: number, rows: number, cols: number): void;
  /** dx = dy · gelu'(x + b). */
  geluBiasGrad(heap: Float32Array, dyOffset: number, xOffset: number, bOffset: number, dxOffset: number, rows: number, cols: number): void;
  /** y = softmax(x · scale + mask[r / group]) over each row r of x [rows, cols]; mask [rows / group, cols]. */
  softmax(heap: Float32Array, xOffset: number, maskOffset: number, yOffset: number, rows: number, cols: number, group: number, scale: number): void;
  /** dx = scale · y · (dy − Σ dy · y) per row. */
  softmaxGrad(heap: Float32Array, dyOffset: number, yOffset: number, dxOffset: number, rows: number, cols: number, scale: number): void;
  /** Softmax cross-entropy of each row of x [rows, cols] against int32 targets [rows]: loss [rows] and logsumexp [rows]; throws for a target outside [0, cols). */
  xent(heap: Float32Array, xOffset: number, targetOffset: number, lossOffset: number, lseOffset: number, rows: number, cols: number): void;
  /** Its gradient: dx = scale · (softmax(x) − onehot(target)) per row, from x and the logsumexp. */
  xentGrad(heap: Float32Array, xOffset: number, lseOffset: number, targetOffset: number, dxOffset: number, rows: number, cols: number, scale: number): void;
  /** LayerNorm over rows of x [rows, cols]: y, and mean [rows] and rstd [rows] for the backward pass. */
  layerNorm(heap: Float32Array, xOffset: number, gOffset: number, bOffset: number, yOffset: number, meanOffset: number, rstdOffset: number, rows: number, cols: number, eps: number): void;
  /** LayerNorm's gradient: dx [rows, cols], dg and db [cols]. */
  layerNormGrad(heap: Float32Array, dyOffset: number, xOffset: number, meanOffset: number, rstdOffset: number, gOffset: number, dxOffset: number, dgOffset: number, dbOffset: number, rows: number, cols: number): void;
  /** tf.dropout bit for bit: mask = floor(r + keep) / keep from seedrandom's Alea state (s0, s1, s2, c), y = x · mask. */
  dropout(heap: Float32Array, xOffset: number, yOffset: number, maskOffset: number, n: number, keep: number, s0: number, s1: number, s2: number, c: number): void;
  /**
   * One AdamW step of many parameters, each p, m and v in place. table: 8 numbers per parameter,
   * (pOffset, gOffset, mOffset, vOffset, n, sqrt(1 - beta2^t), 1 - lr * decay, lr / (1 - beta1^t));
   * every gradient is multiplied by gradScale first (see native/peft_kernels.h).
   */
  adamw(heap: Float32Array, table: Float64Array, beta1: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, epsilon: number, gradScale: number): void;
  /** The sum of squares of the floats of every (offset, n) pair in table, accumulated in double. */
  sumSquares(heap: Float32Array, table: Float64Array): number;
  /** Sets the kernels' thread count (their pool; OpenBLAS runs single-threaded in each part); returns the count in force. */
  setThreads(n: number): number;
  getThreads(): number;
  info(): { config: string; corename: string; parallel: number; threads: number; napiVersion: number };
}

/** Every function the addon must export; an older build without one is rebuilt, not half-used. */
const ADDON_FUNCTIONS = [
  'sgemm',
  'sgemmStrided',
  'sumRows',
  'sumCols',
  'transpose',
  'gatherRows',
  'copyBlocks',
  'unary',
  'geluBias',
  'geluBiasGrad',
  'softmax',
  'softmaxGrad',
  'xent',
  'xentGrad',
  'layerNorm',
  'layerNormGrad',
  'dropout',
  'adamw',
  'sumSquares',
  'setThreads',
  'getThreads',
  'info',
] as const;

export type AddonLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

let cached: AddonLoad | undefined;

/** The addon, loaded once per process (a .node file cannot be unloaded anyway). */
export function loadNativeAddon(): AddonLoad {
  if (process.env[NATIVE_ENV] === '0') return { ok: false, reason: `disabled by ${NATIVE_ENV}=0` };
  if (cached) return cached;
  cached = tryLoad();
  return cached;
}

function tryLoad(): AddonLoad {
  const explicit = process.env[NATIVE_ADDON_ENV];
  const file = explicit || findAddon();
  if (!file) {
    return { ok: false, reason: `${ADDON_RELATIVE_PATH} not built (run: bash scripts/build-native.sh)` };
  }
  try {
    // A computed require keeps bundlers from trying to resolve the .node file at build time.
    const load = require as (id: string) => unknown;
    const addon = load(path.resolve(file)) as Partial<NativeAddon>;
    for (const fn of ADDON_FUNCTIONS) {
      if (typeof addon[fn] !== 'function') return { ok: false, reason: `${file} has no ${fn}(): rebuild it (bash scripts/build-native.sh --force)` };
    }
    return { ok: true, addon: addon as NativeAddon, path: path.resolve(file) };
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    return { ok: false, reason: `${file} did not load: ${text.split('\n')[0]}` };
  }
}

/** native/build/Release/peft_native.node in this file's folder or any folder above (src/core/native/ or dist/). */
function findAddon(): string | undefined {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, ADDON_RELATIVE_PATH);
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}
