/**
 * How many rows a forward/backward pass can take, decided before the first step from a measurement
 * of the model itself, so that a batch of any size trains in passes that fit (gradient accumulation,
 * the same update) instead of failing mid-run with a bare "memory access out of bounds".
 *
 * Why measured rather than computed from a formula: what a pass keeps for its backward pass depends
 * on the method (AdaMix runs two routed passes, full fine-tuning keeps every layer's inputs, a frozen
 * layer keeps none), on the model family and on which kernels are native. One pass of one row and
 * one of two rows of the longest sequence give the fixed and the per-row parts of a pass's peak (the
 * engine's own count of tensor bytes); what stays between passes (weights, the summed gradients,
 * AdamW's two moments) is added from the parameter counts.
 *
 * Only the wasm backend has a hard ceiling (a 32-bit heap of 4 GiB that never shrinks); the other
 * backends allocate from the machine's memory and train in one pass unless training.microBatchSize
 * says otherwise.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { tf } from '../tf';
import { ConfigError } from '../errors';
import { variableGrads } from './gradients';

/** PEFT_LAB_MEMORY_LIMIT_MIB: plan for at most this much memory (a machine shared with other work). */
export const MEMORY_LIMIT_ENV = 'PEFT_LAB_MEMORY_LIMIT_MIB';

/** tfjs-backend-wasm 4.x is built with a 32-bit heap of at most 4 GiB. */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;
/**
 * The share of the heap the plan fills: the allocator's fragmentation and the kernels' scratch
 * memory (which the engine does not count) take the rest.
 */
export const HEAP_SHARE = 0.8;

export interface MemoryNeeds {
  /** Bytes held now, before the first step (weights and everything else the model made). */
  resident: number;
  /** Bytes of every trainable parameter: AdamW keeps two moments of each, a step's summed gradients one copy. */
  trainable: number;
  /** AdamW moment bytes that exist already (restored from a checkpoint). */
  moments: number;
  /** A pass's peak above `resident`: fixed part and part per row of the longest sequence. */
  passFixed: number;
  passPerRow: number;
}

export interface MemoryPlan {
  /** Rows per pass: at most the batch size. */
  rows: number;
  /** Bytes held between passes (weights, moments, summed gradients). */
  steady: number;
  budget: number;
  perRow: number;
}

/**
 * The rows per pass that fit `limit` bytes (times HEAP_SHARE), or an error naming what to change
 * when not even one row fits. `field` is the config field of the sequence length, e.g. '/data/maxLength'.
 */
export function planRows(
  needs: MemoryNeeds,
  batchSize: number,
  limit: { bytes: number; why: string },
  where: { configFile: string; field: string; tokens: number },
): MemoryPlan {
  const momentsToCome = Math.max(0, 2 * needs.trainable - needs.moments);
  const steady = needs.resident + momentsToCome + needs.trainable;
  const budget = limit.bytes * HEAP_SHARE - steady;
  const perRow = Math.max(1, needs.passPerRow);
  const rows = Math.min(batchSize, Math.floor((budget - needs.passFixed) / perRow));
  if (rows < 1) {
    throw new ConfigError(
      where.configFile,
      where.field,
      `out of memory before training: one sequence of ${where.tokens} tokens needs ${gib(steady + needs.passFixed + perRow)} ` +
        `(weights and model ${gib(needs.resident)}, optimizer state and gradients ${gib(momentsToCome + needs.trainable)}, the pass ${gib(needs.passFixed + perRow)}), ` +
        `and ${limit.why} leaves ${gib(limit.bytes * HEAP_SHARE)} of its ${gib(limit.bytes)} for training. Lower this length, train fewer weights (an adapter method instead of full fine-tuning), or use a smaller model`,
    );
  }
  return { rows, steady, budget, perRow };
}

/** What a plan measured and decided: the started message's `memory`. */
export interface MeasuredPlan extends MemoryPlan {
  limit: { bytes: number; why: string };
  passFixed: number;
}

/**
 * Measures a pass of one and of two rows (`probe(rows)` gives its loss) and plans the rows per pass
 * for `batchSize` within memoryLimit(); `moments` are the optimizer's moment bytes that exist already.
 */
export function planFromProbes(
  probe: (rows: number) => () => tf.Scalar,
  trainable: readonly { value: tf.Variable }[],
  moments: number,
  batchSize: number,
  where: { configFile: string; field: string; tokens: number },
): MeasuredPlan {
  const vars = trainable.map((p) => p.value);
  const passOne = measurePass(probe(1), vars);
  const perRow = Math.max(1, measurePass(probe(2), vars) - passOne);
  const needs: MemoryNeeds = {
    resident: tf.memory().numBytes,
    trainable: 4 * vars.reduce((n, v) => n + v.size, 0),
    moments,
    passFixed: Math.max(0, passOne - perRow),
    passPerRow: perRow,
  };
  const limit = memoryLimit();
  return { ...planRows(needs, batchSize, limit, where), limit, passFixed: needs.passFixed };
}

/** The peak bytes a pass of `lossOf` adds to what is held now: its forward and backward pass, gradients included. */
export function measurePass(lossOf: () => tf.Scalar, vars: tf.Variable[]): number {
  const before = tf.memory().numBytes;
  const peak = peakBytesOf(() => {
    const { value, grads } = variableGrads(lossOf, vars);
    tf.dispose([value, ...Object.values(grads)]);
  });
  return Math.max(0, peak - before);
}

/**
 * The most bytes the engine held while `f` ran. tfjs-core counts bytes as each tensor is tracked;
 * sampling its count there (tf.profile would also time and copy every kernel's output) gives the
 * peak at the cost of one comparison per tensor.
 */
function peakBytesOf(f: () => void): number {
  const engine = tf.engine() as unknown as {
    state: { numBytes: number };
    trackTensor: (...args: unknown[]) => unknown;
  };
  const track = engine.trackTensor;
  let peak = engine.state.numBytes;
  engine.trackTensor = function (this: typeof engine, ...args: unknown[]) {
    const result = track.apply(this, args);
    if (this.state.numBytes > peak) peak = this.state.numBytes;
    return result;
  };
  try {
    f();
  } finally {
    engine.trackTensor = track;
  }
  return peak;
}

/**
 * The bytes a run may plan for: the wasm heap's 4 GiB, or less where the machine has less (its
 * memory, a container's cgroup limit) or PEFT_LAB_MEMORY_LIMIT_MIB asks for less.
 */
export function memoryLimit(read: (file: string) => string | undefined = readText): { bytes: number; why: string } {
  const limits: { bytes: number; why: string }[] = [
    { bytes: WASM_HEAP_BYTES, why: 'the WebAssembly heap' },
    { bytes: os.totalmem(), why: "this machine's memory" },
  ];
  const cgroup = Number(read('/sys/fs/cgroup/memory.max') ?? read('/sys/fs/cgroup/memory/memory.limit_in_bytes'));
  if (Number.isFinite(cgroup) && cgroup > 0) limits.push({ bytes: cgroup, why: "the container's memory limit" });
  const asked = Number(process.env[MEMORY_LIMIT_ENV]);
  if (process.env[MEMORY_LIMIT_ENV] !== undefined && Number.isFinite(asked) && asked > 0)
    limits.push({ bytes: asked * 2 ** 20, why: MEMORY_LIMIT_ENV });
  return limits.reduce((a, b) => (b.bytes < a.bytes ? b : a));
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

export function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}
