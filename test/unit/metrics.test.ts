import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  accuracy,
  computeMetrics,
  f1,
  isBetter,
  lowerIsBetter,
  matthewsCorrelation,
  meanSquaredError,
  pearson,
  spearman,
} from '../../src/core/train/metrics';

function assertClose(actual: number, expected: number, tolerance = 1e-12): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `expected ${expected}, got ${actual}`);
}

describe('accuracy', () => {
  it('is the fraction of exact matches', () => {
    assert.equal(accuracy([0, 1, 1, 0], [0, 1, 0, 0]), 0.75);
    assert.equal(accuracy([2], [2]), 1);
  });

  it('is NaN for an empty set and throws on mismatched lengths', () => {
    assert.ok(Number.isNaN(accuracy([], [])));
    assert.throws(() => accuracy([1], [1, 0]), RangeError);
  });
});

describe('f1', () => {
  it('binary: F1 of class 1 (hand-computed: TP 2, FP 1, FN 1 gives 2/3)', () => {
    assertClose(f1([1, 1, 0, 1, 0], [1, 0, 0, 1, 1], 2), 2 / 3);
  });

  it('binary: 0 when class 1 never occurs (zero_division = 0), 1 when perfect', () => {
    assert.equal(f1([0, 0], [0, 0], 2), 0);
    assert.equal(f1([1, 0, 1], [1, 0, 1], 2), 1);
  });

  it('multiclass: macro-F1, scikit-learn documentation example (0.2666...)', () => {
    // f1_score([0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 0, 1], average='macro'); per class [0.8, 0, 0]
    assertClose(f1([0, 2, 1, 0, 0, 1], [0, 1, 2, 0, 1, 2], 3), 0.8 / 3);
  });

  it('multiclass: averages only over classes present in gold or predictions', () => {
    // Class 3 never occurs, so the macro average is over classes 0..2 (all perfect).
    assert.equal(f1([0, 1, 2], [0, 1, 2], 4), 1);
  });

  it('rejects ids outside 0..numClasses-1 and fewer than 2 classes', () => {
    assert.throws(() => f1([0, 2], [0, 1], 2), /prediction 2/);
    assert.throws(() => f1([0, 1], [0, -1], 2), /gold label -1/);
    assert.throws(() => f1([0.5], [0], 2), RangeError);
    assert.throws(() => f1([0], [0], 1), /numClasses/);
  });
});

describe('matthewsCorrelation', () => {
  it('binary: scikit-learn documentation example gives -1/3', () => {
    // matthews_corrcoef([+1, +1, +1, -1], [+1, -1, +1, +1]) with -1 -> 0, +1 -> 1
    assertClose(matthewsCorrelation([1, 0, 1, 1], [1, 1, 1, 0], 2), -1 / 3);
  });

  it('binary: +1 for perfect, -1 for inverted predictions', () => {
    assert.equal(matthewsCorrelation([0, 1, 1, 0], [0, 1, 1, 0], 2), 1);
    assert.equal(matthewsCorrelation([1, 0, 0, 1], [0, 1, 1, 0], 2), -1);
  });

  it('is 0 when undefined: all predictions, or all gold labels, in one class', () => {
    assert.equal(matthewsCorrelation([1, 1, 1, 1], [0, 1, 0, 1], 2), 0);
    assert.equal(matthewsCorrelation([0, 1, 0, 1], [1, 1, 1, 1], 2), 0);
  });

  it('multiclass (Gorodkin R_K): hand-computed 19/42', () => {
    // 5 of 8 correct; gold counts [2,3,3], predicted counts [3,3,2]:
    // (5*8 - 21) / sqrt((64 - 22) * (64 - 22)) = 19/42
    assertClose(matthewsCorrelation([0, 1, 2, 1, 1, 0, 0, 2], [0, 1, 2, 2, 1, 0, 2, 1], 3), 19 / 42);
  });

  it('multiclass: exactly 0 for the scikit-learn f1 example, where agreement equals chance', () => {
    assert.equal(matthewsCorrelation([0, 2, 1, 0, 0, 1], [0, 1, 2, 0, 1, 2], 3), 0);
  });
});

