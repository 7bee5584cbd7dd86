/** Seed groups, importance, run diff and the table writers (src/core/analysis/), on runs with known answers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseValue, summarize } from '../../src/core/analysis/stats';
import { groupRuns, varyingParameters, type AnalysisRun } from '../../src/core/analysis/groups';
import { parameterImportance, pearson, ranks, spearman } from '../../src/core/analysis/importance';
import { diffRuns } from '../../src/core/analysis/diff';
import { toCsv, toLatex, toMarkdown, type Table } from '../../src/core/analysis/tables';
import { Rng } from '../../src/core/random';

const close = (a: number | undefined, b: number, eps = 1e-9) =>
  assert.ok(a !== undefined && Math.abs(a - b) < eps, `${a} is not ${b}`);

test('summarize: sample sd (n - 1), min, max; one value has sd 0; nothing finite is undefined', () => {
  const s = summarize([1, 2, 3, 4])!;
  assert.equal(s.n, 4);
  close(s.mean, 2.5);
  close(s.sd, Math.sqrt(5 / 3)); // numpy.std([1,2,3,4], ddof=1) = 1.2909944
  assert.equal(s.min, 1);
  assert.equal(s.max, 4);
  assert.deepEqual(summarize([7]), { n: 1, mean: 7, sd: 0, min: 7, max: 7 });
  assert.equal(summarize([NaN]), undefined);
});

test('chooseValue: best follows the direction, min/max/last as named', () => {
  const series = [0.5, 0.9, 0.7];
  assert.equal(chooseValue(series, 'best', false), 0.9);
  assert.equal(chooseValue(series, 'best', true), 0.5);
  assert.equal(chooseValue(series, 'last', false), 0.7);
  assert.equal(chooseValue(series, 'min', false), 0.5);
  assert.equal(chooseValue(series, 'max', true), 0.9);
  assert.equal(chooseValue([], 'best', false), undefined);
});

function run(id: string, method: string, seed: number, lr: number, acc: number): AnalysisRun {
  return {
    id,
    params: { 'method.type': method, 'training.seed': seed, 'training.learningRate': lr, 'model.path': 'base' },
    metrics: { 'best:accuracy': acc },
  };
}

test('groupRuns: everything but the seed; mean ± sd, N, min, max per group', () => {
  const runs = [
    run('a1', 'houlsby', 1, 1e-3, 0.8),
    run('b1', 'adamix', 1, 1e-3, 0.84),
    run('a2', 'houlsby', 2, 1e-3, 0.82),
    run('b2', 'adamix', 2, 1e-3, 0.86),
    run('a3', 'houlsby', 3, 1e-3, 0.84),
    run('b3', 'adamix', 3, 1e-3, 0.85),
  ];
  assert.deepEqual(varyingParameters(runs).sort(), ['method.type', 'training.seed']);
  const groups = groupRuns(runs);
  assert.equal(groups.length, 2);
  const [h, a] = groups;
  assert.deepEqual(h!.key, { 'method.type': 'houlsby' });
  assert.deepEqual(h!.runs, ['a1', 'a2', 'a3']);
  const hs = h!.stats['best:accuracy']!;
  assert.equal(hs.n, 3);
  close(hs.mean, 0.82);
  close(hs.sd, 0.02);
  assert.equal(hs.min, 0.8);
  assert.equal(hs.max, 0.84);
  close(a!.stats['best:accuracy']!.mean, 0.85);
  close(a!.stats['best:accuracy']!.sd, 0.01);
  // chosen columns: all runs share the learning rate, so one group of six
  const byLr = groupRuns(runs, { by: ['training.learningRate'] });
  assert.equal(byLr.length, 1);
  assert.equal(byLr[0]!.stats['best:accuracy']!.n, 6);
});

test("groupRuns: a run without a metric does not count in that metric's N", () => {
  const runs = [run('a', 'lora', 1, 1e-3, 0.7), { ...run('b', 'lora', 2, 1e-3, 0), metrics: {} }];
  const [g] = groupRuns(runs);
  assert.equal(g!.runs.length, 2);
  assert.equal(g!.stats['best:accuracy']!.n, 1);
});

test('correlations: Pearson and Spearman on known data, ties get average ranks', () => {
  close(pearson([1, 2, 3], [2, 4, 6]), 1);
  close(pearson([1, 2, 3], [3, 2, 1]), -1);
  assert.equal(pearson([1, 1, 1], [1, 2, 3]), undefined);
  assert.deepEqual(ranks([10, 20, 20, 30]), [1, 2.5, 2.5, 4]);
  close(spearman([1, 2, 3, 4], [1, 8, 27, 64]), 1); // monotone but not linear
  assert.ok(pearson([1, 2, 3, 4], [1, 8, 27, 64])! < 0.99);
});

test('importance: the parameter the metric depends on ranks first, noise parameters near zero', () => {
  const rng = new Rng(7);
  const runs: AnalysisRun[] = [];
  const methods = ['houlsby', 'lora', 'adamix'];
  for (let i = 0; i < 60; i++) {
    const lr = [1e-4, 3e-4, 1e-3, 3e-3][i % 4]!;
    const bottleneck = [16, 32, 64][rng.int(3)]!;
    const method = methods[rng.int(3)]!;
    // accuracy rises with log10(lr) and nothing else (plus a little noise)
    const acc = 0.6 + 0.1 * (Math.log10(lr) + 4) + 0.005 * (rng.next() - 0.5);
    runs.push({ id: `r${i}`, params: { lr, bottleneck, method, seed: i }, metrics: { acc } });
  }
  const result = parameterImportance(runs, ['bottleneck', 'method', 'lr'], 'acc');
  assert.equal(result.runs, 60);
  assert.match(result.method, /permutation importance/);
  assert.equal(result.parameters[0]!.parameter, 'lr');
  assert.ok(result.parameters[0]!.share > 0.9, `lr's share is ${result.parameters[0]!.share}`);
  close(result.parameters[0]!.spearman, 1, 0.05);
  const method = result.parameters.find((p) => p.parameter === 'method')!;
  assert.equal(method.pearson, undefined, 'three unordered categories have no correlation');
  const bottleneck = result.parameters.find((p) => p.parameter === 'bottleneck')!;
  assert.ok(Math.abs(bottleneck.pearson!) < 0.3);
  // the same runs give the same numbers
  assert.deepEqual(parameterImportance(runs, ['bottleneck', 'method', 'lr'], 'acc'), result);
});

test('importance: a categorical effect (method) is found by the forest', () => {
  const runs: AnalysisRun[] = [];
  const effect: Record<string, number> = { houlsby: 0.8, lora: 0.7, adamix: 0.9 };
  const rng = new Rng(3);
  for (let i = 0; i < 45; i++) {
    const method = Object.keys(effect)[i % 3]!;
    runs.push({
      id: `r${i}`,
      params: { method, seed: i, bottleneck: [8, 16][rng.int(2)]! },
      metrics: { acc: effect[method]! + 0.01 * rng.next() },
    });
  }
  const result = parameterImportance(runs, ['bottleneck', 'method'], 'acc');
  assert.equal(result.parameters[0]!.parameter, 'method');
  assert.ok(result.parameters[0]!.share > 0.9);
});

test('diffRuns: only the differences, a missing parameter differs, metrics of every run', () => {
  const a: AnalysisRun = {
    id: 'a',
    params: { 'method.type': 'houlsby', 'method.bottleneck': 32, 'training.learningRate': 1e-3, 'training.seed': 1 },
    metrics: { 'best:accuracy': 0.8 },
  };
  const b: AnalysisRun = {
    id: 'b',
    params: { 'method.type': 'lora', 'method.rank': 8, 'training.learningRate': 1e-3, 'training.seed': 1 },
    metrics: { 'best:accuracy': 0.82, 'best:loss': 0.4 },
  };
  const d = diffRuns([a, b]);
  assert.deepEqual(
    d.parameters.map((p) => p.path),
    ['method.type', 'method.bottleneck', 'method.rank'],
  );
  assert.deepEqual(d.parameters[1]!.values, [32, undefined]);
  assert.equal(d.same, 2);
  assert.deepEqual(d.metrics, [
    { id: 'best:accuracy', values: [0.8, 0.82] },
    { id: 'best:loss', values: [undefined, 0.4] },
  ]);
  assert.throws(() => diffRuns([a]), /at least two runs/);
});

const table: Table = {
  caption: 'Accuracy over 3 seeds',
  columns: [{ label: 'method.type' }, { label: 'N' }, { label: 'best accuracy', digits: 2 }],
  rows: [
    ['houlsby', 3, { n: 3, mean: 82.0, sd: 2.0, min: 80, max: 84 }],
    ['lo|ra, "x"_1', 1, { n: 1, mean: 70.5, sd: 0, min: 70.5, max: 70.5 }],
  ],
};

test('toCsv: quoted fields, a summary as mean, sd and N columns with every digit', () => {
  assert.equal(
    toCsv(table),
    [
      'method.type,N,best accuracy mean,best accuracy sd,best accuracy N',
      'houlsby,3,82,2,3',
      '"lo|ra, ""x""_1",1,70.5,0,1',
      '',
    ].join('\r\n'),
  );
});

test('toMarkdown and toLatex: mean ± sd, escaped text, numbers right-aligned', () => {
  assert.equal(
    toMarkdown(table),
    [
      'Accuracy over 3 seeds',
      '',
      '| method.type | N | best accuracy |',
      '| --- | ---: | ---: |',
      '| houlsby | 3 | 82.00 ± 2.00 |',
      '| lo\\|ra, "x"_1 | 1 | 70.50 |',
      '',
    ].join('\n'),
  );
  const tex = toLatex(table);
  assert.match(tex, /\\begin\{tabular\}\{lrr\}/);
  assert.match(tex, /method.type & N & best accuracy \\\\/);
  assert.match(tex, /houlsby & 3 & \$82\.00 \\pm 2\.00\$ \\\\/);
  assert.match(tex, /lo\|ra, "x"\\_1 & 1 & \$70\.50\$ \\\\/);
  assert.match(tex, /\\caption\{Accuracy over 3 seeds\}/);
});
