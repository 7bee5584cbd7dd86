import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bandOverRuns } from '../../src/core/analysis/bands';

test('bandOverRuns: three seeds on the same steps give the mean, sample sd, min, max and N = 3 per step', () => {
  const band = bandOverRuns([
    { step: [10, 20, 30], value: [1, 2, 3] },
    { step: [10, 20, 30], value: [3, 4, 5] },
    { step: [10, 20, 30], value: [2, 6, 4] },
  ]);
  assert.deepEqual(band.step, [10, 20, 30]);
  assert.deepEqual(band.mean, [2, 4, 4]);
  assert.deepEqual(band.sd, [1, 2, 1]);
  assert.deepEqual(band.min, [1, 2, 3]);
  assert.deepEqual(band.max, [3, 6, 5]);
  assert.deepEqual(band.n, [3, 3, 3]);
});

test('bandOverRuns: a run that stopped early drops out where it has no value, and N says so (no interpolation)', () => {
  const band = bandOverRuns([
    { step: [1, 2, 3, 4], value: [4, 4, 4, 8] },
    { step: [1, 2, 3, 4], value: [2, null, 2, 10] },
    { step: [1, 2], value: [0, Number.NaN] },
  ]);
  assert.deepEqual(band.step, [1, 2, 3, 4]);
  assert.deepEqual(band.n, [3, 1, 2, 2]);
  assert.deepEqual(band.mean, [2, 4, 3, 9]);
  assert.equal(band.sd[0], 2);
  assert.equal(band.sd[1], 0, 'one value: no spread measured');
  assert.ok(Math.abs(band.sd[2]! - Math.SQRT2) < 1e-12);
});

test('bandOverRuns: steps logged by some runs only are merged in order; no run gives an empty band', () => {
  const band = bandOverRuns([
    { step: [5, 15], value: [1, 3] },
    { step: [10, 15], value: [2, 5] },
  ]);
  assert.deepEqual(band.step, [5, 10, 15]);
  assert.deepEqual(band.mean, [1, 2, 4]);
  assert.deepEqual(band.n, [1, 1, 2]);
  assert.deepEqual(bandOverRuns([]), { step: [], mean: [], sd: [], min: [], max: [], n: [] });
});