describe('pearson', () => {
  it('matches the SciPy documentation example (-0.8285...)', () => {
    assertClose(pearson([1, 2, 3, 4, 5, 6, 7], [10, 9, 2.5, 6, 4, 3, 2]), -0.828503883588428);
  });

  it('is exactly ±1 for linear relations and 0 when one side is constant', () => {
    assert.equal(pearson([1, 2, 3], [2, 4, 6]), 1);
    assert.equal(pearson([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]), -1);
    assert.equal(pearson([1, 2, 3], [5, 5, 5]), 0);
    assert.equal(pearson([4], [2]), 0);
  });

  it('is NaN for an empty set or NaN values', () => {
    assert.ok(Number.isNaN(pearson([], [])));
    assert.ok(Number.isNaN(pearson([1, NaN, 3], [1, 2, 3])));
  });
});

describe('spearman', () => {
  it('matches the SciPy documentation example with a tie (0.8207...)', () => {
    assertClose(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 0.8207826816681233);
  });

  it('uses average ranks for ties on both sides', () => {
    // ranks x = [1, 2.5, 2.5, 4], y = [1.5, 1.5, 3, 4], both with mean 2.5:
    // deviations x [-1.5, 0, 0, 1.5], y [-1, -1, 0.5, 1.5]; sxy = 3.75, sxx = syy = 4.5
    assertClose(spearman([10, 20, 20, 30], [7, 7, 8, 9]), 3.75 / 4.5);
  });

  it('is 1 for any monotonic relation, unlike pearson', () => {
    const x = [1, 2, 3, 4, 5];
    const y = x.map((v) => Math.exp(v));
    assertClose(spearman(x, y), 1);
    assert.ok(pearson(x, y) < 0.95);
  });

  it('is NaN rather than a made-up value when a prediction is NaN', () => {
    assert.ok(Number.isNaN(spearman([1, NaN, 3], [1, 2, 3])));
  });
});

describe('meanSquaredError', () => {
  it('averages squared differences', () => {
    assert.equal(meanSquaredError([1, 2, 3], [1, 4, 0]), (0 + 4 + 9) / 3);
  });
});

describe('computeMetrics', () => {
  it('gives accuracy, f1 and mcc for classification', () => {
    const metrics = computeMetrics('classification', [1, 0, 1, 1], [1, 1, 1, 0], 2);
    assert.deepEqual(Object.keys(metrics).sort(), ['accuracy', 'f1', 'mcc']);
    assert.equal(metrics.accuracy, 0.5);
    assertClose(metrics.f1, 2 / 3);
    assertClose(metrics.mcc, -1 / 3);
  });

  it('gives pearson, spearman and mse for regression', () => {
    const metrics = computeMetrics('regression', [1, 2, 3], [1, 2, 4], 1);
    assert.deepEqual(Object.keys(metrics).sort(), ['mse', 'pearson', 'spearman']);
    assert.equal(metrics.spearman, 1);
    assert.equal(metrics.mse, 1 / 3);
    assert.ok(metrics.pearson > 0.98 && metrics.pearson < 1);
  });
});

describe('isBetter', () => {
  it('prefers lower loss and mse, higher everything else, and never prefers ties', () => {
    assert.ok(isBetter('mse', 0.1, 0.2));
    assert.ok(isBetter('loss', 0.1, 0.2));
    assert.ok(isBetter('eval_loss', 0.1, 0.2));
    assert.ok(isBetter('accuracy', 0.9, 0.8));
    assert.ok(isBetter('mcc', 0.1, -0.5));
    assert.ok(!isBetter('f1', 0.5, 0.5));
    assert.ok(!isBetter('mse', 0.5, 0.5));
  });

  it('treats NaN as the worst value', () => {
    assert.ok(!isBetter('accuracy', NaN, 0.1));
    assert.ok(isBetter('accuracy', 0.1, NaN));
    assert.ok(isBetter('loss', 10, NaN));
    assert.ok(!isBetter('loss', NaN, NaN));
  });

  it('only treats names ending in loss or mse as lower-is-better', () => {
    assert.ok(lowerIsBetter('val-loss'));
    assert.ok(lowerIsBetter('train/loss'));
    assert.ok(!lowerIsBetter('spearman'));
    assert.ok(!lowerIsBetter('glossary'));
  });
});
