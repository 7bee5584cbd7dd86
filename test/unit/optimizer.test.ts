/**
 * AdamW, the learning-rate schedule and gradient clipping, checked against a float64 transcription
 * of torch.optim.AdamW's single-tensor update (torch/optim/adamw.py, `_single_tensor_adamw`):
 *
 *   param *= 1 - lr * weight_decay
 *   exp_avg    = beta1 * exp_avg    + (1 - beta1) * grad
 *   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad^2
 *   denom = sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps
 *   param -= lr / (1 - beta1^step) * exp_avg / denom
 *
 * with `step` counted per parameter, and a parameter whose grad is None skipped entirely.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/core/tf';
import type { Param } from '../../src/core/model/params';
import { AdamW, clipScale, learningRateAt } from '../../src/core/train/optimizer';

before(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

let counter = 0;
function param(name: string, values: number[]): Param {
  return {
    name,
    value: tf.variable(tf.tensor1d(values), true, `${name}#opt-test-${counter++}`),
    trainable: true,
    group: 'adapter',
    linear: false,
  };
}

function valuesOf(p: Param): number[] {
  return Array.from(p.value.dataSync());
}

/** torch.optim.AdamW for one tensor, in float64. */
class ReferenceAdamW {
  m: number[];
  v: number[];
  step = 0;
  constructor(
    public p: number[],
    private readonly opts: { beta1: number; beta2: number; eps: number; weightDecay: number },
  ) {
    this.m = p.map(() => 0);
    this.v = p.map(() => 0);
  }

  update(grad: number[], lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.opts;
    this.step += 1;
    const bc1 = 1 - beta1 ** this.step;
    const bc2 = 1 - beta2 ** this.step;
    this.p = this.p.map((x, i) => {
      const decayed = x * (1 - lr * weightDecay);
      this.m[i] = beta1 * this.m[i]! + (1 - beta1) * grad[i]!;
      this.v[i] = beta2 * this.v[i]! + (1 - beta2) * grad[i]! * grad[i]!;
      const denom = Math.sqrt(this.v[i]!) / Math.sqrt(bc2) + eps;
      return decayed - (lr / bc1) * (this.m[i]! / denom);
    });
  }
}

function assertClose(actual: number[], expected: number[], tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((a, i) => {
    assert.ok(
      Math.abs(a - expected[i]!) <= tolerance * Math.max(1, Math.abs(expected[i]!)),
      `${what}[${i}]: ${a} vs ${expected[i]} (tolerance ${tolerance})`,
    );
  });
}

function grads(entries: [string, number[]][]): Map<string, Tensor> {
  return new Map(entries.map(([name, g]) => [name, tf.tensor1d(g)]));
}

function disposeAll(map: Map<string, Tensor>): void {
  for (const t of map.values()) t.dispose();
}

const START = [0.5, -1.25, 2, 0.03];
const GRADS = [
  [0.1, -0.2, 0.3, -0.05],
  [-0.4, 0.05, 0.2, 0.6],
  [0.25, 0.25, -0.1, 0.001],
];
const LRS = [0.01, 0.02, 0.005];

