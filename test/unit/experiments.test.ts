/**
 * The Experiments table and run annotations without VS Code: annotations.json (read, write,
 * broken files), what the Runs model and tree make of it (live through the watcher), the rows
 * built from run folders, the table model (column diffing, column choice, sorting, filtering, the
 * sweep chart) and the message validation of src/protocol/experiments.ts.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ANNOTATIONS_FILE,
  parseAnnotations,
  readAnnotations,
  updateAnnotations,
} from '../../src/host/runs/annotations';
import { RunsModel } from '../../src/host/runs/runs-model';
import { runItem, runTooltip } from '../../src/host/runs/runs-present';
import { RunsWatcher } from '../../src/host/runs/runs-watcher';
import { experimentRow, flattenConfig } from '../../src/host/experiments/experiments-rows';
import { planSweepText } from '../../src/core/config/sweep';
import { experimentsHtml } from '../../src/host/experiments/experiments-html';
import {
  parseExperimentsState,
  parseExperimentsToHost,
  parseHostToExperiments,
  type ExperimentRow,
} from '../../src/protocol/experiments';
import {
  buildColumns,
  chooseColumn,
  compareValues,
  diffParameters,
  filterRows,
  nextSort,
  parseColumnFilter,
  sortRows,
  sweepChart,
  sweepIds,
  sweepParameters,
  visibleColumns,
  type Column,
} from '../../webview/model/experiments-table';
import { makeRun, writeJson } from './helpers/run-folders';
import { tinyConfig, writeTrainingData } from './helpers/tiny-experiment';
import { until } from './helpers/until';

const temporary: string[] = [];
after(() => {
  for (const dir of temporary) fs.rmSync(dir, { recursive: true, force: true });
});

function tmp(label: string): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `peft-exp-${label}-`)));
  temporary.push(dir);
  return dir;
}

/** A runs folder with one finished run; returns the model and the run folder. */
function oneRun(label: string): { runs: string; dir: string; model: RunsModel } {
  const root = tmp(label);
  const runs = path.join(root, 'runs');
  const dir = makeRun(runs, { name: 'r1', configFile: path.join(root, 'a.peft.json') });
  const model = new RunsModel({ isAlive: () => true });
  model.setRoots([runs]);
  return { runs, dir, model };
}

// ---- annotations.json ------------------------------------------------------------------------------

describe('annotations', () => {
  test('a run without the file has none, and no error', () => {
    const dir = tmp('none');
    assert.deepEqual(readAnnotations(dir), { value: {} });
  });

  test('update writes the file atomically and reads back; empty values remove a field', () => {
    const dir = tmp('write');
    assert.deepEqual(updateAnnotations(dir, { name: '  lr   1e-3 ', starred: true, note: 'first try\nsecond line' }), {
      name: 'lr 1e-3',
      starred: true,
      note: 'first try\nsecond line',
    });
    assert.deepEqual(readAnnotations(dir).value, { name: 'lr 1e-3', starred: true, note: 'first try\nsecond line' });
    assert.deepEqual(fs.readdirSync(dir), [ANNOTATIONS_FILE], 'no temporary file left behind');
    updateAnnotations(dir, { starred: false });
    assert.deepEqual(
      readAnnotations(dir).value,
      { name: 'lr 1e-3', note: 'first try\nsecond line' },
      'only the star changed',
    );
    updateAnnotations(dir, { name: '', note: '   ' });
    assert.deepEqual(readAnnotations(dir).value, {});
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, ANNOTATIONS_FILE), 'utf8')), {});
  });

  test('fields this version does not know are kept on update', () => {
    const dir = tmp('extra');
    writeJson(path.join(dir, ANNOTATIONS_FILE), { tags: ['baseline'], starred: true });
    updateAnnotations(dir, { note: 'n' });
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, ANNOTATIONS_FILE), 'utf8')), {
      tags: ['baseline'],
      starred: true,
      note: 'n',
    });
  });

  test('a corrupt file reads as no annotations with a message saying why and what to do; the next update replaces it', () => {
    const dir = tmp('corrupt');
    fs.writeFileSync(path.join(dir, ANNOTATIONS_FILE), '{"name": "half');
    const read = readAnnotations(dir);
    assert.deepEqual(read.value, {});
    assert.match(
      read.error!,
      /^annotations\.json is not valid JSON \(.+\): the run's name, star and note are ignored until it is fixed, or replaced by the next rename, star or note$/,
    );
    updateAnnotations(dir, { starred: true });
    assert.deepEqual(readAnnotations(dir), { value: { starred: true } });
  });

  test('wrong types are dropped one by one, with the reason', () => {
    assert.deepEqual(parseAnnotations([1]), {
      value: {},
      error: 'annotations.json is not a JSON object (found an array)',
    });
    const read = parseAnnotations({ name: 42, starred: 'yes', note: 'kept' });
    assert.deepEqual(read.value, { note: 'kept' });
    assert.equal(read.error, 'annotations.json: "name" is not a string; "starred" is not true or false (ignored)');
  });

  test('a run folder that does not exist is an error, not a new folder', () => {
    assert.throws(() => updateAnnotations(path.join(tmp('gone'), 'nope'), { starred: true }), /does not exist/);
  });
});

