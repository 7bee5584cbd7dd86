/**
 * The native OpenBLAS kernels (src/core/native, native/peft_native.c) against the wasm backend's own
 * kernels, on the wasm backend: BatchMatMul in every layout and batch form, Transpose of any rank
 * and permutation, Sum over leading axes; random shapes with odd sizes. Also the backend
 * description with and without the addon, and the fallback when it does not load.
 *
 * Without a built addon (bash scripts/build-native.sh) the native suites are skipped and say so;
 * PEFT_LAB_NATIVE_REQUIRED=1 makes that a failure instead.
 */
import { usableCores } from '../../src/core/native/cores';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { tf, type Tensor } from '../../src/core/tf';
import { selectBackend } from '../../src/core/backend';
import { loadNativeAddon, NATIVE_ENV } from '../../src/core/native/addon';
import {
  installNativeKernels,
  nativeCallCounts,
  NATIVE_THREADS_ENV,
  uninstallNativeKernels,
} from '../../src/core/native/wasm-kernels';
import { broadcastBatchIndex } from '../../src/core/native/kernels/matmul';
import { leadingAxes, trailingAxes } from '../../src/core/native/kernels/reduce';
import { Rng } from '../../src/core/random';

const REPO = path.resolve(__dirname, '..', '..');
const load = loadNativeAddon();
const skip = load.ok ? false : `native addon not available (${load.reason})`;
if (skip && process.env.PEFT_LAB_NATIVE_REQUIRED === '1') throw new Error(`PEFT_LAB_NATIVE_REQUIRED=1 but ${skip}`);
if (skip) process.stderr.write(`native-kernels.test: skipping the native suites: ${skip}\n`);

const savedEnv = {
  native: process.env[NATIVE_ENV],
  threads: process.env[NATIVE_THREADS_ENV],
  backend: process.env.PEFT_LAB_BACKEND,
};

before(async () => {
  delete process.env.PEFT_LAB_BACKEND;
  delete process.env[NATIVE_ENV];
  delete process.env[NATIVE_THREADS_ENV];
  await tf.setBackend('wasm');
  await tf.ready();
});

after(() => {
  uninstallNativeKernels();
  for (const [key, name] of [
    ['native', NATIVE_ENV],
    ['threads', NATIVE_THREADS_ENV],
    ['backend', 'PEFT_LAB_BACKEND'],
  ] as const) {
    if (savedEnv[key] === undefined) delete process.env[name];
    else process.env[name] = savedEnv[key];
  }
});

const rng = new Rng(20261125);

function random(shape: number[], dtype: 'float32' | 'int32' = 'float32'): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  if (dtype === 'int32')
    return tf.tensor(
      Int32Array.from({ length: n }, () => rng.int(2001) - 1000),
      shape,
      'int32',
    );
  return tf.tensor(
    Float32Array.from({ length: n }, () => rng.next() * 2 - 1),
    shape,
  );
}

/** Runs `f` with the wasm backend's own kernels, then with the native ones; returns both results' values and shapes. */
function both(f: () => Tensor): {
  plain: { shape: number[]; data: Float32Array | Int32Array };
  native: { shape: number[]; data: Float32Array | Int32Array };
} {
  uninstallNativeKernels();
  const p = f();
  const plain = { shape: p.shape, data: p.dataSync() as Float32Array | Int32Array };
  p.dispose();
  installNativeKernels();
  const q = f();
  const native = { shape: q.shape, data: q.dataSync() as Float32Array | Int32Array };
  q.dispose();
  return { plain, native };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) / (1 + Math.abs(expected[i]!));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  assert.ok(
    worst <= tol,
    `${what}: relative difference ${worst} at ${at} (${actual[at]} vs ${expected[at]}) exceeds ${tol}`,
  );
}

/** Odd and even sizes, small enough to keep the suite fast. */
function dim(): number {
  return [1, 2, 3, 5, 7, 16, 17, 31, 33, 64, 65][rng.int(11)]!;
}

/** Shape of an operand: batch dims, then [rows, cols] or swapped when transposed. */
function operand(batch: number[], rows: number, cols: number, transposed: boolean): number[] {
  return [...batch, ...(transposed ? [cols, rows] : [rows, cols])];
}