describe('AdamW', () => {
  test('step 1 by hand: decay first, then a step of lr * sign(grad) (bias-corrected moments are g and g^2)', () => {
    const p = param('layer.adapter.down.weight', [1, -2]);
    const optimizer = new AdamW({ weightDecay: 0.1 });
    const g = grads([[p.name, [0.5, -0.25]]]);
    optimizer.apply([p], g, 0.01);
    // p * (1 - 0.01 * 0.1) - 0.01 * g / (|g| + 1e-8)
    const expected = [1 * 0.999 - 0.01 * (0.5 / (0.5 + 1e-8)), -2 * 0.999 + 0.01 * (0.25 / (0.25 + 1e-8))];
    assertClose(valuesOf(p), expected, 1e-6, 'after step 1');
    assert.deepEqual(optimizer.exportState().steps, { [p.name]: 1 });
    disposeAll(g);
    optimizer.dispose();
    p.value.dispose();
  });

  test('three steps match torch.optim.AdamW (custom betas, eps 1e-8, weight decay, changing lr)', () => {
    const opts = { beta1: 0.8, beta2: 0.95, eps: 1e-8, weightDecay: 0.05 };
    const p = param('bert.encoder.layer.0.attention.output.adapter.up.weight', START);
    const optimizer = new AdamW({
      beta1: opts.beta1,
      beta2: opts.beta2,
      epsilon: opts.eps,
      weightDecay: opts.weightDecay,
    });
    const reference = new ReferenceAdamW([...START], opts);
    for (let step = 0; step < 3; step++) {
      const g = grads([[p.name, GRADS[step]!]]);
      optimizer.apply([p], g, LRS[step]!);
      reference.update(GRADS[step]!, LRS[step]!);
      assertClose(valuesOf(p), reference.p, 2e-6, `param after step ${step + 1}`);
      disposeAll(g);
    }
    const state = optimizer.exportState();
    assert.equal(state.steps[p.name], 3);
    const moments = state.moments.get(p.name)!;
    assert.deepEqual(moments.shape, [4]);
    assertClose(Array.from(moments.m), reference.m, 1e-6, 'exp_avg');
    assertClose(Array.from(moments.v), reference.v, 1e-6, 'exp_avg_sq');
    optimizer.dispose();
    p.value.dispose();
  });

  test('with the default betas (0.9, 0.999) three steps match too', () => {
    const opts = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
    const p = param('classifier.weight', START);
    const optimizer = new AdamW({ weightDecay: opts.weightDecay });
    const reference = new ReferenceAdamW([...START], opts);
    for (let step = 0; step < 3; step++) {
      const g = grads([[p.name, GRADS[step]!]]);
      optimizer.apply([p], g, LRS[step]!);
      reference.update(GRADS[step]!, LRS[step]!);
      disposeAll(g);
    }
    assertClose(valuesOf(p), reference.p, 2e-6, 'param after 3 steps');
    optimizer.dispose();
    p.value.dispose();
  });

  test('no weight decay on biases and LayerNorm weights', () => {
    const opts = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    const wd = 0.5; // large, so decay would be obvious
    const names = [
      'bert.encoder.layer.0.output.adapter.down.bias',
      'bert.encoder.layer.0.output.LayerNorm.weight',
      'bert.encoder.layer.0.attention.output.LayerNorm.bias',
      'classifier.bias',
    ];
    const decayed = param('bert.encoder.layer.0.output.adapter.down.weight', START);
    const plain = names.map((name) => param(name, START));
    const optimizer = new AdamW({ weightDecay: wd });
    const withDecay = new ReferenceAdamW([...START], { ...opts, weightDecay: wd });
    const withoutDecay = new ReferenceAdamW([...START], { ...opts, weightDecay: 0 });
    for (let step = 0; step < 3; step++) {
      const g = grads([decayed, ...plain].map((p) => [p.name, GRADS[step]!]));
      optimizer.apply([decayed, ...plain], g, LRS[step]!);
      withDecay.update(GRADS[step]!, LRS[step]!);
      withoutDecay.update(GRADS[step]!, LRS[step]!);
      disposeAll(g);
    }
    assertClose(valuesOf(decayed), withDecay.p, 2e-6, decayed.name);
    for (const p of plain) assertClose(valuesOf(p), withoutDecay.p, 2e-6, p.name);
    // The two references really differ, so the test can tell decay from no decay.
    assert.ok(Math.abs(withDecay.p[2]! - withoutDecay.p[2]!) > 1e-3);
    optimizer.dispose();
    for (const p of [decayed, ...plain]) p.value.dispose();
  });

  test('a parameter without a gradient is untouched and keeps its own step count (AdaMix experts)', () => {
    const opts = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
    const a = param('site.experts.0.down.weight', START);
    const b = param('site.experts.1.down.weight', START);
    const optimizer = new AdamW({ weightDecay: opts.weightDecay });
    const refA = new ReferenceAdamW([...START], opts);
    const refB = new ReferenceAdamW([...START], opts);
    // step 1: both; step 2: only a (b is not routed); step 3: both
    let g = grads([
      [a.name, GRADS[0]!],
      [b.name, GRADS[0]!],
    ]);
    optimizer.apply([a, b], g, LRS[0]!);
    refA.update(GRADS[0]!, LRS[0]!);
    refB.update(GRADS[0]!, LRS[0]!);
    disposeAll(g);
    const bAfterStep1 = valuesOf(b);

    g = grads([[a.name, GRADS[1]!]]);
    optimizer.apply([a, b], g, LRS[1]!);
    refA.update(GRADS[1]!, LRS[1]!);
    disposeAll(g);
    assert.deepEqual(valuesOf(b), bAfterStep1, 'no decay and no moment update without a gradient');
    assert.deepEqual(optimizer.exportState().steps, { [a.name]: 2, [b.name]: 1 });

    g = grads([
      [a.name, GRADS[2]!],
      [b.name, GRADS[2]!],
    ]);
    optimizer.apply([a, b], g, LRS[2]!);
    refA.update(GRADS[2]!, LRS[2]!);
    refB.update(GRADS[2]!, LRS[2]!); // b's second update: bias correction with step 2, not 3
    disposeAll(g);
    assert.deepEqual(optimizer.exportState().steps, { [a.name]: 3, [b.name]: 2 });
    assertClose(valuesOf(a), refA.p, 2e-6, a.name);
    assertClose(valuesOf(b), refB.p, 2e-6, b.name);
    // Had b used the global step (3), its bias correction and so its value would differ.
    const wrong = new ReferenceAdamW([...START], opts);
    wrong.update(GRADS[0]!, LRS[0]!);
    wrong.step = 2;
    wrong.update(GRADS[2]!, LRS[2]!);
    assert.ok(
      Math.abs(wrong.p[0]! - refB.p[0]!) > 1e-5,
      'the test distinguishes per-parameter from global step counts',
    );
    optimizer.dispose();
    a.value.dispose();
    b.value.dispose();
  });

  test('a parameter that never had a gradient gets no state at all', () => {
    const a = param('x.weight', START);
    const b = param('y.weight', START);
    const optimizer = new AdamW({ weightDecay: 0.01 });
    const g = grads([[a.name, GRADS[0]!]]);
    optimizer.apply([a, b], g, 0.01);
    disposeAll(g);
    const state = optimizer.exportState();
    assert.deepEqual(Object.keys(state.steps), [a.name]);
    assert.deepEqual([...state.moments.keys()], [a.name]);
    assert.deepEqual(
      valuesOf(b),
      START.map((x) => Math.fround(x)),
    );
    optimizer.dispose();
    a.value.dispose();
    b.value.dispose();
  });

  test('export then import into a fresh optimizer continues exactly like the original', () => {
    const opts = { weightDecay: 0.02, beta1: 0.85, beta2: 0.99 };
    const run = (split: boolean): { a: number[]; b: number[]; steps: Record<string, number> } => {
      const a = param('p.a.weight', START);
      const b = param(
        'p.b.bias',
        START.map((x) => -x),
      );
      let optimizer = new AdamW(opts);
      const schedule: [string, number[]][][] = [
        [
          [a.name, GRADS[0]!],
          [b.name, GRADS[1]!],
        ],
        [[a.name, GRADS[1]!]],
        [
          [a.name, GRADS[2]!],
          [b.name, GRADS[0]!],
        ],
        [[b.name, GRADS[2]!]],
      ];
      schedule.forEach((entries, step) => {
        if (split && step === 2) {
          const state = optimizer.exportState();
          // Through plain copies, as a checkpoint stores them.
          const copy = {
            steps: { ...state.steps },
            moments: new Map(
              [...state.moments].map(([k, m]) => [
                k,
                { m: Float32Array.from(m.m), v: Float32Array.from(m.v), shape: [...m.shape] },
              ]),
            ),
          };
          optimizer.dispose();
          optimizer = new AdamW(opts);
          optimizer.importState(copy, [a, b]);
        }
        const g = grads(entries);
        optimizer.apply([a, b], g, LRS[step % 3]!);
        disposeAll(g);
      });
      const result = { a: valuesOf(a), b: valuesOf(b), steps: optimizer.exportState().steps };
      optimizer.dispose();
      a.value.dispose();
      b.value.dispose();
      return result;
    };
    const straight = run(false);
    const resumed = run(true);
    assert.deepEqual(resumed, straight);
    assert.deepEqual(straight.steps, { 'p.a.weight': 3, 'p.b.bias': 3 });
  });

  test('importState replaces earlier state and skips moments of unknown parameters', () => {
    const a = param('known.weight', START);
    const optimizer = new AdamW({ weightDecay: 0 });
    const g = grads([[a.name, GRADS[0]!]]);
    optimizer.apply([a], g, 0.01);
    disposeAll(g);
    optimizer.importState(
      {
        steps: { 'gone.weight': 7 },
        moments: new Map([['gone.weight', { m: new Float32Array(4), v: new Float32Array(4), shape: [4] }]]),
      },
      [a],
    );
    assert.deepEqual(optimizer.exportState().steps, {});
    optimizer.dispose();
    a.value.dispose();
  });
});