// ---- the Runs model and tree ---------------------------------------------------------------------------

describe('annotations in the Runs view', () => {
  test('the tree shows the name as label, a star and the folder in the description, the note in the tooltip', () => {
    const { dir, model } = oneRun('tree');
    const plain = runItem(model.run(dir)!);
    assert.equal(plain.label, 'r1');
    assert.match(plain.contextValue, /\bunstarred\b/);
    updateAnnotations(dir, { name: 'best lora', starred: true, note: 'use this one\nfor the paper' });
    model.applyChanges([path.join(dir, ANNOTATIONS_FILE)]);
    const run = model.run(dir)!;
    const item = runItem(run);
    assert.equal(item.label, 'best lora');
    assert.match(item.description, /^★ r1 · /);
    assert.match(item.contextValue, /\bstarred\b/);
    assert.doesNotMatch(item.contextValue, /\bunstarred\b/);
    const tip = runTooltip(run);
    assert.match(tip, /^\$\(star-full\) \*\*best lora\*\* — finished/);
    assert.match(tip, /Folder: r1/);
    assert.match(tip, /> \$\(note\) use this one {2}\n> for the paper/);
  });

  test('a corrupt annotations.json is a problem of the run, with its message', () => {
    const { dir, model } = oneRun('problem');
    fs.writeFileSync(path.join(dir, ANNOTATIONS_FILE), 'not json');
    model.applyChanges([path.join(dir, ANNOTATIONS_FILE)]);
    const run = model.run(dir)!;
    assert.deepEqual(run.annotations, {});
    assert.ok(
      run.problems.some((p) => p.startsWith('annotations.json is not valid JSON')),
      run.problems.join('\n'),
    );
    assert.equal(run.state, 'finished', 'the run itself is fine');
  });

  test('the watcher reports a change of annotations.json, and the model picks it up', async () => {
    const { runs, dir, model } = oneRun('watch');
    const watcher = new RunsWatcher((batch) => model.applyChanges([...batch.paths, ...batch.roots]), {
      debounceMs: 50,
    });
    try {
      watcher.setRoots([runs]);
      await watcher.ready();
      updateAnnotations(dir, { starred: true, note: 'live' });
      await until(() => model.run(dir)?.annotations.note === 'live', 'the note to reach the model', 10_000);
      updateAnnotations(dir, { name: 'renamed' });
      await until(() => model.run(dir)?.annotations.name === 'renamed', 'the name to reach the model', 10_000);
      assert.equal(model.run(dir)!.annotations.starred, true);
    } finally {
      await watcher.dispose();
    }
  });
});

// ---- rows -------------------------------------------------------------------------------------------------

