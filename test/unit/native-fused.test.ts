/**
 * The fused native training kernels (src/core/native/kernels/, FUSED in kernels/shared.ts, native/peft_math.c and
 * native/peft_kernels.c) against the plain compositions of tf ops that src/core/model/ops.ts and the
 * optimizer use without them, on the wasm backend: forward values and every gradient, odd and
 * zero-size shapes. Each case runs twice in this process, the native kernels uninstalled (the
 * composition) and installed, and the native kernel must really have run.
 *
 * Skipped (and says so) without a built addon; PEFT_LAB_NATIVE_REQUIRED=1 makes that a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/core/tf';
import { loadNativeAddon, NATIVE_ENV } from '../../src/core/native/addon';
import {
  fusedKernelsActive,
  installNativeKernels,
  NATIVE_FUSED_ENV,
  nativeCallCounts,
  uninstallNativeKernels,
} from '../../src/core/native/wasm-kernels';
import { aleaState } from '../../src/core/native/kernels/dropout';
import { FUSED } from '../../src/core/native/kernels/shared';
import { softmaxMaskGroup } from '../../src/core/native/kernels/softmax';
import {
  batchMatMul,
  batchMatMulBT,
  biasGelu,
  dense,
  dropout,
  gelu,
  layerNorm,
  maskedSoftmax,
  matmulTrainable,
  selfAttention,
  softmaxCrossEntropy,
  tiedDense,
} from '../../src/core/model/ops';
import { AdamW, clipScale } from '../../src/core/train/optimizer';
import type { Param } from '../../src/core/model/params';
import { Rng } from '../../src/core/random';

const load = loadNativeAddon();
const skip = load.ok ? false : `native addon not available (${load.reason})`;
if (skip && process.env.PEFT_LAB_NATIVE_REQUIRED === '1') throw new Error(`PEFT_LAB_NATIVE_REQUIRED=1 but ${skip}`);
if (skip) process.stderr.write(`native-fused.test: skipping: ${skip}\n`);

const saved = { native: process.env[NATIVE_ENV], backend: process.env.PEFT_LAB_BACKEND };

before(async () => {
  delete process.env.PEFT_LAB_BACKEND;
  delete process.env[NATIVE_ENV];
  await tf.setBackend('wasm');
  await tf.ready();
});

after(() => {
  uninstallNativeKernels();
  if (saved.native === undefined) delete process.env[NATIVE_ENV];
  else process.env[NATIVE_ENV] = saved.native;
  if (saved.backend !== undefined) process.env.PEFT_LAB_BACKEND = saved.backend;
});

const rng = new Rng(20261125);

function random(shape: number[], scale = 1): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale),
    shape,
  );
}

type Values = { shape: number[]; data: Float32Array }[];

/**
 * Runs `f` with the plain composition (native kernels uninstalled), then natively; returns every
 * tensor's shape and values from both, and checks that the native run called `kernel`.
 */
function both(kernel: string | null, f: () => Tensor[]): { plain: Values; native: Values } {
  const run = (): Values => {
    const outs = f();
    const values = outs.map((t) => ({ shape: t.shape, data: t.dataSync() as Float32Array }));
    tf.dispose(outs);
    return values;
  };
  uninstallNativeKernels();
  assert.equal(fusedKernelsActive(), false);
  const plain = run();
  installNativeKernels();
  assert.equal(fusedKernelsActive(), true);
  const before = kernel ? (nativeCallCounts()[kernel] ?? 0) : 0;
  const native = run();
  if (kernel) assert.ok((nativeCallCounts()[kernel] ?? 0) > before, `the native ${kernel} ran`);
  return { plain, native };
}

