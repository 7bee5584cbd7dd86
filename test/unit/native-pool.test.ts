/**
 * The native kernels' thread pool (native/peft_pool.c): every kernel gives the same numbers on two
 * and on three threads as on one, on shapes large enough to be split (rows, columns, elements, products by rows,
 * by columns and by product, odd sizes so that the parts are uneven). One thread is the kernel run
 * whole, so this checks each kernel's part offsets and how parts are joined. Elementwise kernels agree
 * bit for bit; products up to rounding (OpenBLAS may take another kernel path for a smaller block).
 *
 * Skipped (and says so) when the addon is not built; PEFT_LAB_NATIVE_REQUIRED=1 makes that a failure.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNativeAddon, type NativeAddon } from '../../src/core/native/addon';
import { aleaState } from '../../src/core/native/kernels/dropout';
import { Rng } from '../../src/core/random';

const load = loadNativeAddon();
const skip = load.ok ? false : `native addon not available (${load.reason})`;
if (skip && process.env.PEFT_LAB_NATIVE_REQUIRED === '1') throw new Error(`PEFT_LAB_NATIVE_REQUIRED=1 but ${skip}`);

/** A heap of random floats in [-2, 2) with a bump allocator of byte offsets. */
class Heap {
  readonly data: Float32Array;
  private next = 0;
  constructor(floats: number) {
    this.data = new Float32Array(floats);
    const rng = new Rng(9);
    for (let i = 0; i < floats; i++) this.data[i] = rng.next() * 4 - 2;
  }
  alloc(count: number): number {
    const offset = this.next;
    this.next += 4 * Math.ceil(count / 16) * 16;
    if (this.next > 4 * this.data.length) throw new Error('test heap too small');
    return offset;
  }
  read(offset: number, count: number): Float32Array {
    return this.data.slice(offset / 4, offset / 4 + count);
  }
}

/**
 * Runs `kernel` on a fresh copy of the same heap with 1 thread and with `many` (the suite runs for 2
 * and for 3, odd parts), and returns both reads of the outputs (the kernel returns the [offset,
 * count] pairs it wrote).
 */
let many = 2;
function onOneAndTwo(
  addon: NativeAddon,
  floats: number,
  kernel: (heap: Heap) => [number, number][],
): [Float32Array[], Float32Array[]] {
  const runs = [1, many].map((threads) => {
    assert.equal(addon.setThreads(threads), threads);
    const heap = new Heap(floats);
    return kernel(heap).map(([offset, count]) => heap.read(offset, count));
  });
  return runs as [Float32Array[], Float32Array[]];
}

function assertSame(one: Float32Array[], two: Float32Array[], what: string): void {
  one.forEach((a, i) => assert.deepEqual(two[i], a, `${what}: output ${i} differs between 1 and ${many} threads`));
}

function assertClose(one: Float32Array[], two: Float32Array[], tolerance: number, what: string): void {
  one.forEach((a, i) => {
    const b = two[i]!;
    for (let j = 0; j < a.length; j++) {
      const scale = Math.max(1, Math.abs(a[j]!));
      if (!(Math.abs(a[j]! - b[j]!) <= tolerance * scale))
        assert.fail(`${what}: output ${i}[${j}] ${a[j]} vs ${b[j]} between 1 and ${many} threads`);
    }
  });
}