describe('experiment rows', () => {
  test('a run becomes a row: flattened config, best/final metrics, params, speed, annotations', () => {
    const { dir, model } = oneRun('row');
    updateAnnotations(dir, { starred: true, note: 'n' });
    model.applyChanges([path.join(dir, ANNOTATIONS_FILE)]);
    const row = experimentRow(model.run(dir)!, model.placement(dir).value, Date.parse('2026-11-25T01:00:00Z'));
    assert.equal(row.folder, 'r1');
    assert.equal(row.name, 'r1');
    assert.equal(row.starred, true);
    assert.equal(row.note, 'n');
    assert.equal(row.state, 'finished');
    assert.equal(row.config, 'a.peft.json');
    assert.equal(row.metric, 'accuracy');
    assert.deepEqual(row.best, { accuracy: 0.75, loss: 0.5 });
    assert.deepEqual(row.final, { accuracy: 0.75, loss: 0.5 }, 'the last validation evaluation');
    assert.equal(row.trainableParams, 100_738);
    assert.equal(row.examplesPerSecond, 50);
    assert.equal(row.durationMs, 72_000);
    assert.equal(row.backend, 'cpu');
    assert.equal(row.params['method.type'], 'houlsby');
    assert.equal(row.params['method.sites'], '[attention, ffn]');
    assert.equal(row.params['training.batchSize'], 16);
    assert.ok(
      !('name' in row.params) && !('sourceFile' in row.params) && !('output.runsDir' in row.params),
      'not parameters',
    );
    assert.equal(row.sweep, undefined);
    assert.ok(parseHostToExperiments({ type: 'rows', rows: [row] }).ok, "the row passes the webview's validation");
  });

  test('flattening: nested objects to dotted paths, arrays to text, non-finite numbers to null', () => {
    assert.deepEqual(
      flattenConfig({
        name: 'x',
        model: { scratch: { layers: 2 } },
        method: { leaveOut: [], targets: ['query', 'value'] },
        training: { learningRate: Infinity, evalEvery: 'epoch' },
      }),
      {
        'model.scratch.layers': 2,
        'method.leaveOut': '[]',
        'method.targets': '[query, value]',
        'training.learningRate': null,
        'training.evalEvery': 'epoch',
      },
    );
  });

  test("a sweep point's run, its config.json as the sweep expansion writes it: sweep id, point values, metric and goal", () => {
    const root = tmp('sweep');
    writeTrainingData(path.join(root, 'train.jsonl'));
    const configFile = path.join(root, 'tiny.peft.json');
    // the real expansion of a 2x2 grid, ranked by accuracy but minimized (so the goal, not the metric's usual direction, picks the best)
    const sweep = {
      method: 'grid',
      parameters: { 'method.bottleneck': { values: [2, 4] }, 'training.learningRate': { values: [1e-3, 1e-4] } },
      metric: 'accuracy',
      goal: 'minimize',
    };
    const plan = planSweepText(JSON.stringify({ ...tinyConfig(), sweep }, null, 2), configFile, {
      now: new Date('2026-11-25T03:36:51Z'),
    });
    assert.equal(plan.points.length, 4);
    const runs = path.join(root, 'runs');
    const accuracy = [0.6, 0.8, 0.7, 0.6];
    const dirs = plan.points.map((point, i) => {
      const dir = makeRun(runs, {
        name: `${point.name}-20261125-03370${i}`,
        configFile,
        minute: i,
        checkpoints: { 10: accuracy[i]! },
      });
      writeJson(path.join(dir, 'config.json'), point.config); // what the point's worker writes: the point's resolved config
      return dir;
    });
    const model = new RunsModel({ isAlive: () => true });
    model.setRoots([runs]);
    const rows = dirs.map((dir) => experimentRow(model.run(dir)!));
    const written = JSON.parse(fs.readFileSync(path.join(dirs[3]!, 'config.json'), 'utf8'));
    assert.deepEqual(
      written.sweepPoint,
      {
        sweepId: 'tiny-sweep-20261125-033651',
        index: 3,
        total: 4,
        method: 'grid',
        values: { 'method.bottleneck': 4, 'training.learningRate': 1e-4 },
        baseName: 'tiny',
        metric: 'accuracy',
        goal: 'minimize',
      },
      'the shape this test reads is the one the sweep writes',
    );
    assert.equal(written.sweep, undefined, 'a point has no sweep section');
    assert.deepEqual(rows[3]!.sweep, {
      id: 'tiny-sweep-20261125-033651',
      index: 3,
      point: { 'method.bottleneck': 4, 'training.learningRate': 1e-4 },
      metric: 'accuracy',
      goal: 'minimize',
    });
    assert.deepEqual(
      rows.map((r) => r.sweep?.index),
      [0, 1, 2, 3],
    );
    for (const r of rows) {
      assert.ok(
        !Object.keys(r.params).some((k) => k === 'sweepPoint' || k.startsWith('sweepPoint.') || k.startsWith('sweep.')),
        `no sweep bookkeeping among the parameters: ${Object.keys(r.params).join(', ')}`,
      );
      assert.equal(r.params['method.bottleneck'], r.sweep!.point['method.bottleneck']);
    }
    assert.ok(parseHostToExperiments({ type: 'rows', rows }).ok, "the rows pass the webview's validation");

    // the table: the sweep column, the swept parameters, and the best point by the sweep's goal
    const columns = buildColumns(rows);
    assert.deepEqual(
      rows.map((r) => byId(columns, 'sweep').value(r)),
      Array(4).fill('tiny-sweep-20261125-033651'),
    );
    assert.deepEqual(sweepIds(rows), ['tiny-sweep-20261125-033651']);
    assert.deepEqual(sweepParameters(rows, 'tiny-sweep-20261125-033651'), [
      'method.bottleneck',
      'training.learningRate',
    ]);
    const reversed = [...rows].reverse();
    const chart = sweepChart(
      reversed,
      'tiny-sweep-20261125-033651',
      'training.learningRate',
      byId(columns, 'best:accuracy'),
    );
    assert.deepEqual(
      chart.points.map((p) => [p.x, p.y]),
      [
        [1e-4, 0.6],
        [1e-3, 0.7],
        [1e-4, 0.8],
        [1e-3, 0.6],
      ],
    );
    assert.equal(
      chart.points[chart.best!]!.dir,
      dirs[0],
      'minimized, and of the two tied points the earlier in the sweep',
    );
    const byLoss = sweepChart(
      rows,
      'tiny-sweep-20261125-033651',
      'method.bottleneck',
      byId(buildColumns(rows), 'best:loss'),
    );
    assert.equal(byLoss.best, 0, 'another metric: its own direction (every loss ties: the first point)');
  });

  test('a config with a sweep section trained on its own (Train), or a broken sweepPoint, is no sweep', () => {
    const { dir, model } = oneRun('no-sweep');
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    writeJson(path.join(dir, 'config.json'), {
      ...config,
      sweep: { method: 'grid', seed: 0, parameters: { 'method.bottleneck': { values: [2, 4] } } },
    });
    model.applyChanges([path.join(dir, 'config.json')]);
    let row = experimentRow(model.run(dir)!);
    assert.equal(row.sweep, undefined);
    assert.ok(!Object.keys(row.params).some((k) => k.startsWith('sweep')), 'the sweep section is no parameter');
    writeJson(path.join(dir, 'config.json'), {
      ...config,
      sweepPoint: { sweepId: 'half', values: { 'method.bottleneck': 2 } },
    });
    model.applyChanges([path.join(dir, 'config.json')]);
    row = experimentRow(model.run(dir)!);
    assert.equal(row.sweep, undefined, 'a sweepPoint without its index, total, metric and goal is not read');
    assert.ok(!Object.keys(row.params).some((k) => k.startsWith('sweepPoint')));
  });
});