describe('learningRateAt', () => {
  const total = 100;
  const warmup = 10;
  const peak = 0.002;
  const schedule = Array.from({ length: total }, (_, step) => learningRateAt(step, total, warmup, peak));

  test('the first step already has a positive rate', () => {
    assert.ok(schedule[0]! > 0);
    assert.ok(Math.abs(schedule[0]! - peak / warmup) < 1e-15);
  });

  test('rises linearly to the peak at the end of warm-up, then decays linearly', () => {
    for (let s = 1; s < warmup; s++) assert.ok(schedule[s]! > schedule[s - 1]!, `warm-up rises at ${s}`);
    assert.ok(Math.abs(schedule[warmup - 1]! - peak) < 1e-15, 'the last warm-up step reaches the peak');
    assert.ok(Math.abs(schedule[warmup]! - peak) < 1e-15, 'decay starts from the peak');
    assert.equal(Math.max(...schedule), schedule[warmup]);
    for (let s = warmup + 1; s < total; s++) assert.ok(schedule[s]! < schedule[s - 1]!, `decays at ${s}`);
    const slope = schedule[warmup + 1]! - schedule[warmup]!;
    for (let s = warmup + 2; s < total; s++)
      assert.ok(Math.abs(schedule[s]! - schedule[s - 1]! - slope) < 1e-12, `linear at ${s}`);
  });

  test('reaches 0 at the end and never goes negative', () => {
    assert.equal(learningRateAt(total, total, warmup, peak), 0);
    assert.equal(learningRateAt(total + 5, total, warmup, peak), 0);
    assert.ok(schedule[total - 1]! > 0, 'the last step still moves the weights');
    assert.ok(Math.abs(schedule[total - 1]! - peak / (total - warmup)) < 1e-15);
  });

  test('without warm-up the first step is the peak', () => {
    assert.equal(learningRateAt(0, 50, 0, peak), peak);
    assert.equal(learningRateAt(50, 50, 0, peak), 0);
  });

  test('with a decay span the rate holds at its peak until the last steps, then falls linearly to 0', () => {
    const held = Array.from({ length: total }, (_, step) => learningRateAt(step, total, warmup, peak, 20));
    for (let s = warmup; s < 80; s++) assert.equal(held[s], peak, `stable at ${s}`);
    for (let s = 81; s < total; s++) assert.ok(held[s]! < held[s - 1]!, `decays at ${s}`);
    assert.ok(Math.abs(held[90]! - peak / 2) < 1e-15, 'half-way through the decay is half the peak');
    assert.equal(learningRateAt(total, total, warmup, peak, 20), 0);
    assert.deepEqual(
      Array.from({ length: total }, (_, step) => learningRateAt(step, total, warmup, peak, 95)),
      schedule,
      'a decay longer than what follows warm-up starts when warm-up ends',
    );
  });
});