for (const threads of [2, 3])
  describe(`native kernels on the thread pool: 1 thread against ${threads}`, { skip }, () => {
    const addon = (load as { addon: NativeAddon }).addon;
    before(() => {
      many = threads;
    });
    const ROWS = 301;
    const COLS = 257;
    const N = ROWS * COLS;

    test('GELU with bias and its gradient: split by rows', () => {
      const [one, two] = onOneAndTwo(addon, 8 * N, (h) => {
        const [x, b, y, dy, dx] = [h.alloc(N), h.alloc(COLS), h.alloc(N), h.alloc(N), h.alloc(N)];
        addon.geluBias(h.data, x, b, y, ROWS, COLS);
        addon.geluBiasGrad(h.data, dy, x, b, dx, ROWS, COLS);
        return [
          [y, N],
          [dx, N],
        ];
      });
      assertSame(one, two, 'gelu');
    });

    test('softmax over masked attention rows (units of a mask group) and its gradient', () => {
      const [batch, heads, seq] = [5, 3, 67];
      const rows = batch * heads * seq;
      const [one, two] = onOneAndTwo(addon, 6 * rows * seq, (h) => {
        const [x, mask, y, dy, dx] = [
          h.alloc(rows * seq),
          h.alloc(batch * seq),
          h.alloc(rows * seq),
          h.alloc(rows * seq),
          h.alloc(rows * seq),
        ];
        addon.softmax(h.data, x, mask, y, rows, seq, heads * seq, 0.125);
        addon.softmaxGrad(h.data, dy, y, dx, rows, seq, 0.125);
        return [
          [y, rows * seq],
          [dx, rows * seq],
        ];
      });
      assertSame(one, two, 'softmax');
    });

    test('LayerNorm and its gradient: rows split, the gain and bias gradients summed over the parts', () => {
      const [one, two] = onOneAndTwo(addon, 8 * N, (h) => {
        const [x, g, b, y, mean, rstd] = [
          h.alloc(N),
          h.alloc(COLS),
          h.alloc(COLS),
          h.alloc(N),
          h.alloc(ROWS),
          h.alloc(ROWS),
        ];
        const [dy, dx, dg, db] = [h.alloc(N), h.alloc(N), h.alloc(COLS), h.alloc(COLS)];
        addon.layerNorm(h.data, x, g, b, y, mean, rstd, ROWS, COLS, 1e-12);
        addon.layerNormGrad(h.data, dy, x, mean, rstd, g, dx, dg, db, ROWS, COLS);
        return [
          [y, N],
          [mean, ROWS],
          [rstd, ROWS],
          [dx, N],
          [dg, COLS],
          [db, COLS],
        ];
      });
      assertSame(one.slice(0, 4), two.slice(0, 4), 'layerNorm');
      // Column sums in double, split in two and added: equal up to the last float32 rounding
      assertClose(one.slice(4), two.slice(4), 1e-6, 'layerNorm gain and bias gradients');
    });

    test('dropout (the generator is sequential, its mask pass split), AdamW and exp/erf: split by elements', () => {
      const alea = aleaState('pool');
      const [one, two] = onOneAndTwo(addon, 12 * N, (h) => {
        const [x, y, mask] = [h.alloc(N), h.alloc(N), h.alloc(N)];
        addon.dropout(h.data, x, y, mask, N, 0.9, alea.s0, alea.s1, alea.s2, alea.c);
        const [p, g, m, v] = [h.alloc(N), h.alloc(N), h.alloc(N), h.alloc(N)];
        for (let i = 0; i < N; i++) h.data[v / 4 + i] = Math.abs(h.data[v / 4 + i]!);
        const half = Math.floor(N / 2) + 3; // two parameters, so the split crosses from one into the other
        const table = Float64Array.from([
          p,
          g,
          m,
          v,
          half,
          Math.sqrt(0.002),
          1 - 1e-5,
          1e-3,
          p + 4 * half,
          g + 4 * half,
          m + 4 * half,
          v + 4 * half,
          N - half,
          Math.sqrt(0.003),
          1,
          2e-3,
        ]);
        addon.adamw(h.data, table, 0.9, 0.1, 0.999, 0.001, 1e-8, 0.5);
        const [e, f] = [h.alloc(N), h.alloc(N)];
        addon.unary(h.data, 0, x, e, N);
        addon.unary(h.data, 1, x, f, N);
        return [
          [y, N],
          [mask, N],
          [p, N],
          [m, N],
          [v, N],
          [e, N],
          [f, N],
        ];
      });
      assertSame(one, two, 'dropout, adamw, unary');
    });

    test('sums over rows (split by columns) and over columns (split by rows), and a gather with several outer blocks', () => {
      const [outer, dim, inner, count] = [3, 41, 129, 997];
      const [one, two] = onOneAndTwo(addon, 6 * N + outer * (dim + count) * inner + count, (h) => {
        const [x, byCol, byRow] = [h.alloc(N), h.alloc(COLS), h.alloc(ROWS)];
        addon.sumRows(h.data, x, byCol, ROWS, COLS, 0.5);
        addon.sumCols(h.data, x, byRow, ROWS, COLS, 1);
        const [table, idx, out] = [h.alloc(outer * dim * inner), h.alloc(count), h.alloc(outer * count * inner)];
        const ids = new Int32Array(h.data.buffer, idx, count);
        for (let j = 0; j < count; j++) ids[j] = (j * 7) % dim;
        assert.equal(addon.gatherRows(h.data, table, idx, out, outer, dim, inner, count), undefined);
        return [
          [byCol, COLS],
          [byRow, ROWS],
          [out, outer * count * inner],
        ];
      });
      assertSame(one, two, 'sums and gather');
    });

    test('products split by rows, by columns and by product, with transposes, a bias and strided heads', () => {
      const shapes: [string, number, number, number, boolean, boolean, number][] = [
        ['rows', 301, 200, 130, false, false, 1],
        ['rows, Aᵀ Bᵀ', 301, 200, 130, true, true, 1],
        ['columns', 40, 1001, 200, false, true, 1],
        ['columns, Aᵀ', 40, 1001, 200, true, false, 1],
        ['products', 67, 67, 32, false, true, 24],
      ];
      for (const [what, m, n, k, ta, tb, batch] of shapes) {
        const [one, two] = onOneAndTwo(addon, batch * (m * k + k * n + 2 * m * n) + n + 64, (h) => {
          const [a, b, c, bias, cb] = [
            h.alloc(batch * m * k),
            h.alloc(batch * k * n),
            h.alloc(batch * m * n),
            h.alloc(n),
            h.alloc(batch * m * n),
          ];
          addon.sgemm(h.data, a, b, c, m, n, k, ta, tb, batch, batch, batch, null, null);
          addon.sgemm(h.data, a, b, cb, m, n, k, ta, tb, batch, batch, batch, null, null, bias);
          return [
            [c, batch * m * n],
            [cb, batch * m * n],
          ];
        });
        // OpenBLAS may take another kernel path for a block of other dimensions: equal up to rounding
        assertClose(one, two, 1e-4, `sgemm ${what}`);
      }
      // The attention's heads: [B, T, 3, H, dh] viewed per (sequence, head), q · kᵀ into [B, H, T, T]
      const [b, t, heads, dh] = [6, 53, 4, 16];
      const d = heads * dh;
      const [one, two] = onOneAndTwo(addon, b * t * 3 * d + b * heads * t * t + 64, (h) => {
        const [qkv, scores] = [h.alloc(b * t * 3 * d), h.alloc(b * heads * t * t)];
        addon.sgemmStrided(
          h.data,
          qkv,
          qkv + 4 * d,
          scores,
          t,
          t,
          dh,
          0,
          1,
          3 * d,
          3 * d,
          t,
          1,
          0,
          b,
          t * 3 * d,
          t * 3 * d,
          heads * t * t,
          heads,
          dh,
          dh,
          t * t,
        );
        return [[scores, b * heads * t * t]];
      });
      assertClose(one, two, 1e-4, 'sgemmStrided heads');
    });
  });