// ---- the table model ------------------------------------------------------------------------------------

function row(i: number, fields: Partial<ExperimentRow> = {}): ExperimentRow {
  return {
    dir: `/runs/r${i}`,
    folder: `r${i}`,
    name: `r${i}`,
    starred: false,
    note: '',
    state: 'finished',
    stateText: 'finished',
    started: i * 1000,
    step: 10,
    lowerIsBetter: false,
    metric: 'accuracy',
    best: {},
    final: {},
    test: {},
    params: {},
    problems: [],
    ...fields,
  };
}

const byId = (columns: Column[], id: string) => {
  const c = columns.find((x) => x.id === id);
  assert.ok(c, `column ${id} among ${columns.map((x) => x.id).join(', ')}`);
  return c;
};

describe('columns', () => {
  const rows = [
    row(1, {
      params: { 'method.type': 'houlsby', 'method.bottleneck': 16, 'training.learningRate': 1e-3, 'training.seed': 42 },
      best: { accuracy: 0.8, loss: 0.4 },
      final: { accuracy: 0.78 },
    }),
    row(2, {
      params: { 'method.type': 'houlsby', 'method.bottleneck': 64, 'training.learningRate': 1e-3, 'training.seed': 42 },
      best: { accuracy: 0.7, loss: 0.5 },
      final: { accuracy: 0.7 },
    }),
    row(3, {
      params: { 'method.type': 'lora', 'method.rank': 8, 'training.learningRate': 1e-3, 'training.seed': 42 },
      best: { accuracy: 0.9, loss: 0.3 },
      final: { accuracy: 0.85 },
    }),
  ];

  test('parameters differ when a value differs or a run lacks them; the rest are constant', () => {
    const info = Object.fromEntries(diffParameters(rows).map((p) => [p.path, p]));
    assert.equal(info['method.type']!.constant, false);
    assert.equal(info['method.bottleneck']!.constant, false, 'LoRA has no bottleneck: that differs');
    assert.equal(info['method.rank']!.constant, false, 'first seen in a later run');
    assert.equal(info['training.learningRate']!.constant, true);
    assert.equal(info['training.seed']!.constant, true);
    assert.equal(info['method.type']!.numeric, false);
    assert.equal(info['method.bottleneck']!.numeric, true);
    assert.deepEqual(
      diffParameters([rows[0]!]).map((p) => p.constant),
      [true, true, true, true],
      'a single run: nothing differs',
    );
  });

  test('shown by default: run columns, differing parameters, the task metric best and final; constant ones on request', () => {
    const columns = buildColumns(rows);
    const shown = (ui = { shown: [] as string[], hidden: [] as string[], showConstant: false }) =>
      visibleColumns(columns, ui).map((c) => c.id);
    const ids = shown();
    for (const id of [
      'starred',
      'name',
      'state',
      'param:method.type',
      'param:method.bottleneck',
      'param:method.rank',
      'best:accuracy',
      'final:accuracy',
      'trainableParams',
      'duration',
      'speed',
      'backend',
      'note',
    ])
      assert.ok(ids.includes(id), id);
    for (const id of [
      'param:training.learningRate',
      'param:training.seed',
      'best:loss',
      'final:loss',
      'trainLoss',
      'folder',
    ])
      assert.ok(!ids.includes(id), id);
    assert.ok(!columns.some((c) => c.id === 'sweep'), 'no sweep column without sweeps');
    assert.ok(!columns.some((c) => c.id.startsWith('test:')), 'no test columns without test results');
    assert.ok(shown({ shown: [], hidden: [], showConstant: true }).includes('param:training.learningRate'));
    // the user's choices win over the defaults, both ways
    let ui = chooseColumn({ shown: [] as string[], hidden: [] as string[], showConstant: false }, 'best:loss', true);
    ui = chooseColumn(ui, 'note', false);
    assert.deepEqual(ui, { shown: ['best:loss'], hidden: ['note'], showConstant: false });
    const chosen = shown(ui);
    assert.ok(chosen.includes('best:loss') && !chosen.includes('note'));
    assert.deepEqual(chooseColumn(ui, 'note', true), { shown: ['best:loss', 'note'], hidden: [], showConstant: false });
    // column order: parameters before metrics, annotations at the ends
    assert.ok(ids.indexOf('param:method.type') < ids.indexOf('best:accuracy'));
    assert.equal(ids[0], 'starred');
    assert.equal(ids.at(-1), 'note');
  });

  test('kinds and formatting', () => {
    const columns = buildColumns(rows);
    assert.equal(byId(columns, 'param:method.bottleneck').kind, 'number');
    assert.equal(byId(columns, 'param:method.type').kind, 'text');
    assert.equal(byId(columns, 'best:accuracy').format(0.8), '0.8000');
    assert.equal(byId(columns, 'param:training.learningRate').format(1e-3), '0.001');
    assert.equal(byId(columns, 'trainableParams').format(100738), '100,738');
    assert.equal(byId(columns, 'duration').format(72_000), '1m 12s');
    assert.equal(byId(columns, 'starred').format(true), 'starred');
    assert.equal(byId(columns, 'best:accuracy').format(undefined), '');
    assert.equal(byId(columns, 'best:loss').lowerIsBetter, true);
  });
});