/** Every tensor within `tol` relative to 1 + |expected| (bit for bit with tol 0). */
function assertSame(r: { plain: Values; native: Values }, what: string, tol = 1e-5): void {
  assert.equal(r.native.length, r.plain.length, `${what}: number of tensors`);
  r.plain.forEach((p, k) => {
    const q = r.native[k]!;
    assert.deepEqual(q.shape, p.shape, `${what} #${k}: shape`);
    let worst = 0;
    let at = -1;
    for (let i = 0; i < p.data.length; i++) {
      const err = Math.abs(q.data[i]! - p.data[i]!) / (1 + Math.abs(p.data[i]!));
      if (!(err <= worst)) [worst, at] = [err, i];
    }
    assert.ok(
      worst <= tol,
      `${what} #${k}: relative difference ${worst} at ${at} (${q.data[at]} native vs ${p.data[at]} plain) exceeds ${tol}`,
    );
  });
}

/** The value of f(...inputs) and its gradients with respect to every input, for a random upstream gradient. */
function valueAndGrads(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], seed: number): Tensor[] {
  const y = tf.tidy(() => f(...inputs));
  const w = tf.tidy(() => {
    const r = new Rng(seed);
    return tf.tensor(
      Float32Array.from({ length: y.size }, () => r.next() * 2 - 1),
      y.shape,
    );
  });
  const grads = tf.grads((...xs: Tensor[]) => tf.sum(tf.mul(f(...xs), w)))(inputs);
  w.dispose();
  return [y, ...grads];
}

/** Odd and even sizes, small enough to keep the suite fast. */
const SHAPES: [number, number][] = [
  [1, 1],
  [1, 7],
  [3, 5],
  [17, 33],
  [64, 65],
  [128, 256],
];

describe('fused GELU (with its bias) equals the composition', { skip }, () => {
  test('forward and gradients: no bias, a trainable bias, a frozen bias', () => {
    for (const [rows, cols] of SHAPES) {
      const x = random([rows, cols], 4);
      const b = random([cols]);
      assertSame(
        both(FUSED.geluBias, () => valueAndGrads((t) => gelu(t), [x], 1)),
        `gelu [${rows}, ${cols}]`,
      );
      assertSame(
        both(FUSED.geluBiasGrad, () => valueAndGrads((t, u) => biasGelu(t, u), [x, b], 2)),
        `gelu(x + b) [${rows}, ${cols}]`,
      );
      assertSame(
        both(FUSED.geluBiasGrad, () => valueAndGrads((t) => biasGelu(t, b, false), [x], 3)),
        `gelu(x + frozen b) [${rows}, ${cols}]`,
      );
      tf.dispose([x, b]);
    }
  });

  test('the range where erf saturates, and the bias gradient of the model shape', () => {
    const x = tf.mul(random([4096, 8]), 12) as Tensor; // [-12, 12]
    const b = random([8]);
    assertSame(
      both(FUSED.geluBias, () => valueAndGrads((t, u) => biasGelu(t, u), [x, b], 4)),
      'gelu on [-12, 12]',
    );
    tf.dispose([x, b]);
  });

  test('zero-size tensors (and the bias gradient of no rows is zeros on both paths)', () => {
    for (const shape of [
      [0, 5],
      [5, 0],
    ]) {
      const x = random(shape);
      const b = random([shape[1]!]);
      const r = both(FUSED.geluBias, () => valueAndGrads((t, u) => biasGelu(t, u), [x, b], 5));
      assertSame(r, `gelu [${shape}]`, 0);
      assert.deepEqual(r.native[2]!.data, new Float32Array(shape[1]!), 'db of no rows');
      tf.dispose([x, b]);
    }
  });

  test('a bias of the wrong size is refused by the kernel', () => {
    installNativeKernels();
    assert.throws(
      () => tf.engine().runKernel(FUSED.geluBias, { x: tf.ones([2, 3]), b: tf.ones([2]) }, {}),
      /expected 3 elements/,
    );
  });
});