describe('clipScale and AdamW with a gradient scale', () => {
  test('the factor that brings the global norm down to the maximum, and the norm before clipping', () => {
    const g = new Map<string, Tensor>([
      ['a', tf.tensor1d([3, 0])],
      ['b', tf.tensor2d([[0, 4]])],
    ]); // global norm 5
    const { scale, norm } = clipScale(g, 1);
    assert.ok(Math.abs(norm - 5) < 1e-6, `norm before clipping ${norm}`);
    assert.ok(Math.abs(scale - 1 / (5 + 1e-6)) < 1e-9, `scale ${scale}`);
    disposeAll(g);
  });

  test('1 within the maximum, without a maximum, for a non-finite norm and for no gradients', () => {
    const small = new Map<string, Tensor>([
      ['a', tf.tensor1d([0.3, 0])],
      ['b', tf.tensor1d([0, 0.4])],
    ]); // norm 0.5
    const { scale, norm } = clipScale(small, 1);
    assert.equal(scale, 1);
    assert.ok(Math.abs(norm - 0.5) < 1e-6);
    assert.equal(clipScale(small, 0).scale, 1, 'maxNorm 0: no clipping');
    const inf = new Map<string, Tensor>([['a', tf.tensor1d([Infinity, 1])]]);
    assert.equal(clipScale(inf, 1).scale, 1, 'an infinite norm is left for the loss check to report');
    assert.deepEqual(clipScale(new Map(), 1), { scale: 1, norm: 0 });
    disposeAll(small);
    disposeAll(inf);
  });

  test('AdamW.apply with a scale moves the weights exactly as the scaled gradients would, and leaks nothing', () => {
    const run = (scaleInside: boolean): number[] => {
      const p = param('w.weight', [0.5, -1, 2, 0.25]);
      const before = tf.memory().numTensors;
      const opt = new AdamW({ weightDecay: 0.01 });
      for (let step = 0; step < 3; step++) {
        const g = tf.tensor1d([0.3 * (step + 1), -0.2, 0.7, -1.1]);
        const scaled = scaleInside ? g : tf.mul(g, 0.37);
        opt.apply([p], new Map([[p.name, scaled]]), 0.01, scaleInside ? 0.37 : 1);
        tf.dispose([g, scaled]);
      }
      const out = valuesOf(p);
      opt.dispose();
      assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
      p.value.dispose();
      return out;
    };
    const inside = run(true);
    assert.deepEqual(inside, run(false));
    const unscaled = (() => {
      const p = param('w.weight', [0.5, -1, 2, 0.25]);
      const opt = new AdamW({ weightDecay: 0.01 });
      const g = tf.tensor1d([0.3, -0.2, 0.7, -1.1]);
      opt.apply([p], new Map([[p.name, g]]), 0.01, 1);
      opt.apply([p], new Map([[p.name, g]]), 0.01, 1);
      opt.apply([p], new Map([[p.name, g]]), 0.01, 1);
      const out = valuesOf(p);
      tf.dispose([g, p.value]);
      opt.dispose();
      return out;
    })();
    assert.notDeepEqual(inside, unscaled, 'the scale is not ignored');
  });
});