describe('sorting', () => {
  const rows = [
    row(1, { name: 'run-10', best: { accuracy: 0.7 }, params: { 'method.type': 'lora' } }),
    row(2, { name: 'run-2', best: {}, params: { 'method.type': 'houlsby' } }),
    row(3, { name: 'Run-1', best: { accuracy: 0.9 }, params: {} }),
    row(4, { name: 'run-3', best: { accuracy: 0.7 }, starred: true, params: { 'method.type': 'adamix' } }),
  ];
  const columns = buildColumns(rows);
  const names = (sorted: ExperimentRow[]) => sorted.map((r) => r.name);

  test('no sort: newest first', () => {
    assert.deepEqual(names(sortRows(rows, columns, undefined)), ['run-3', 'Run-1', 'run-2', 'run-10']);
  });

  test('numbers by value, missing last in both directions, ties in the default order', () => {
    assert.deepEqual(names(sortRows(rows, columns, { column: 'best:accuracy', descending: true })), [
      'Run-1',
      'run-3',
      'run-10',
      'run-2',
    ]);
    assert.deepEqual(names(sortRows(rows, columns, { column: 'best:accuracy', descending: false })), [
      'run-3',
      'run-10',
      'Run-1',
      'run-2',
    ]);
  });

  test('text naturally and case-insensitively (run-2 before run-10); missing text last', () => {
    assert.deepEqual(names(sortRows(rows, columns, { column: 'name', descending: false })), [
      'Run-1',
      'run-2',
      'run-3',
      'run-10',
    ]);
    assert.deepEqual(names(sortRows(rows, columns, { column: 'param:method.type', descending: false })), [
      'run-3',
      'run-2',
      'run-10',
      'Run-1',
    ]);
    assert.deepEqual(names(sortRows(rows, columns, { column: 'param:method.type', descending: true })), [
      'run-10',
      'run-2',
      'run-3',
      'Run-1',
    ]);
  });

  test('a header click sorts a metric best first (by its direction), the star column starred first, and reverses on a second click', () => {
    const acc = byId(columns, 'best:accuracy');
    assert.deepEqual(nextSort(undefined, acc), { column: 'best:accuracy', descending: true });
    assert.deepEqual(nextSort({ column: 'best:accuracy', descending: true }, acc), {
      column: 'best:accuracy',
      descending: false,
    });
    assert.deepEqual(nextSort(undefined, byId(buildColumns([row(1, { best: { loss: 1 } })]), 'best:loss')), {
      column: 'best:loss',
      descending: false,
    });
    assert.deepEqual(nextSort({ column: 'best:accuracy', descending: false }, byId(columns, 'name')), {
      column: 'name',
      descending: false,
    });
    assert.equal(sortRows(rows, columns, nextSort(undefined, byId(columns, 'starred')))[0]!.name, 'run-3');
  });

  test('mixed types: numbers, then booleans, then text', () => {
    assert.ok(compareValues(5, 'a') < 0 && compareValues(true, 'a') < 0 && compareValues(1, true) < 0);
    assert.ok(compareValues(false, true) < 0);
  });
});