describe('fused LayerNorm equals the composition', { skip }, () => {
  test('forward, dx, dgain and dbias on odd shapes', () => {
    for (const [rows, cols] of [...SHAPES, [4096, 256] as [number, number]]) {
      // An offset and a spread, as the residual sums have.
      const x = tf.tidy(() => tf.add(random([rows, cols], 3), 0.5));
      const g = tf.tidy(() => tf.add(random([cols], 0.2), 1));
      const b = random([cols], 0.1);
      const r = both(FUSED.layerNormGrad, () =>
        valueAndGrads((t, u, v) => layerNorm(t as tf.Tensor2D, u, v, 1e-12), [x, g, b], 6),
      );
      // dgain and dbias sum over up to 4,096 rows: both paths accumulate in double.
      assertSame(r, `layerNorm [${rows}, ${cols}]`, 2e-5);
      tf.dispose([x, g, b]);
    }
  });

  test('eps 1e-5 and a constant row (variance 0)', () => {
    const x = tf.concat([tf.fill([1, 9], 2.5), random([4, 9])]);
    const g = random([9]);
    const b = random([9]);
    assertSame(
      both(FUSED.layerNorm, () => valueAndGrads((t, u, v) => layerNorm(t as tf.Tensor2D, u, v, 1e-5), [x, g, b], 7)),
      'layerNorm eps 1e-5',
    );
    tf.dispose([x, g, b]);
  });

  test('zero rows: an empty output and zero gain and bias gradients', () => {
    const x = random([0, 6]);
    const g = random([6]);
    const b = random([6]);
    const r = both(FUSED.layerNormGrad, () =>
      valueAndGrads((t, u, v) => layerNorm(t as tf.Tensor2D, u, v, 1e-12), [x, g, b], 8),
    );
    // Only y and dx are compared: the composition's dgain and dbias come from the wasm backend's Sum
    // over an empty axis, which returns uninitialised memory instead of zeros.
    assertSame({ plain: r.plain.slice(0, 2), native: r.native.slice(0, 2) }, 'layerNorm [0, 6]', 0);
    assert.deepEqual(Array.from(r.native[2]!.data), [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(Array.from(r.native[3]!.data), [0, 0, 0, 0, 0, 0]);
    tf.dispose([x, g, b]);
  });
});

describe('fused masked softmax equals the composition', { skip }, () => {
  /** The attention's key mask: 0 for tokens, -10000 for padding, [B, 1, 1, T]. */
  function keyMask(batch: number, seq: number): Tensor {
    const m = Float32Array.from({ length: batch * seq }, (_, i) => (i % seq >= seq - (i % 3) ? -10000 : 0));
    return tf.tensor(m, [batch, 1, 1, seq]);
  }

  test('forward and gradient over [B, H, T, T] scores', () => {
    for (const [batch, heads, seq] of [
      [1, 1, 1],
      [2, 3, 5],
      [3, 2, 17],
      [4, 4, 64],
      [2, 4, 128],
    ]) {
      const scores = random([batch, heads, seq, seq], 8);
      const mask = keyMask(batch, seq);
      assertSame(
        both(FUSED.softmaxGrad, () => valueAndGrads((s) => maskedSoftmax(s, mask), [scores], 9)),
        `softmax [${batch}, ${heads}, ${seq}, ${seq}]`,
      );
      const scale = 1 / Math.sqrt(seq);
      assertSame(
        both(FUSED.softmaxGrad, () => valueAndGrads((s) => maskedSoftmax(s, mask, scale), [scores], 9)),
        `softmax scaled [${batch}, ${heads}, ${seq}, ${seq}]`,
      );
      tf.dispose([scores, mask]);
    }
  });

  test('zero-size scores', () => {
    for (const shape of [
      [0, 2, 3, 3],
      [2, 0, 3, 3],
    ]) {
      const scores = random(shape);
      const mask = tf.zeros([shape[0]!, 1, 1, 3]);
      const r = both(FUSED.softmax, () => valueAndGrads((s) => maskedSoftmax(s, mask), [scores], 10));
      assertSame(r, `softmax [${shape}]`, 0);
      tf.dispose([scores, mask]);
    }
  });

  test('softmaxMaskGroup: only [M, 1, ..., 1, T] masks against [M, ..., T]', () => {
    assert.equal(softmaxMaskGroup([2, 4, 8, 8], [2, 1, 1, 8]), 32);
    assert.equal(softmaxMaskGroup([2, 8], [2, 8]), 1);
    assert.equal(softmaxMaskGroup([2, 4, 8, 8], [1, 1, 1, 8]), 0);
    assert.equal(softmaxMaskGroup([2, 4, 8, 8], [2, 4, 1, 8]), 0);
    assert.equal(softmaxMaskGroup([2, 4, 8, 8], [2, 1, 8]), 0);
    assert.equal(softmaxMaskGroup([0, 4, 8, 8], [0, 1, 1, 8]), 1, 'empty: nothing to group');
  });

  test('any other mask takes the composition and still agrees', () => {
    const scores = random([2, 3, 4, 4]);
    const mask = random([1, 3, 1, 4]);
    const r = both(null, () => valueAndGrads((s) => maskedSoftmax(s, mask), [scores], 11));
    assertSame(r, 'softmax, other mask');
    const before = nativeCallCounts()[FUSED.softmax] ?? 0;
    maskedSoftmax(scores, mask).dispose();
    assert.equal(nativeCallCounts()[FUSED.softmax] ?? 0, before, 'not the fused kernel');
    tf.dispose([scores, mask]);
  });
});

describe('native self-attention (per-head products in place) equals the composition', { skip }, () => {
  test('context and d(qkv), with and without dropout, odd sizes', () => {
    for (const [batch, seq, heads, dh, rate] of [
      [1, 1, 1, 1, 0],
      [2, 5, 3, 4, 0],
      [3, 17, 2, 7, 0.1],
      [2, 33, 4, 16, 0.5],
      [4, 128, 4, 64, 0.1],
    ]) {
      const qkv = random([batch * seq, 3 * heads * dh], 2);
      const mask = tf.tensor(
        Float32Array.from({ length: batch * seq }, (_, i) => (i % seq > seq - 2 && seq > 1 ? -10000 : 0)),
        [batch, 1, 1, seq],
      );
      const f = (x: Tensor) => selfAttention(x as tf.Tensor2D, mask, batch, seq, heads, rate, 1234);
      assertSame(
        both(FUSED.attnQkvGrad, () => valueAndGrads(f, [qkv], 18)),
        `attention B ${batch} T ${seq} H ${heads} dh ${dh} dropout ${rate}`,
        1e-4,
      );
      tf.dispose([qkv, mask]);
    }
  });

  test('no dropout seed (evaluation): no dropout on either path', () => {
    const qkv = random([6, 12], 2);
    const mask = tf.zeros([2, 1, 1, 3]);
    assertSame(
      both(FUSED.attnScores, () =>
        valueAndGrads((x) => selfAttention(x as tf.Tensor2D, mask, 2, 3, 2, 0.1, undefined), [qkv], 19),
      ),
      'attention, no seed',
      1e-4,
    );
    tf.dispose([qkv, mask]);
  });
});

describe('fused dropout equals tf.dropout bit for bit', { skip }, () => {
  test('values and gradient, for several seeds, rates and odd sizes', () => {
    for (const [shape, rate, seed] of [
      [[1], 0.1, 0],
      [[7, 3], 0.1, 1],
      [[33, 17], 0.5, 4294967295],
      [[2, 4, 16, 16], 0.1, 123456789],
      [[4096, 256], 0.1, 2718281828],
      [[1000], 0.9, 42],
    ] as [number[], number, number][]) {
      const x = random(shape);
      assertSame(
        both(FUSED.dropout, () => valueAndGrads((t) => dropout(t, rate, seed), [x], 12)),
        `dropout ${rate} seed ${seed} [${shape}]`,
        0,
      );
      x.dispose();
    }
  });

  test('zero-size input', () => {
    const x = random([0, 4]);
    assertSame(
      both(FUSED.dropout, () => valueAndGrads((t) => dropout(t, 0.1, 5), [x], 13)),
      'dropout [0, 4]',
      0,
    );
    x.dispose();
  });

  test('the kernel refuses a state the generator cannot reach (it runs Alea in 32-bit integers)', () => {
    installNativeKernels();
    const x = tf.ones([4]);
    const attrs = { keep: 0.9, ...aleaState('7') };
    for (const bad of [{ s0: 0.1 }, { s1: 1 }, { s2: -0.5 }, { c: 0.5 }, { c: 2091640 }]) {
      assert.throws(
        () => tf.engine().runKernel(FUSED.dropout, { x }, { ...attrs, ...bad }),
        /not an Alea state/,
        JSON.stringify(bad),
      );
    }
    x.dispose();
  });

  test('aleaState starts seedrandom.alea where tf.randomUniform does', () => {
    const alea = require('seedrandom').alea as (
      seed: string,
      opts: { state: true },
    ) => { state(): { s0: number; s1: number; s2: number; c: number } };
    for (const seed of ['0', '1', '4294967295', 'a seed', ''])
      assert.deepEqual(aleaState(seed), alea(seed, { state: true }).state(), seed);
  });
});

describe('fused AdamW equals the tf ops update', { skip }, () => {
  let counter = 0;
  function param(name: string, values: Float32Array, shape: number[]): Param {
    return {
      name,
      value: tf.variable(tf.tensor(values, shape), true, `${name}#fused-${counter++}`),
      trainable: true,
      group: 'adapter',
      linear: false,
    };
  }

  /** Three steps of AdamW over a weight (decayed) and a bias (not decayed); the final weights and moments. */
  function threeSteps(): Tensor[] {
    const r = new Rng(77);
    const values = (n: number) => Float32Array.from({ length: n }, () => r.next() * 2 - 1);
    // The big weight makes the pool split the step, and the split falls inside parameters.
    const params = [
      param('w.weight', values(33 * 17), [33, 17]),
      param('w.bias', values(17), [17]),
      param('empty.weight', values(0), [0, 3]),
      param('big.weight', values(301 * 257), [301, 257]),
      param('big.bias', values(257), [257]),
    ];
    const opt = new AdamW({ weightDecay: 0.01 });
    for (let step = 0; step < 3; step++) {
      // the bias skips step 1 (an AdaMix expert without a gradient), so its step count lags
      const grads = new Map(
        params
          .filter((p) => step !== 1 || p.name !== 'w.bias')
          .map((p) => [p.name, tf.tensor(values(p.value.size), p.value.shape)] as [string, Tensor]),
      );
      opt.apply(params, grads, 1e-3 * (step + 1), step === 2 ? 0.37 : 1); // the last step clipped
      tf.dispose([...grads.values()]);
    }
    const state = opt.exportState();
    const out = [
      ...params.map((p) => tf.clone(p.value)),
      ...[...state.moments.values()].flatMap((s) => [tf.tensor(s.m), tf.tensor(s.v)]),
    ];
    opt.dispose();
    for (const p of params) p.value.dispose();
    return out;
  }

  test('three steps, one clipped, one without a bias gradient: the same parameters and moments, bit for bit', () => {
    assertSame(both(FUSED.adamw, threeSteps), 'AdamW', 0);
  });

  test('the global gradient norm of many tensors in one native call', () => {
    const grads = (r = new Rng(5)) =>
      new Map(
        [
          [7, 3],
          [0, 4],
          [301, 257],
          [1, 1],
        ].map(
          ([a, b], i) =>
            [
              `g${i}`,
              tf.tensor(
                Float32Array.from({ length: a! * b! }, () => r.next() * 2 - 1),
                [a!, b!],
              ),
            ] as [string, Tensor],
        ),
      );
    const norms = both(FUSED.sumSquares, () => {
      const g = grads();
      const { scale, norm } = clipScale(g, 1);
      tf.dispose([...g.values()]);
      return [tf.tensor1d([scale, norm])];
    });
    assertSame(norms, 'clipScale (tf.sum accumulates in float32)', 2e-5);
    let exact = 0;
    for (const g of grads().values()) {
      for (const x of g.dataSync()) exact += x * x;
      g.dispose();
    }
    const native = norms.native[0]!.data[1]!;
    assert.ok(
      Math.abs(native - Math.sqrt(exact)) <= 1e-6 * Math.sqrt(exact),
      `native norm ${native} vs ${Math.sqrt(exact)} summed in float64`,
    );
  });

  test('a parameter that shares its memory (a clone) is updated by the tf ops, and the clone keeps its values', () => {
    installNativeKernels();
    const p = param('shared.weight', Float32Array.from([0.5, -1, 2]), [3]);
    const clone = tf.clone(p.value); // shares p's memory through the native Identity
    const opt = new AdamW({ weightDecay: 0 });
    const before = nativeCallCounts()[FUSED.adamw] ?? 0;
    const g = tf.tensor1d([0.1, 0.2, -0.3]);
    opt.apply([p], new Map([[p.name, g]]), 0.1);
    assert.equal(nativeCallCounts()[FUSED.adamw] ?? 0, before, 'not in place');
    assert.deepEqual(Array.from(clone.dataSync()), [0.5, -1, 2]);
    const moved = Array.from(p.value.dataSync());
    [0.5 - 0.1, -1 - 0.1, 2 + 0.1].forEach((want, i) =>
      assert.ok(Math.abs(moved[i]! - want) < 1e-5, `${moved[i]} vs ${want}`),
    );
    tf.dispose([clone, g, p.value]);
    opt.dispose();
  });
});

describe('the products gradients read transposed operands natively', { skip }, () => {
  test('dense, matmulTrainable and batchMatMul: the same values and gradients', () => {
    const x = random([65, 33]);
    const k = random([33, 17]);
    const b = random([17]);
    assertSame(
      both('BatchMatMul', () => valueAndGrads((t, u, v) => dense(t as tf.Tensor2D, u, v), [x, k, b], 14)),
      'dense',
      1e-4,
    );
    assertSame(
      both('BatchMatMul', () => valueAndGrads((t, u) => matmulTrainable(t as tf.Tensor2D, u), [x, k], 15)),
      'matmulTrainable',
      1e-4,
    );
    const a3 = random([6, 9, 5]);
    const b3 = random([6, 5, 7]);
    const c3 = random([6, 7, 5]);
    assertSame(
      both('BatchMatMul', () => valueAndGrads((t, u) => batchMatMul(t, u), [a3, b3], 16)),
      'batchMatMul',
      1e-4,
    );
    assertSame(
      both('BatchMatMul', () => valueAndGrads((t, u) => batchMatMulBT(t, u), [a3, c3], 17)),
      'batchMatMulBT (q · kᵀ)',
      1e-4,
    );
    tf.dispose([x, k, b, a3, b3, c3]);
  });
});

describe('fused softmax cross-entropy equals the composition', { skip }, () => {
  test('the mean loss and its gradient, odd shapes and a vocabulary-sized one, a scaled upstream gradient', () => {
    for (const [rows, cols] of [
      [1, 2],
      [3, 5],
      [17, 33],
      [613, 8192],
    ] as [number, number][]) {
      const x = random([rows, cols], 8);
      const targets = tf.tensor1d(
        Int32Array.from({ length: rows }, () => rng.int(cols)),
        'int32',
      );
      const r = both(FUSED.xentGrad, () => {
        const out = tf.grads((t: Tensor) => tf.mul(softmaxCrossEntropy(t as tf.Tensor2D, targets), 0.37))([x]);
        return [tf.mul(softmaxCrossEntropy(x as tf.Tensor2D, targets), 0.37), ...out];
      });
      assertSame(r, `cross-entropy [${rows}, ${cols}]`, 1e-5);
      tf.dispose([x, targets]);
    }
  });

  test('a target outside the vocabulary is refused by the kernel', () => {
    installNativeKernels();
    assert.throws(
      () => tf.engine().runKernel(FUSED.xent, { x: tf.ones([2, 3]), targets: tf.tensor1d([0, 3], 'int32') }, {}),
      /target outside/,
    );
  });
});

describe('the tied decoder (x · tableᵀ + b) equals the composition', { skip }, () => {
  test('values and the gradients of x, the table and the bias', () => {
    const x = random([37, 16]);
    const table = random([101, 16]);
    const b = random([101]);
    assertSame(
      both('_FusedMatMul', () =>
        valueAndGrads((t, u, v) => tiedDense(t as tf.Tensor2D, u as tf.Tensor2D, v), [x, table, b], 18),
      ),
      'tiedDense',
      1e-4,
    );
    tf.dispose([x, table, b]);
  });
});

test('the addon checks every operand against the heap before touching it', { skip }, () => {
  const addon = (load as { addon: import('../../src/core/native/addon').NativeAddon }).addon;
  const heap = new Float32Array(64);
  assert.throws(() => addon.geluBias(heap, 0, -1, 4 * 60, 2, 4), /outside the heap/, 'output past the end');
  assert.throws(() => addon.geluBias(heap, 2, -1, 0, 1, 4), /outside the heap/, 'unaligned');
  assert.throws(
    () => addon.softmax(heap, 0, -1, 64, 3, 4, 2, 1),
    /bad dimensions/,
    'rows not a multiple of the mask group',
  );
  assert.throws(() => addon.layerNorm(heap, 0, 0, 0, 0, 0, 0, -1, 4, 1e-5), /bad dimensions/, 'negative rows');
  const row = (over: number[] = []) => Float64Array.from([0, 16, 32, 48, 4, 1, 1, 0.001].map((x, i) => over[i] ?? x));
  assert.throws(
    () => addon.adamw(heap, row([0, 0, 0, Number.NaN]), 0.9, 0.1, 0.999, 0.001, 1e-8, 1),
    /outside the heap/,
    'NaN offset',
  );
  assert.throws(
    () => addon.adamw(heap, Float64Array.from([...row(), ...row([0, 0, 0, 4 * 62])]), 0.9, 0.1, 0.999, 0.001, 1e-8, 1),
    /outside the heap/,
    'second row past the end',
  );
  assert.throws(
    () => addon.adamw(heap, row().subarray(0, 7), 0.9, 0.1, 0.999, 0.001, 1e-8, 1),
    /8 numbers per row/,
    'a short row',
  );
  assert.throws(() => addon.sumSquares(heap, Float64Array.from([0, 65])), /outside the heap/, 'sum past the end');
  assert.throws(
    () => (addon.dropout as (...a: unknown[]) => void)(heap, 0, 0, 0, 4),
    /expected a Float32Array heap and 9 numbers/,
  );
  addon.geluBias(heap, 0, -1, 64, 4, 4); // in bounds: fine
});

test(
  'PEFT_LAB_NATIVE_FUSED=0: the replacement kernels without the fused ones, and ops.ts composes tf ops',
  { skip },
  () => {
    uninstallNativeKernels();
    process.env[NATIVE_FUSED_ENV] = '0';
    try {
      const status = installNativeKernels();
      assert.ok(status.active);
      assert.ok(status.kernels.includes('BatchMatMul'));
      assert.deepEqual(
        status.kernels.filter((k) => k.startsWith('Peft')),
        [],
      );
      assert.equal(fusedKernelsActive(), false);
      assert.equal(tf.getKernel(FUSED.geluBias, 'wasm'), undefined);
      const y = gelu(tf.tensor1d([0, 1]));
      assert.ok(Math.abs(y.dataSync()[1]! - 0.8413447) < 1e-6);
      y.dispose();
    } finally {
      delete process.env[NATIVE_FUSED_ENV];
      uninstallNativeKernels();
    }
    installNativeKernels();
    assert.equal(fusedKernelsActive(), true);
  },
);

describe('Cast to the same dtype shares memory', { skip }, () => {
  test('a float32 cast of float32 reads the same values from the same memory', () => {
    installNativeKernels();
    const backend = tf.backend() as unknown as { getMemoryOffset(id: object): number };
    const x = random([5, 3]);
    const y = tf.cast(x, 'float32');
    assert.equal(backend.getMemoryOffset(y.dataId), backend.getMemoryOffset(x.dataId));
    x.dispose();
    assert.equal(y.dataSync().length, 15);
    const z = tf.cast(y, 'int32');
    assert.equal(z.dtype, 'int32');
    tf.dispose([y, z]);
  });
});