describe('native BatchMatMul equals the wasm kernel', { skip }, () => {
  const forms: { name: string; a: number[]; b: number[] }[] = [
    { name: '2-D', a: [], b: [] },
    { name: 'batched, equal batches', a: [4], b: [4] },
    { name: 'batched, a batch of 1 broadcast', a: [1], b: [3] },
    { name: 'batched, b batch of 1 broadcast', a: [3], b: [1] },
    { name: 'rank 3 times rank 2 (b broadcast)', a: [5], b: [] },
    { name: 'rank 2 times rank 3 (a broadcast)', a: [], b: [2] },
    { name: 'rank 4, equal batches', a: [2, 3], b: [2, 3] },
    { name: 'rank 4 against rank 3 (leading dim broadcast)', a: [2, 3], b: [3] },
  ];
  for (const form of forms) {
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      test(`${form.name}, transposeA=${ta}, transposeB=${tb}`, () => {
        for (let trial = 0; trial < 4; trial++) {
          const [m, k, n] = [dim(), dim(), dim()];
          const a = random(operand(form.a, m, k, ta));
          const b = random(operand(form.b, k, n, tb));
          const { plain, native } = both(() => tf.matMul(a, b, ta, tb));
          assert.deepEqual(native.shape, plain.shape);
          assertClose(native.data, plain.data, `${JSON.stringify(a.shape)} x ${JSON.stringify(b.shape)}`);
          tf.dispose([a, b]);
        }
      });
    }
  }

  test('the model shapes: [4096, 256] x [256, 768] and attention [128, 128, 64] x [128, 64, 128]', () => {
    for (const [sa, sb, ta, tb] of [
      [[4096, 256], [256, 768], false, false],
      [[4096, 256], [4096, 64], true, false],
      [[128, 128, 64], [128, 128, 64], false, true],
    ] as const) {
      const a = random([...sa]);
      const b = random([...sb]);
      const { plain, native } = both(() => tf.matMul(a, b, ta, tb));
      assertClose(native.data, plain.data, `${JSON.stringify(sa)} x ${JSON.stringify(sb)}`);
      tf.dispose([a, b]);
    }
  });

  test('general broadcasting ([2, 1] against [1, 3] batches) equals products of the broadcast slices', () => {
    // The wasm (and cpu) kernels get this form wrong; the reference is each slice's own 2-D product.
    installNativeKernels();
    const a = random([2, 1, 5, 3]);
    const b = random([1, 3, 3, 4]);
    const out = tf.matMul(a, b);
    assert.deepEqual(out.shape, [2, 3, 5, 4]);
    const got = out.dataSync();
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        const slice = tf.tidy(() => {
          const ai = tf.reshape(tf.slice(a, [i, 0, 0, 0], [1, 1, 5, 3]), [5, 3]);
          const bj = tf.reshape(tf.slice(b, [0, j, 0, 0], [1, 1, 3, 4]), [3, 4]);
          uninstallNativeKernels();
          const r = tf.matMul(ai, bj).dataSync();
          installNativeKernels();
          return Array.from(r);
        });
        assertClose(got.slice((i * 3 + j) * 20, (i * 3 + j + 1) * 20), slice, `batch (${i}, ${j})`);
      }
    }
    tf.dispose([a, b, out]);
  });

  test('an output that grows the wasm heap is written to the new heap', () => {
    installNativeKernels();
    const wasm = (tf.backend() as unknown as { wasm: { HEAPF32: Float32Array } }).wasm;
    const heapBefore = wasm.HEAPF32.buffer.byteLength;
    // An outer product whose output alone is larger than the whole heap now: makeOutput must grow it.
    const rows = 1024;
    const cols = Math.ceil(heapBefore / 4 / rows) + 1024;
    const a = tf.fill([rows, 1], 2);
    const b = tf.fill([1, cols], 3);
    const out = tf.matMul(a, b);
    assert.ok(wasm.HEAPF32.buffer.byteLength > heapBefore, 'the heap grew');
    const sum = tf.sum(out).dataSync()[0]!;
    assert.ok(Math.abs(sum - 6 * rows * cols) <= 1e-5 * 6 * rows * cols, `sum ${sum}`);
    const data = out.dataSync();
    assert.equal(data[0], 6);
    assert.equal(data[data.length - 1], 6);
    tf.dispose([a, b, out]);
  });

  test('empty and zero-inner-size products: zeros of the right shape', () => {
    installNativeKernels();
    const z = tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4]));
    assert.deepEqual(z.shape, [3, 4]);
    assert.deepEqual(Array.from(z.dataSync()), new Array(12).fill(0));
    const e = tf.matMul(tf.zeros([2, 0, 5]), tf.ones([2, 5, 3]));
    assert.deepEqual(e.shape, [2, 0, 3]);
    assert.equal(e.dataSync().length, 0);
    tf.dispose([z, e]);
  });

  test('mismatched inner sizes fail as the wasm kernel does', () => {
    installNativeKernels();
    assert.throws(() => tf.matMul(tf.ones([2, 3]), tf.ones([4, 5])), /inner shapes|must match/);
  });

  test('gradients of tf.matMul (transposed products inside) equal the wasm kernel', () => {
    const a = random([6, 9]);
    const b = random([9, 5]);
    const grads = () => {
      const g = tf.grads((x: Tensor, y: Tensor) => tf.sum(tf.square(tf.matMul(x, y))))([a, b]);
      return tf.concat([tf.reshape(g[0]!, [-1]), tf.reshape(g[1]!, [-1])]);
    };
    const { plain, native } = both(grads);
    assertClose(native.data, plain.data, 'dA, dB');
    tf.dispose([a, b]);
  });

  test('_FusedMatMul with a bias (the dense layers) equals the product plus the bias; activations go to the wasm kernel', () => {
    // The reference is the wasm kernels' matMul then add: the wasm _FusedMatMul itself is wrong for
    // batched and transposed operands.
    const reference = (a: Tensor, b: Tensor, bias: Tensor, ta: boolean, tb: boolean, relu: boolean) => {
      uninstallNativeKernels();
      const y = tf.tidy(() => {
        const z = tf.add(tf.matMul(a, b, ta, tb), bias);
        return relu ? tf.relu(z) : z;
      });
      const data = y.dataSync();
      y.dispose();
      installNativeKernels();
      return data;
    };
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
    ] as const) {
      for (const [batch, m, k, n] of [
        [[], 1, 1, 1],
        [[], 17, 33, 5],
        [[], 256, 64, 96],
        [[3], 5, 7, 9],
      ] as [number[], number, number, number][]) {
        const a = random(operand(batch, m, k, ta));
        const b = random(operand(batch, k, n, tb));
        const bias = random([n]);
        // The fallback to the wasm kernel (an activation) only where that kernel is right: 2-D, no transposes.
        for (const activation of batch.length || ta || tb ? (['linear'] as const) : (['linear', 'relu'] as const)) {
          const want = reference(a, b, bias, ta, tb, activation === 'relu');
          const y = tf.fused.matMul({ a, b, bias, transposeA: ta, transposeB: tb, activation });
          assertClose(
            y.dataSync(),
            want,
            `${activation} ${JSON.stringify(a.shape)} x ${JSON.stringify(b.shape)} + bias`,
          );
          y.dispose();
        }
        tf.dispose([a, b, bias]);
      }
    }
    installNativeKernels();
    const before = nativeCallCounts()._FusedMatMul ?? 0;
    tf.fused.matMul({ a: tf.ones([2, 3]), b: tf.ones([3, 4]), bias: tf.ones([4]) }).dispose();
    assert.equal(nativeCallCounts()._FusedMatMul, before + 1);
    // An empty inner size: the bias alone, on every row.
    const y = tf.fused.matMul({ a: tf.zeros([2, 0]), b: tf.zeros([0, 3]), bias: tf.tensor1d([1, 2, 3]) });
    assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3, 1, 2, 3]);
    y.dispose();
  });

  test('the native kernel ran', () => {
    installNativeKernels();
    const before = nativeCallCounts().BatchMatMul ?? 0;
    tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])).dispose();
    assert.equal(nativeCallCounts().BatchMatMul, before + 1);
  });
});