describe('filtering', () => {
  const rows = [
    row(1, {
      name: 'alpha',
      note: 'promising',
      best: { accuracy: 0.81 },
      params: { 'method.type': 'lora', 'method.rank': 8 },
    }),
    row(2, { name: 'beta', best: { accuracy: 0.65 }, params: { 'method.type': 'houlsby', 'method.bottleneck': 16 } }),
    row(3, { name: 'gamma', best: {}, params: { 'method.type': 'houlsby', 'method.bottleneck': 64 } }),
  ];
  const columns = buildColumns(rows);
  const shown = visibleColumns(columns, { shown: [], hidden: [], showConstant: false });
  const names = (xs: ExperimentRow[]) => xs.map((r) => r.name);

  test('the text filter: every word must appear in some shown cell (or the folder, or the note)', () => {
    assert.deepEqual(names(filterRows(rows, shown, 'houlsby', {})), ['beta', 'gamma']);
    assert.deepEqual(names(filterRows(rows, shown, 'HOULSBY 64', {})), ['gamma']);
    assert.deepEqual(names(filterRows(rows, shown, 'promising', {})), ['alpha']);
    assert.deepEqual(names(filterRows(rows, shown, 'r2', {})), ['beta'], 'the folder name');
    assert.deepEqual(names(filterRows(rows, shown, '', {})), ['alpha', 'beta', 'gamma']);
    assert.deepEqual(names(filterRows(rows, shown, 'nothing-like-this', {})), []);
  });

  test('column filters: comparisons, ranges, negation and text; a run without a value fails a comparison', () => {
    assert.deepEqual(names(filterRows(rows, columns, '', { 'best:accuracy': '>0.7' })), ['alpha']);
    assert.deepEqual(names(filterRows(rows, columns, '', { 'best:accuracy': '<= 0.81' })), ['alpha', 'beta']);
    assert.deepEqual(names(filterRows(rows, columns, '', { 'param:method.bottleneck': '10..20' })), ['beta']);
    assert.deepEqual(names(filterRows(rows, columns, '', { 'param:method.type': '!lora' })), ['beta', 'gamma']);
    assert.deepEqual(
      names(filterRows(rows, columns, '', { 'param:method.type': 'hou', 'param:method.bottleneck': '=64' })),
      ['gamma'],
    );
    assert.deepEqual(
      names(filterRows(rows, columns, '', { 'no-such-column': 'x', name: '  ' })),
      ['alpha', 'beta', 'gamma'],
      'unknown columns and blank filters are ignored',
    );
    assert.equal(parseColumnFilter(''), undefined);
    assert.equal(parseColumnFilter('>1e-3')!(0.01, ''), true);
    assert.equal(parseColumnFilter('!=4')!(4, '4'), false);
  });
});

