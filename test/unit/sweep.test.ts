/**
 * Sweep expansion (src/core/config/sweep.ts): grid and random points, their names and configs, and
 * every way a sweep can be wrong, reported on the sweep field at fault.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../../src/core/errors';
import {
  bestPoint,
  drawFromRange,
  planSweep,
  planSweepText,
  pointNames,
  sweepIssues,
  type SweepPlan,
} from '../../src/core/config/sweep';
import type { ConfigIssue } from '../../src/core/config/load';
import { Rng } from '../../src/core/random';
import { tinyConfig, writeTrainingData } from './helpers/tiny-experiment';

let dir: string;
let file: string;
const NOW = new Date('2026-11-25T01:02:03Z');

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-sweep-'));
  writeTrainingData(path.join(dir, 'train.jsonl'));
  file = path.join(dir, 'tiny.peft.json');
});

after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The tiny config (hidden size 16, Houlsby bottleneck 4) with a sweep section, pretty-printed. */
function textWith(sweep: unknown, overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...tinyConfig(overrides), sweep }, null, 2);
}

function plan(sweep: unknown, overrides: Record<string, unknown> = {}): SweepPlan {
  return planSweepText(textWith(sweep, overrides), file, { now: NOW });
}

function errorOf(sweep: unknown, overrides: Record<string, unknown> = {}): ConfigError {
  try {
    plan(sweep, overrides);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a ConfigError');
}

function issuesOf(sweep: unknown): { text: string; issues: ConfigIssue[] } {
  const text = textWith(sweep);
  return { text, issues: sweepIssues(text, file) };
}

function underlined(text: string, issue: ConfigIssue): string {
  return text.slice(issue.offset, issue.offset + issue.length);
}

const BOTTLENECK_LR = {
  'method.bottleneck': { values: [2, 4] },
  'training.learningRate': { values: [1e-3, 3e-4, 1e-4] },
};

describe('grid sweeps', () => {
  test('are the cartesian product in a stable order, the last field varying fastest', () => {
    const p = plan({ method: 'grid', parameters: BOTTLENECK_LR });
    assert.equal(p.points.length, 6);
    assert.deepEqual(
      p.points.map((point) => point.values),
      [
        { 'method.bottleneck': 2, 'training.learningRate': 1e-3 },
        { 'method.bottleneck': 2, 'training.learningRate': 3e-4 },
        { 'method.bottleneck': 2, 'training.learningRate': 1e-4 },
        { 'method.bottleneck': 4, 'training.learningRate': 1e-3 },
        { 'method.bottleneck': 4, 'training.learningRate': 3e-4 },
        { 'method.bottleneck': 4, 'training.learningRate': 1e-4 },
      ],
    );
    assert.deepEqual(p.fields, ['method.bottleneck', 'training.learningRate']);
  });

  test('grid is the default method, and count keeps the first points', () => {
    const p = plan({ parameters: BOTTLENECK_LR, count: 4 });
    assert.equal(p.method, 'grid');
    assert.deepEqual(
      p.points.map((point) => point.index),
      [0, 1, 2, 3],
    );
    assert.deepEqual(p.points[3]!.values, { 'method.bottleneck': 4, 'training.learningRate': 1e-3 });
    assert.equal(
      plan({ parameters: BOTTLENECK_LR, count: 100 }).points.length,
      6,
      'a cap above the size changes nothing',
    );
  });

  test("each point's config is the base config with the point's values set, named after them", () => {
    const p = plan({ parameters: BOTTLENECK_LR });
    const point = p.points[4]!;
    assert.equal(point.name, 'tiny-bottleneck=4-lr=3e-4');
    assert.equal(point.config.name, point.name);
    assert.equal(point.config.method.type, 'houlsby');
    assert.equal((point.config.method as { bottleneck: number }).bottleneck, 4);
    assert.equal(point.config.training.learningRate, 3e-4);
    assert.equal(point.config.training.epochs, 2, 'other fields as in the base config');
    assert.equal(
      point.config.data.train,
      path.join(dir, 'train.jsonl'),
      'relative paths resolved against the config file',
    );
    assert.equal(point.config.sourceFile, file);
    assert.equal(point.config.sweep, undefined, 'a point is one run, not a sweep');
    assert.deepEqual(point.config.sweepPoint, {
      sweepId: 'tiny-sweep-20261125-010203',
      index: 4,
      total: 6,
      method: 'grid',
      baseName: 'tiny',
      values: { 'method.bottleneck': 4, 'training.learningRate': 3e-4 },
      metric: 'accuracy',
      goal: 'maximize',
    });
    assert.equal(p.id, 'tiny-sweep-20261125-010203');
  });

  test('a field the base config leaves out is created (training.earlyStopping.patience)', () => {
    const p = plan({ parameters: { 'training.earlyStopping.patience': { values: [1, 2] } } });
    assert.deepEqual(
      p.points.map((point) => point.config.training.earlyStopping),
      [
        { patience: 1, minDelta: 0 },
        { patience: 2, minDelta: 0 },
      ],
    );
  });

  test('the metric and goal default to the task metric and its direction, and can be set', () => {
    assert.deepEqual(
      [plan({ parameters: BOTTLENECK_LR }).metric, plan({ parameters: BOTTLENECK_LR }).goal],
      ['accuracy', 'maximize'],
    );
    const byLoss = plan({ parameters: BOTTLENECK_LR, metric: 'loss' });
    assert.deepEqual([byLoss.metric, byLoss.goal], ['loss', 'minimize']);
    assert.equal(byLoss.points[0]!.config.sweepPoint?.goal, 'minimize');
  });

  test('planSweep reads the file', () => {
    fs.writeFileSync(file, textWith({ parameters: { 'training.seed': { values: [1, 2, 3] } } }));
    assert.deepEqual(
      planSweep(file).points.map((p) => p.name),
      ['tiny-seed=1', 'tiny-seed=2', 'tiny-seed=3'],
    );
  });
});

describe('random sweeps', () => {
  const RANDOM = {
    method: 'random',
    count: 8,
    parameters: {
      'training.learningRate': { min: 1e-5, max: 1e-2, scale: 'log' },
      'method.bottleneck': { min: 1, max: 8, integer: true },
      'training.seed': { values: [1, 2, 3] },
    },
  };

  test('draw the same points with the same seed and other points with another', () => {
    const first = plan({ ...RANDOM, seed: 7 }).points.map((p) => p.values);
    const again = plan({ ...RANDOM, seed: 7 }).points.map((p) => p.values);
    const other = plan({ ...RANDOM, seed: 8 }).points.map((p) => p.values);
    assert.equal(first.length, 8);
    assert.deepEqual(again, first);
    assert.notDeepEqual(other, first);
    assert.equal(new Set(first.map((v) => JSON.stringify(v))).size, 8, 'the points are distinct');
  });

  test('keep ranges, integers and lists within bounds', () => {
    for (const values of plan({ ...RANDOM, count: 50 }).points.map((p) => p.values)) {
      const lr = values['training.learningRate'] as number;
      const bottleneck = values['method.bottleneck'] as number;
      assert.ok(lr >= 1e-5 && lr <= 1e-2, `learning rate ${lr}`);
      assert.ok(Number.isInteger(bottleneck) && bottleneck >= 1 && bottleneck <= 8, `bottleneck ${bottleneck}`);
      assert.ok([1, 2, 3].includes(values['training.seed'] as number));
    }
  });

  test('a log scale spreads draws evenly over the decades; a linear one does not', () => {
    const rng = new Rng(1);
    const log = Array.from({ length: 3000 }, () =>
      drawFromRange(rng, { min: 1e-5, max: 1e-2, scale: 'log', integer: false }),
    );
    for (const [lo, hi] of [
      [1e-5, 1e-4],
      [1e-4, 1e-3],
      [1e-3, 1e-2],
    ] as const) {
      const share = log.filter((x) => x >= lo && x < hi).length / log.length;
      assert.ok(share > 0.28 && share < 0.39, `share in [${lo}, ${hi}): ${share}`);
    }
    const linear = Array.from({ length: 3000 }, () =>
      drawFromRange(rng, { min: 1e-5, max: 1e-2, scale: 'linear', integer: false }),
    );
    assert.ok(linear.filter((x) => x < 1e-3).length / linear.length < 0.15);
  });

  test('integer ranges reach both ends, including on a log scale', () => {
    const rng = new Rng(3);
    const linear = new Set(
      Array.from({ length: 500 }, () => drawFromRange(rng, { min: 2, max: 5, scale: 'linear', integer: true })),
    );
    assert.deepEqual([...linear].sort(), [2, 3, 4, 5]);
    const log = Array.from({ length: 500 }, () => drawFromRange(rng, { min: 1, max: 64, scale: 'log', integer: true }));
    assert.ok(log.every((x) => Number.isInteger(x) && x >= 1 && x <= 64));
    assert.ok(log.includes(1) && log.includes(64));
  });

  test('drawn numbers keep 3 significant digits', () => {
    const rng = new Rng(5);
    for (let i = 0; i < 100; i++) {
      const x = drawFromRange(rng, { min: 1e-5, max: 1e-3, scale: 'log', integer: false });
      assert.equal(Number(x.toPrecision(3)), x);
    }
  });

  test('count defaults to 10; fewer distinct points than asked is a warning, not an error', () => {
    assert.equal(
      plan({ method: 'random', parameters: { 'training.learningRate': { min: 1e-4, max: 1e-3 } } }).points.length,
      10,
    );
    const small = plan({ method: 'random', count: 5, parameters: { 'training.seed': { values: [1, 2] } } });
    assert.equal(small.points.length, 2);
    assert.match(small.warnings[0]!.message, /only 2 distinct points exist, fewer than the 5 asked for/);
  });
});

describe('invalid sweeps are named errors on the sweep field at fault', () => {
  test('a value the field cannot take: a bottleneck as large as the hidden size', () => {
    const error = errorOf({ parameters: { 'method.bottleneck': { values: [2, 4, 16] } } });
    assert.equal(error.path, '/sweep/parameters/method.bottleneck/values/2');
    assert.match(
      error.detail,
      /^method\.bottleneck = 16: bottleneck 16 must be smaller than the model's hidden size 16/,
    );
    const { text, issues } = issuesOf({ parameters: { 'method.bottleneck': { values: [2, 4, 16] } } });
    assert.equal(issues.length, 1);
    assert.equal(underlined(text, issues[0]!), '16', 'the editor underlines the value');
    assert.equal(issues[0]!.source, 'semantic');
  });

  test('a value the schema refuses', () => {
    const error = errorOf({ parameters: { 'training.learningRate': { values: [1e-3, 5] } } });
    assert.equal(error.path, '/sweep/parameters/training.learningRate/values/1');
    assert.match(error.detail, /training\.learningRate = 5: must be <= 1/);
  });

  test('an unknown field path, on the parameter name, with a suggestion', () => {
    const error = errorOf({ parameters: { 'method.botleneck': { values: [2] } } });
    assert.equal(error.path, '/sweep/parameters/method.botleneck');
    assert.match(error.detail, /unknown field 'botleneck' \(did you mean 'bottleneck'\?\)/);
    const { text, issues } = issuesOf({ parameters: { 'method.botleneck': { values: [2] } } });
    assert.equal(underlined(text, issues[0]!), '"method.botleneck"');
  });

  test("a path into another method's fields", () => {
    const error = errorOf({ parameters: { 'method.experts': { values: [2, 4] } } });
    assert.equal(error.path, '/sweep/parameters/method.experts');
    assert.match(error.detail, /'experts' is not a field of method 'houlsby' \(only 'adamix' has it\)/);
  });

  test('a point whose combination is wrong is blamed on its value', () => {
    const error = errorOf({ parameters: { 'method.type': { values: ['houlsby', 'lora'] } } });
    assert.equal(error.path, '/sweep/parameters/method.type/values/1');
    assert.match(
      error.detail,
      /with method\.type=lora: \/method\/bottleneck: 'bottleneck' is not a field of method 'lora'/,
    );
  });

  test('a range in a grid', () => {
    const error = errorOf({ method: 'grid', parameters: { 'training.learningRate': { min: 1e-5, max: 1e-3 } } });
    assert.equal(error.path, '/sweep/parameters/training.learningRate/min');
    assert.match(error.detail, /needs random search/);
  });

  test('ranges that cannot be drawn from', () => {
    const random = (parameter: unknown) =>
      errorOf({ method: 'random', parameters: { 'training.learningRate': parameter } });
    assert.equal(random({ min: 1e-3, max: 1e-5 }).path, '/sweep/parameters/training.learningRate/max');
    assert.match(random({ min: 1e-3, max: 1e-5 }).detail, /must be greater than min/);
    assert.equal(random({ min: 0, max: 1e-3, scale: 'log' }).path, '/sweep/parameters/training.learningRate/min');
    assert.match(random({ min: 0.2, max: 0.8, integer: true }).detail, /no whole number lies between/);
    assert.match(random({ min: 1e-5 }).detail, /needs both 'min' and 'max' \(missing 'max'\)/);
    assert.match(random({ values: [1e-3], min: 1e-5 }).detail, /either 'values' or a range/);
    assert.match(random({}).detail, /needs 'values' \(a list\) or, for random search, a range/);
  });

  test('paths that are not dotted field paths, or that change the sweep', () => {
    assert.match(errorOf({ parameters: { bottleneck: { values: [2] } } }).detail, /is not a field path/);
    assert.match(errorOf({ parameters: { 'sweep.count': { values: [2] } } }).detail, /cannot change its own settings/);
    const intoValue = errorOf({ parameters: { 'name.x': { values: [2] } } });
    assert.equal(intoValue.path, '/sweep/parameters/name.x');
    assert.match(intoValue.detail, /'name' is "tiny", not an object/);
  });

  test('a metric that does not suit the task', () => {
    const error = errorOf({ parameters: BOTTLENECK_LR, metric: 'pearson' });
    assert.equal(error.path, '/sweep/metric');
    assert.match(error.detail, /'pearson' does not apply to classification/);
  });

  test('a grid larger than the limit without a count', () => {
    const values = Array.from({ length: 40 }, (_, i) => i);
    const error = errorOf({
      parameters: { 'training.seed': { values }, 'training.epochs': { values: values.map((v) => v + 1) } },
    });
    assert.equal(error.path, '/sweep/parameters');
    assert.match(error.detail, /the grid has 1600 points, more than 1000/);
    assert.equal(
      plan({
        parameters: { 'training.seed': { values }, 'training.epochs': { values: values.map((v) => v + 1) } },
        count: 3,
      }).points.length,
      3,
    );
  });

  test("schema problems of the sweep section are the config's own errors", () => {
    const error = errorOf({ method: 'bayes', parameters: BOTTLENECK_LR });
    assert.equal(error.path, '/sweep/method');
    assert.match(error.detail, /must be one of grid, random/);
    assert.deepEqual(
      sweepIssues(textWith({ method: 'bayes', parameters: BOTTLENECK_LR }), file),
      [],
      'the editor shows those through the schema',
    );
  });

  test('a problem of the base config is not blamed on the sweep', () => {
    const text = textWith(
      { parameters: { 'training.seed': { values: [1, 2] } } },
      { data: { train: 'missing.jsonl', maxLength: 32 } },
    );
    assert.deepEqual(sweepIssues(text, file), []);
    assert.throws(
      () => planSweepText(text, file),
      (err: ConfigError) => err.path === '/data/train',
    );
  });

  test('a config without a sweep has no sweep problems and no plan', () => {
    const text = JSON.stringify(tinyConfig());
    assert.deepEqual(sweepIssues(text, file), []);
    assert.throws(() => planSweepText(text, file), /no 'sweep' section/);
  });
});

describe('point names', () => {
  test('short keys, compact numbers, and characters safe in folder names', () => {
    assert.deepEqual(
      pointNames(
        'exp',
        ['method.bottleneck', 'training.learningRate'],
        [{ 'method.bottleneck': 16, 'training.learningRate': 1e-4 }],
      ),
      ['exp-bottleneck=16-lr=1e-4'],
    );
    assert.deepEqual(
      pointNames(
        'exp',
        ['training.learningRate'],
        [{ 'training.learningRate': 0.5 }, { 'training.learningRate': 0.00025 }],
      ),
      ['exp-lr=0.5', 'exp-lr=2.5e-4'],
    );
    assert.deepEqual(
      pointNames(
        'exp',
        ['method.sites', 'method.activation'],
        [{ 'method.sites': ['attention', 'ffn'], 'method.activation': 'gelu' }],
      ),
      ['exp-sites=attention+ffn-activation=gelu'],
    );
    assert.deepEqual(pointNames('exp', ['data.textField'], [{ 'data.textField': 'a b/c' }]), ['exp-textField=a_b_c']);
  });

  test('fields with the same last segment keep one more', () => {
    assert.deepEqual(
      pointNames('exp', ['training.seed', 'model.scratch.seed'], [{ 'training.seed': 1, 'model.scratch.seed': 2 }]),
      ['exp-training.seed=1-scratch.seed=2'],
    );
  });

  test('names stay unique and short', () => {
    assert.deepEqual(
      pointNames('exp', ['data.textField'], [{ 'data.textField': 'a/b' }, { 'data.textField': 'a b' }]),
      ['exp-textField=a_b', 'exp-textField=a_b-2'],
    );
    const long = 'x'.repeat(200);
    assert.deepEqual(pointNames('exp', ['data.textField'], [{ 'data.textField': long }]), ['exp-point1']);
  });
});

describe('the best point', () => {
  const results = [
    { name: 'a', metrics: { accuracy: 0.7, loss: 0.5 } },
    { name: 'b', metrics: { accuracy: 0.8, loss: 0.6 } },
    { name: 'c' },
    { name: 'd', metrics: { accuracy: 0.8, loss: 0.4 } },
    { name: 'e', metrics: { accuracy: NaN, loss: 0.1 } },
  ];

  test('is the highest or lowest metric, the earlier one on a tie, never one without the metric', () => {
    assert.equal(bestPoint(results, 'accuracy', 'maximize')?.name, 'b');
    assert.equal(bestPoint(results, 'loss', 'minimize')?.name, 'e');
    assert.equal(bestPoint(results, 'f1', 'maximize'), undefined);
  });
});