describe('native Transpose equals the wasm kernel', { skip }, () => {
  function permutation(rank: number): number[] {
    const perm = Array.from({ length: rank }, (_, i) => i);
    for (let i = rank - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    return perm;
  }

  for (let rank = 1; rank <= 6; rank++) {
    test(`rank ${rank}: random shapes (with size-1 dims) and permutations, float32 and int32`, () => {
      for (let trial = 0; trial < 12; trial++) {
        const shape = Array.from(
          { length: rank },
          () => [1, 2, 3, 4, 5, 7, 9][rng.int(7)]! + (rank <= 2 ? 30 * rng.int(3) : 0),
        );
        const perm = permutation(rank);
        for (const dtype of ['float32', 'int32'] as const) {
          const x = random(shape, dtype);
          const { plain, native } = both(() => tf.transpose(x, perm));
          assert.deepEqual(native.shape, plain.shape, `${JSON.stringify(shape)} perm ${perm}`);
          assert.deepEqual(
            Array.from(native.data),
            Array.from(plain.data),
            `${dtype} ${JSON.stringify(shape)} perm ${perm}`,
          );
          x.dispose();
        }
      }
    });
  }

  test("the attention's permutations, bit for bit", () => {
    for (const [shape, perm] of [
      [
        [4, 9, 3, 2, 8],
        [2, 0, 3, 1, 4],
      ],
      [
        [3, 4, 2, 9, 8],
        [1, 3, 0, 2, 4],
      ],
      [
        [4, 2, 9, 8],
        [0, 1, 3, 2],
      ],
      [
        [4, 2, 9, 8],
        [0, 2, 1, 3],
      ],
      [
        [300, 70],
        [1, 0],
      ],
    ] as const) {
      const x = random([...shape]);
      const { plain, native } = both(() => tf.transpose(x, [...perm]));
      assert.deepEqual(native.shape, plain.shape);
      assert.deepEqual(Array.from(native.data), Array.from(plain.data), `${JSON.stringify(shape)} perm ${perm}`);
      x.dispose();
    }
  });

  test('identity permutations and empty tensors', () => {
    for (const [shape, perm] of [
      [
        [3, 4],
        [0, 1],
      ],
      [
        [2, 1, 3],
        [1, 0, 2],
      ],
      [
        [0, 3],
        [1, 0],
      ],
      [
        [1, 1],
        [1, 0],
      ],
    ] as const) {
      const x = random([...shape]);
      const { plain, native } = both(() => tf.transpose(x, [...perm]));
      assert.deepEqual(native.shape, plain.shape);
      assert.deepEqual(Array.from(native.data), Array.from(plain.data));
      x.dispose();
    }
  });

  test('bool tensors fall back to the wasm kernel', () => {
    installNativeKernels();
    const x = tf.tensor2d([true, false, false, true, true, false], [2, 3], 'bool');
    assert.deepEqual(Array.from(tf.transpose(x).dataSync()), [1, 1, 0, 1, 0, 0]);
  });
});

describe('native Sum and Mean equal the wasm kernels', { skip }, () => {
  const cases: [number[], number | number[] | undefined, boolean][] = [
    // leading axes: the bias gradients
    [[4096, 256], 0, false],
    [[33, 17], 0, false],
    [[33, 17], [0], true],
    [[5, 7, 9], [0, 1], false],
    [[5, 7, 9], [1, 0], true],
    [[5, 7, 9], [-3], false],
    [[5, 7, 9], undefined, false],
    [[5, 7, 9], [0, 1, 2], true],
    [[1, 65], 0, false],
    [[65], 0, false],
    // trailing axes: LayerNorm's moments, the softmax gradient
    [[4096, 256], 1, true],
    [[4096, 256], -1, true],
    [[4, 3, 17, 33], [3], true],
    [[5, 7, 9], [1, 2], false],
    [[5, 7, 9], [-1, -2], true],
    [[7, 1], 1, false],
  ];
  for (const [name, f] of [
    ['sum', tf.sum],
    ['mean', tf.mean],
  ] as const) {
    test(`${name} over leading and trailing axes, keepDims, negative axes, all axes`, () => {
      for (const [shape, axis, keepDims] of cases) {
        const x = random(shape);
        const { plain, native } = both(() => f(x, axis, keepDims));
        assert.deepEqual(native.shape, plain.shape, `${JSON.stringify(shape)} axis ${JSON.stringify(axis)}`);
        // The wasm kernels accumulate in float32 (4,096 terms at most here); the native ones in double.
        assertClose(native.data, plain.data, `${name} ${JSON.stringify(shape)} axis ${JSON.stringify(axis)}`, 1e-4);
        x.dispose();
      }
    });
  }

  test('middle axes, int32 and empty tensors go to the wasm kernels and still agree', () => {
    for (const [shape, axis, dtype] of [
      [[5, 7, 9], 1, 'float32'],
      [[5, 7, 9], [0, 2], 'float32'],
      [[5, 7], 0, 'int32'],
      [[5, 7], 1, 'int32'],
      [[0, 7], 0, 'float32'],
      [[7, 0], 1, 'float32'],
    ] as const) {
      const x = random([...shape], dtype);
      const ax = Array.isArray(axis) ? [...(axis as readonly number[])] : (axis as number);
      for (const f of [tf.sum, tf.mean]) {
        const { plain, native } = both(() => f(x, ax));
        assert.deepEqual(native.shape, plain.shape);
        assertClose(native.data, plain.data, `${f.name} ${dtype} ${JSON.stringify(shape)} axis ${axis}`, 1e-5);
      }
      x.dispose();
    }
  });

  test('leadingAxes and trailingAxes', () => {
    assert.equal(leadingAxes(0, 2), 1);
    assert.equal(leadingAxes([1, 0], 3), 2);
    assert.equal(leadingAxes([-1, 0], 2), 2);
    assert.equal(leadingAxes([-2, 0], 2), 1);
    assert.equal(leadingAxes(undefined, 3), 3);
    assert.equal(leadingAxes(1, 2), -1);
    assert.equal(leadingAxes([0, 2], 3), -1);
    assert.equal(trailingAxes(-1, 3), 1);
    assert.equal(trailingAxes([2, 1], 3), 2);
    assert.equal(trailingAxes(0, 3), -1);
    assert.equal(trailingAxes([0, 2], 3), -1);
  });
});

describe('native Unpack, GatherV2, Slice, SplitV and Concat equal the wasm kernels', { skip }, () => {
  test('unstack along every axis, float32 and int32, bit for bit', () => {
    for (const shape of [[3, 4, 2, 5, 6], [1, 7], [6], [2, 1, 3]]) {
      for (let axis = -shape.length; axis < shape.length; axis++) {
        for (const dtype of ['float32', 'int32'] as const) {
          const x = random(shape, dtype);
          const { plain, native } = both(() => tf.stack(tf.unstack(x, axis).map((t) => tf.reshape(t, [-1]))));
          assert.deepEqual(native.shape, plain.shape, `${dtype} ${JSON.stringify(shape)} axis ${axis}`);
          assert.deepEqual(
            Array.from(native.data),
            Array.from(plain.data),
            `${dtype} ${JSON.stringify(shape)} axis ${axis}`,
          );
          x.dispose();
        }
      }
    }
  });

  test('unstack of the attention projections: [3, B, H, T, dh] into q, k, v', () => {
    const x = random([3, 4, 2, 9, 8]);
    installNativeKernels();
    const parts = tf.unstack(x);
    assert.equal(parts.length, 3);
    for (const p of parts) assert.deepEqual(p.shape, [4, 2, 9, 8]);
    uninstallNativeKernels();
    const want = tf.unstack(x);
    for (let i = 0; i < 3; i++) assert.deepEqual(Array.from(parts[i]!.dataSync()), Array.from(want[i]!.dataSync()));
    tf.dispose([x, ...parts, ...want]);
  });

  test('gather along every axis with 1-D and 2-D indices (embedding lookups), bit for bit', () => {
    for (const shape of [[30, 8], [5, 7, 3], [9]]) {
      for (let axis = 0; axis < shape.length; axis++) {
        for (const idxShape of [[11], [3, 4]]) {
          const dim = shape[axis]!;
          const idx = tf.tensor(
            Int32Array.from({ length: idxShape.reduce((p, d) => p * d, 1) }, () => rng.int(dim)),
            idxShape,
            'int32',
          );
          for (const dtype of ['float32', 'int32'] as const) {
            const x = random(shape, dtype);
            const { plain, native } = both(() => tf.gather(x, idx, axis));
            assert.deepEqual(
              native.shape,
              plain.shape,
              `${dtype} ${JSON.stringify(shape)} axis ${axis} indices ${JSON.stringify(idxShape)}`,
            );
            assert.deepEqual(
              Array.from(native.data),
              Array.from(plain.data),
              `${dtype} ${JSON.stringify(shape)} axis ${axis}`,
            );
            x.dispose();
          }
          idx.dispose();
        }
      }
    }
  });

  test('an index out of range fails with the wasm kernel message', () => {
    installNativeKernels();
    const x = random([4, 3]);
    assert.throws(() => tf.gather(x, tf.tensor1d([0, 4], 'int32')), /GatherV2: the index value 4 is not in \[0, 3\]/);
    assert.throws(() => tf.gather(x, tf.tensor1d([-1], 'int32')), /GatherV2: the index value -1 is not in \[0, 3\]/);
    x.dispose();
  });

  test('slice of every rank, along any dims (the [CLS] rows, the position table), float32 and int32, bit for bit', () => {
    for (const [shape, begin, size] of [
      [
        [32, 128, 16],
        [0, 0, 0],
        [32, 1, 16],
      ],
      [
        [512, 8],
        [0, 0],
        [128, 8],
      ],
      [[9], [2], [5]],
      [[9], [0], [-1]],
      [
        [5, 7],
        [1, 2],
        [3, 4],
      ],
      [
        [4, 5, 6, 7],
        [1, 0, 2, 3],
        [2, 5, 3, 4],
      ],
      [
        [4, 5, 6, 7],
        [0, 1, 0, 0],
        [4, 3, 6, 7],
      ],
      [
        [2, 3, 4, 5, 6],
        [1, 1, 1, 1, 1],
        [1, 2, 3, 4, 5],
      ],
      [
        [3, 4],
        [1, 0],
        [0, 4],
      ],
    ] as [number[], number[], number[]][]) {
      for (const dtype of ['float32', 'int32'] as const) {
        const x = random(shape, dtype);
        const { plain, native } = both(() => tf.slice(x, begin, size));
        assert.deepEqual(native.shape, plain.shape, `${dtype} ${JSON.stringify(shape)} begin ${begin} size ${size}`);
        assert.deepEqual(
          Array.from(native.data),
          Array.from(plain.data),
          `${dtype} ${JSON.stringify(shape)} begin ${begin} size ${size}`,
        );
        x.dispose();
      }
    }
  });

  test('split and concat along every axis (the fused QKV kernel), float32 and int32, bit for bit', () => {
    for (const shape of [[256, 768], [4, 6, 9], [12]]) {
      for (let axis = -shape.length; axis < shape.length; axis++) {
        const n = shape[(axis + shape.length) % shape.length]!;
        const sizes = [Math.floor(n / 3), n - 2 * Math.floor(n / 3), Math.floor(n / 3)];
        for (const dtype of ['float32', 'int32'] as const) {
          const x = random(shape, dtype);
          const what = `${dtype} ${JSON.stringify(shape)} axis ${axis} sizes ${sizes}`;
          // each part flattened, one after another (the plain Concat of 1-D tensors is a plain copy)
          const split = both(() => tf.concat(tf.split(x, sizes, axis).map((t) => tf.reshape(t, [-1]))));
          assert.deepEqual(split.native.shape, split.plain.shape, what);
          assert.deepEqual(Array.from(split.native.data), Array.from(split.plain.data), what);
          const joined = both(() => tf.concat(tf.split(x, sizes, axis).reverse(), axis));
          assert.deepEqual(joined.native.shape, joined.plain.shape, what);
          assert.deepEqual(Array.from(joined.native.data), Array.from(joined.plain.data), what);
          x.dispose();
        }
      }
    }
  });

  test('batchDims falls back to the wasm kernel and still agrees', () => {
    const x = random([2, 5, 3]);
    const idx = tf.tensor2d([0, 4, 1, 2, 3, 3], [2, 3], 'int32');
    const { plain, native } = both(() => tf.gather(x, idx, 1, 1));
    assert.deepEqual(native.shape, plain.shape);
    assert.deepEqual(Array.from(native.data), Array.from(plain.data));
    tf.dispose([x, idx]);
  });
});

describe('native Exp and Erf equal the wasm kernels', { skip }, () => {
  test('exp and erf within float tolerance, on the GELU range and beyond', () => {
    const x = tf.mul(random([4096, 3]), 12); // [-12, 12]
    for (const [name, f] of [
      ['exp', tf.exp],
      ['erf', tf.erf],
      ['gelu gradient exp(-x^2/2)', (t: Tensor) => tf.exp(tf.mul(-0.5, tf.square(t)))],
    ] as const) {
      const { plain, native } = both(() => f(x));
      assertClose(native.data, plain.data, name, 1e-5);
    }
    x.dispose();
  });

  test('exp and erf of special values', () => {
    const x = tf.tensor1d([0, -0, 1, -1, 88, 89, -104, Infinity, -Infinity, NaN, 1e-30]);
    for (const f of [tf.exp, tf.erf]) {
      const { plain, native } = both(() => f(x));
      for (let i = 0; i < plain.data.length; i++) {
        const p = plain.data[i]!;
        const q = native.data[i]!;
        if (Number.isNaN(p)) assert.ok(Number.isNaN(q), `${f.name}(${x.dataSync()[i]}) = ${q}, want NaN`);
        else
          assert.ok(
            p === q || Math.abs(p - q) <= 1e-6 * Math.abs(p),
            `${f.name}(${x.dataSync()[i]}) = ${q}, want ${p}`,
          );
      }
    }
    x.dispose();
  });
});

describe('Identity shares memory instead of copying', { skip }, () => {
  test('a clone reads the same values, outlives its source, and frees the memory with the last reference', () => {
    installNativeKernels();
    const backend = tf.backend() as unknown as {
      dataIdMap: { has(id: object): boolean };
      getMemoryOffset(id: object): number;
    };
    const x = random([64, 33]);
    const want = Array.from(x.dataSync());
    const y = tf.clone(x);
    assert.equal(backend.getMemoryOffset(y.dataId), backend.getMemoryOffset(x.dataId), 'one buffer for both');
    x.dispose();
    assert.ok(backend.dataIdMap.has(y.dataId), 'the buffer lives while the clone does');
    assert.deepEqual(Array.from(y.dataSync()), want);
    const z = tf.add(y, 1);
    assert.ok(Math.abs(z.dataSync()[0]! - (want[0]! + 1)) < 1e-6);
    const id = y.dataId;
    tf.dispose([y, z]);
    assert.ok(!backend.dataIdMap.has(id), 'freed with the last reference');
  });

  test('gradients through saved (cloned) tensors equal the wasm kernel', () => {
    const x = random([16, 24]);
    const w = random([24, 8]);
    const f = () => {
      const [gx, gw] = tf.grads((a: Tensor, b: Tensor) =>
        tf.sum(tf.mul(tf.exp(tf.matMul(a, b)), tf.sigmoid(tf.matMul(a, b)))),
      )([x, w]);
      return tf.concat([tf.reshape(gx!, [-1]), tf.reshape(gw!, [-1])]);
    };
    const { plain, native } = both(f);
    assertClose(native.data, plain.data, 'dx, dw');
    tf.dispose([x, w]);
  });
});

test('broadcastBatchIndex maps broadcast batch positions to the operand own batches', () => {
  assert.deepEqual(Array.from(broadcastBatchIndex([2, 1], [2, 3])), [0, 0, 0, 1, 1, 1]);
  assert.deepEqual(Array.from(broadcastBatchIndex([1, 3], [2, 3])), [0, 1, 2, 0, 1, 2]);
  assert.deepEqual(Array.from(broadcastBatchIndex([3], [2, 3])), [0, 1, 2, 0, 1, 2]);
  assert.deepEqual(Array.from(broadcastBatchIndex([2, 1, 2], [2, 3, 2])), [0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3]);
});

describe('backend selection', () => {
  test(
    'wasm with the addon: "wasm + native kernels (OpenBLAS, N threads)" for the usable cores, native kernels registered',
    { skip },
    async () => {
      const choice = await selectBackend('wasm');
      const cores = usableCores();
      assert.equal(choice.active, 'wasm');
      assert.equal(choice.description, `wasm + native kernels (OpenBLAS, ${cores} thread${cores === 1 ? '' : 's'})`);
      assert.deepEqual(choice.native?.kernels, [
        'BatchMatMul',
        '_FusedMatMul',
        'Transpose',
        'Sum',
        'Mean',
        'Unpack',
        'GatherV2',
        'Slice',
        'SplitV',
        'Concat',
        'Identity',
        'Cast',
        'Exp',
        'Erf',
        'PeftGeluBias',
        'PeftGeluBiasGrad',
        'PeftLayerNorm',
        'PeftLayerNormGrad',
        'PeftSoftmax',
        'PeftSoftmaxGrad',
        'PeftXent',
        'PeftXentGrad',
        'PeftDropout',
        'PeftAttnScores',
        'PeftAttnContext',
        'PeftAttnProbsGrad',
        'PeftAttnQkvGrad',
        'PeftAdamW',
        'PeftSumSquares',
      ]);
      assert.equal(choice.native?.threads, cores);
    },
  );

  test('PEFT_LAB_NATIVE_THREADS=1: one OpenBLAS thread', { skip }, async () => {
    process.env[NATIVE_THREADS_ENV] = '1';
    try {
      const choice = await selectBackend('wasm');
      assert.equal(choice.description, 'wasm + native kernels (OpenBLAS, 1 thread)');
    } finally {
      delete process.env[NATIVE_THREADS_ENV];
      await selectBackend('wasm');
    }
  });

  test('PEFT_LAB_NATIVE=0: the wasm kernels are back and the description says why', async () => {
    const original = tf.getKernel('BatchMatMul', 'wasm').kernelFunc;
    process.env[NATIVE_ENV] = '0';
    try {
      const choice = await selectBackend('wasm');
      assert.match(
        choice.description,
        /^wasm \(XNNPACK.*\); native kernels not loaded: disabled by PEFT_LAB_NATIVE=0$/,
      );
      assert.equal(choice.native?.active, false);
      if (!skip)
        assert.notEqual(
          tf.getKernel('BatchMatMul', 'wasm').kernelFunc,
          original,
          'the wasm kernel is registered again',
        );
    } finally {
      delete process.env[NATIVE_ENV];
    }
  });

  test('an addon that does not load: plain wasm, the reason in the description, and training still works', () => {
    // A fresh process: the addon is loaded once per process.
    const script = `
      const { selectBackend } = require(${JSON.stringify(path.join(REPO, 'src', 'core', 'backend.ts'))});
      const { tf } = require(${JSON.stringify(path.join(REPO, 'src', 'core', 'tf.ts'))});
      selectBackend('wasm').then((c) => {
        const y = tf.matMul(tf.ones([2, 3]), tf.ones([2, 3]), false, true);
        console.log(JSON.stringify({ description: c.description, native: c.native, y: Array.from(y.dataSync()) }));
      });`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: REPO,
      encoding: 'utf8',
      env: {
        ...process.env,
        PEFT_LAB_NATIVE_ADDON: path.join(REPO, 'native', 'no-such-addon.node'),
        PEFT_LAB_BACKEND: '',
      },
    });
    assert.equal(child.status, 0, child.stderr.slice(-2000));
    const line = child.stdout.split('\n').find((l) => l.startsWith('{'));
    assert.ok(line, child.stdout);
    const out = JSON.parse(line) as { description: string; native: { active: boolean; reason: string }; y: number[] };
    assert.match(out.description, /^wasm \(XNNPACK.*\); native kernels not loaded: .*no-such-addon\.node did not load/);
    assert.equal(out.native.active, false);
    assert.deepEqual(out.y, [3, 3, 3, 3]);
  });
});