describe('sweeps', () => {
  const rows = [
    row(1, {
      sweep: { id: 'lr', point: { 'training.learningRate': 1e-4 } },
      params: { 'training.learningRate': 1e-4, 'method.type': 'lora' },
      best: { accuracy: 0.6 },
    }),
    row(2, {
      sweep: { id: 'lr', point: { 'training.learningRate': 1e-3 } },
      params: { 'training.learningRate': 1e-3, 'method.type': 'lora' },
      best: { accuracy: 0.8 },
    }),
    row(3, {
      sweep: { id: 'lr', point: { 'training.learningRate': 1e-2 } },
      params: { 'training.learningRate': 1e-2, 'method.type': 'lora' },
      best: {},
    }),
    row(4, {
      sweep: { id: 'methods', point: {} },
      params: { 'training.learningRate': 1e-3, 'method.type': 'houlsby' },
      best: { accuracy: 0.7 },
    }),
    row(5, {
      sweep: { id: 'methods', point: {} },
      params: { 'training.learningRate': 1e-3, 'method.type': 'adamix' },
      best: { accuracy: 0.75 },
    }),
    row(6, { params: { 'training.learningRate': 1e-3, 'method.type': 'full' }, best: { accuracy: 0.9 } }),
  ];
  const columns = buildColumns(rows);

  test('a sweep column appears with sweeps; the chart plots a swept parameter against a metric', () => {
    assert.ok(columns.some((c) => c.id === 'sweep' && c.shownByDefault));
    assert.deepEqual(sweepIds(rows), ['lr', 'methods']);
    assert.deepEqual(sweepParameters(rows, 'lr'), ['training.learningRate']);
    const chart = sweepChart(rows, 'lr', 'training.learningRate', byId(columns, 'best:accuracy'));
    assert.deepEqual(
      chart.points.map((p) => [p.x, p.y]),
      [
        [1e-4, 0.6],
        [1e-3, 0.8],
      ],
    );
    assert.equal(chart.missing, 1, 'the run without a metric yet');
    assert.equal(chart.categories, undefined);
  });

  test('a text parameter is plotted by category', () => {
    assert.deepEqual(sweepParameters(rows, 'methods'), ['method.type']);
    const chart = sweepChart(rows, 'methods', 'method.type', byId(columns, 'best:accuracy'));
    assert.deepEqual(chart.categories, ['adamix', 'houlsby']);
    assert.deepEqual(
      chart.points.map((p) => [p.xText, p.x, p.y]),
      [
        ['houlsby', 1, 0.7],
        ['adamix', 0, 0.75],
      ],
    );
  });
});

// ---- protocol and page ----------------------------------------------------------------------------------

describe('messages', () => {
  test('the host accepts only well-formed webview messages, with only their known fields', () => {
    assert.deepEqual(parseExperimentsToHost({ type: 'ready', extra: 1 }), { ok: true, value: { type: 'ready' } });
    assert.deepEqual(parseExperimentsToHost({ type: 'openDashboard', dirs: ['/a', '/b'] }), {
      ok: true,
      value: { type: 'openDashboard', dirs: ['/a', '/b'] },
    });
    assert.deepEqual(parseExperimentsToHost({ type: 'annotate', dir: '/a', starred: true, evil: 'x' }), {
      ok: true,
      value: { type: 'annotate', dir: '/a', name: undefined, starred: true, note: undefined },
    });
    const bad: [unknown, RegExp][] = [
      [null, /message: expected an object, got null/],
      [{ type: 'openDashboard', dirs: [] }, /at least one run folder/],
      [{ type: 'openDashboard', dirs: ['/a', 3] }, /openDashboard\.dirs\[1\]: expected a string, got number/],
      [{ type: 'annotate', dir: '/a' }, /expected a name, starred or note/],
      [{ type: 'annotate', dir: '/a', starred: 'yes' }, /annotate\.starred: expected a boolean/],
      [
        { type: 'delete', dir: '/a' },
        /message\.type: expected ready, openDashboard, annotate, openConfig, webviewError, analyze, diff, exportTable or exportChart, got "delete"/,
      ],
    ];
    for (const [message, error] of bad) {
      const parsed = parseExperimentsToHost(message);
      assert.equal(parsed.ok, false, JSON.stringify(message));
      if (!parsed.ok) assert.match(parsed.error, error);
    }
  });

  test('the webview rejects a malformed row, naming the field', () => {
    const good = row(1, { params: { a: 1, b: 'x', c: null, d: true } });
    assert.ok(parseHostToExperiments({ type: 'rowsChanged', rows: [good], removed: ['/gone'] }).ok);
    const parsed = parseHostToExperiments({ type: 'rows', rows: [good, { ...good, params: { a: [1] } }] });
    assert.equal(parsed.ok, false);
    if (!parsed.ok)
      assert.match(
        parsed.error,
        /rows\.rows\[1\]\.params\.a: expected a string, finite number, boolean or null, got an array/,
      );
    const state = parseHostToExperiments({ type: 'rows', rows: [{ ...good, state: 'exploded' }] });
    assert.equal(state.ok, false);
    const goal = parseHostToExperiments({
      type: 'rows',
      rows: [{ ...good, sweep: { id: 's', index: 0, point: {}, metric: 'accuracy', goal: 'up' } }],
    });
    assert.equal(goal.ok, false);
    if (!goal.ok) assert.match(goal.error, /rows\.rows\[0\]\.sweep\.goal: expected maximize or minimize/);
  });

  test('saved webview state: usable fields kept, anything else back to the defaults', () => {
    assert.deepEqual(parseExperimentsState(undefined).ui, {
      sort: undefined,
      filter: '',
      columnFilters: {},
      shown: [],
      hidden: [],
      showConstant: false,
      sweep: undefined,
    });
    const ui = parseExperimentsState({
      version: 1,
      ui: {
        sort: { column: 'best:accuracy', descending: true },
        filter: 'lora',
        columnFilters: { a: '>1', b: 3 },
        shown: ['x', 2],
        hidden: 'no',
        showConstant: true,
        sweep: { id: 's', x: 1 },
      },
    }).ui;
    assert.deepEqual(ui, {
      sort: { column: 'best:accuracy', descending: true },
      filter: 'lora',
      columnFilters: { a: '>1' },
      shown: ['x'],
      hidden: [],
      showConstant: true,
      sweep: { id: 's', x: undefined, y: undefined, closed: false },
    });
  });

  test('the page: a nonce-only script policy, no inline styles, resources from the webview only', () => {
    const html = experimentsHtml(
      { cspSource: 'vscode-webview://abc', script: 's.js', style: 's.css', codicons: 'c.css' },
      'NONCE123',
    );
    assert.match(html, /script-src 'nonce-NONCE123'/);
    assert.match(html, /default-src 'none'/);
    assert.doesNotMatch(html, /unsafe-inline|unsafe-eval/);
    assert.match(html, /<script nonce="NONCE123" src="s\.js"><\/script>/);
  });
});
