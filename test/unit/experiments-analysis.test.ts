/**
 * The Experiments table's analysis on real run folders without VS Code: seed groups of a 3-seed x
 * 2-method set (mean ± sd, N, min, max), the value choice, importance, the diff, the table exports,
 * the parallel coordinates' axes and brushing, and the new messages' validation.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { analyze, diffMessage, exportTable, writeTable } from '../../src/host/experiments/experiments-analysis';
import { parseExperimentsToHost, parseHostToExperiments } from '../../src/protocol/experiments';
import { buildColumns } from '../../webview/model/experiments-table';
import { brushRows, MISSING_POSITION, parallelAxes } from '../../webview/model/parallel';
import { distinguishingColumns, groupLabel } from '../../webview/model/group-label';
import { seedGrid as makeSeedGrid } from './helpers/seed-grid';

const temporary: string[] = [];
after(() => {
  for (const dir of temporary) fs.rmSync(dir, { recursive: true, force: true });
});

function seedGrid() {
  const grid = makeSeedGrid();
  temporary.push(grid.root);
  return grid;
}

const close = (a: number | undefined, b: number) =>
  assert.ok(a !== undefined && Math.abs(a - b) < 1e-9, `${a} is not ${b}`);

test('analyze: 3 seeds x 2 methods make two groups with mean ± sd, N, min and max', () => {
  const { source } = seedGrid();
  const a = analyze(source, { request: 7, choice: 'best', metric: 'best:accuracy' });
  assert.equal(a.request, 7);
  assert.ok(a.groupBy.includes('method.type'));
  assert.ok(!a.groupBy.includes('training.seed'), 'the seed is not a grouping parameter');
  assert.equal(a.groups.length, 2);
  const houlsby = a.groups.find((g) => g.key['method.type'] === 'houlsby')!;
  const s = houlsby.stats['best:accuracy']!;
  assert.equal(s.n, 3);
  close(s.mean, 0.82);
  close(s.sd, 0.02);
  assert.equal(s.min, 0.8);
  assert.equal(s.max, 0.84);
  close(houlsby.stats['test:accuracy']!.mean, 0.77);
  assert.equal(a.metrics[0], 'best:accuracy', 'the task metric first');
  assert.ok(a.importance);
  assert.match(a.importance.method, /permutation importance/);
  assert.equal(a.importance.runs, 6);
  // every method.* parameter separates the groups equally well; the seed is never a candidate
  assert.match(a.importance.parameters[0]!.parameter, /^method\./);
  assert.ok(a.importance.parameters[0]!.share > 0);
  assert.ok(!a.importance.parameters.some((p) => p.parameter === 'training.seed'));
  // the message passes the webview's own validation
  assert.ok(parseHostToExperiments(JSON.parse(JSON.stringify(a))).ok);
});

test('analyze: the value choice (min over the evaluations) and chosen grouping columns', () => {
  const { source } = seedGrid();
  const min = analyze(source, { request: 1, choice: 'min' });
  assert.equal(min.importance, undefined);
  for (const g of min.groups) assert.equal(g.stats['min:accuracy']!.mean, 0.5, 'every run started at 0.5');
  const one = analyze(source, { request: 2, choice: 'last', groupBy: ['training.batchSize'] });
  assert.equal(one.groups.length, 1);
  assert.equal(one.groups[0]!.stats['final:accuracy']!.n, 6);
});

test('diffMessage: only the differing parameters, then the metrics of each run', () => {
  const { rows } = seedGrid();
  const d = diffMessage([rows[0]!, rows[3]!]);
  const paths = d.parameters.map((p) => p.path);
  assert.ok(paths.includes('method.type'));
  assert.ok(paths.includes('method.rank'));
  assert.ok(!paths.includes('training.seed'), 'seed 1 in both');
  assert.ok(!paths.includes('training.epochs'));
  assert.deepEqual(d.parameters.find((p) => p.path === 'method.type')!.values, ['houlsby', 'lora']);
  assert.deepEqual(d.parameters.find((p) => p.path === 'method.rank')!.values, [null, 8]);
  assert.ok(d.same > 0);
  assert.deepEqual(d.metrics.find((m) => m.id === 'best:accuracy')!.values, [0.8, 0.7]);
  assert.ok(parseHostToExperiments(JSON.parse(JSON.stringify(d))).ok);
});

test('exportTable: per run and per group, as CSV, Markdown and LaTeX', () => {
  const { source } = seedGrid();
  const grouped = exportTable(source, { columns: ['best:accuracy', 'test:accuracy'], grouped: true, choice: 'best' });
  const csv = writeTable(grouped, 'csv').split('\r\n');
  assert.equal(
    csv[0],
    'method.type,method.bottleneck,method.sites,method.activation,method.rank,method.alpha,N,best accuracy mean,best accuracy sd,best accuracy N,test accuracy mean,test accuracy sd,test accuracy N',
  );
  assert.match(csv[1]!, /^houlsby,32,"\[attention, ffn\]",gelu,,,3,0\.8(2|19+\d*),0\.0(2|19+\d*),3,/);
  const md = writeTable(grouped, 'markdown');
  assert.match(
    md,
    /\| houlsby \| 32 \| \[attention, ffn\] \| gelu \| {2}\| {2}\| 3 \| 0\.8200 ± 0\.0200 \| 0\.7700 ± 0\.0200 \|/,
  );
  assert.match(writeTable(grouped, 'latex'), /\$0\.8200 \\pm 0\.0200\$/);
  const perRun = exportTable(source, {
    columns: ['name', 'param:method.type', 'param:training.seed', 'best:accuracy'],
    grouped: false,
    choice: 'best',
  });
  const lines = writeTable(perRun, 'csv').trim().split('\r\n');
  assert.equal(lines[0], 'run,method.type,training.seed,best accuracy');
  assert.equal(lines.length, 7);
  assert.ok(lines.includes('houlsby-s2,houlsby,2,0.82'));
});

test('parallel coordinates: axes over the varying parameters but the seed, then the metric; brushing filters', () => {
  const { rows } = seedGrid();
  const metric = buildColumns(rows).find((c) => c.id === 'best:accuracy')!;
  const axes = parallelAxes(rows, metric);
  const ids = axes.map((a) => a.id);
  assert.ok(ids.includes('param:method.type'));
  assert.ok(!ids.includes('param:training.seed'));
  assert.equal(ids[ids.length - 1], 'best:accuracy');
  const acc = axes[axes.length - 1]!;
  assert.equal(acc.kind, 'linear');
  // the top half of the accuracy axis (0.70 .. 0.84) keeps the three Houlsby runs
  const kept = brushRows(rows, axes, new Map([['best:accuracy', [0.5, 1] as const]]));
  assert.deepEqual(
    kept.map((r) => r.params['method.type']),
    ['houlsby', 'houlsby', 'houlsby'],
  );
  const method = axes.find((a) => a.id === 'param:method.type')!;
  assert.equal(method.kind, 'category');
  assert.deepEqual(
    brushRows(rows, axes, new Map([['param:method.type', [0.9, 1] as const]])).map((r) => r.params['method.type']),
    ['lora', 'lora', 'lora'],
  );
  assert.equal(brushRows(rows, axes, new Map()).length, 6);
  assert.equal(method.describe(0.4, 1), 'lora', 'a brush in words names the categories inside it');
  assert.match(acc.describe(0, 1), /^0\.7000 … 0\.8400$/);
});

test("a group's dashboard label: the grouping columns that tell the groups apart, `name value` each", () => {
  const { source } = seedGrid();
  const a = analyze(source, { request: 1, choice: 'best' });
  assert.ok(a.groupBy.length > 1, `LoRA's rank and alpha vary too: ${a.groupBy}`);
  assert.deepEqual(distinguishingColumns(a), ['method.type']);
  assert.deepEqual(a.groups.map((g) => groupLabel(a, g)).sort(), ['method.type houlsby', 'method.type lora']);
  const byRank = {
    ...a,
    groupBy: ['method.rank'],
    groups: a.groups.map((g) => ({ ...g, key: { 'method.rank': g.key['method.rank'] ?? null } })),
  };
  assert.deepEqual(byRank.groups.map((g) => groupLabel(byRank, g)).sort(), ['method.rank 8', 'no method.rank']);
});

test('parallel coordinates: a run without a value on an axis crosses its "missing" slot, and only a brush reaching the slot keeps it', () => {
  const { rows } = seedGrid();
  const axes = parallelAxes(rows, undefined);
  // LoRA has a rank, Houlsby has none: the axis stays, the Houlsby runs pass below its range
  const rank = axes.find((a) => a.id === 'param:method.rank')!;
  assert.ok(rank, `a rank axis among ${axes.map((a) => a.id)}`);
  assert.equal(rank.hasMissing, true);
  const houlsby = rows.filter((r) => r.params['method.type'] === 'houlsby');
  const lora = rows.filter((r) => r.params['method.type'] === 'lora');
  for (const r of houlsby) assert.equal(rank.position(r), MISSING_POSITION);
  for (const r of lora) assert.ok(rank.position(r) >= 0 && rank.position(r) <= 1);
  assert.deepEqual(
    rank
      .ticks()
      .map((t) => t.label)
      .slice(-1),
    ['missing'],
  );
  assert.equal(rank.tick(MISSING_POSITION), 'missing');
  assert.deepEqual(
    brushRows(rows, axes, new Map([['param:method.rank', [0, 1] as const]])).map((r) => r.params['method.type']),
    ['lora', 'lora', 'lora'],
    'the value range leaves the missing runs out',
  );
  assert.deepEqual(
    brushRows(rows, axes, new Map([['param:method.rank', [MISSING_POSITION, -0.1] as const]])).map(
      (r) => r.params['method.type'],
    ),
    ['houlsby', 'houlsby', 'houlsby'],
    'the slot alone keeps them',
  );
  assert.equal(rank.describe(MISSING_POSITION, 1), '8, missing');
  const type = axes.find((a) => a.id === 'param:method.type')!;
  assert.equal(type.hasMissing, false, 'no slot where every run has a value');
  assert.ok(!type.ticks().some((t) => t.label === 'missing'));
});

test('messages: analyze, diff and the exports are validated where they arrive', () => {
  assert.deepEqual(
    parseExperimentsToHost({ type: 'analyze', request: 1, dirs: ['/a'], choice: 'best', metric: 'best:accuracy' }),
    {
      ok: true,
      value: { type: 'analyze', request: 1, dirs: ['/a'], groupBy: undefined, choice: 'best', metric: 'best:accuracy' },
    },
  );
  assert.match(
    String(
      (parseExperimentsToHost({ type: 'analyze', request: 1, dirs: [], choice: 'median' }) as { error: string }).error,
    ),
    /analyze.choice: expected one of best, last, min, max/,
  );
  assert.match(
    String((parseExperimentsToHost({ type: 'diff', dirs: ['/a'] }) as { error: string }).error),
    /at least two/,
  );
  assert.ok(
    parseExperimentsToHost({
      type: 'exportTable',
      format: 'latex',
      dirs: [],
      columns: ['name'],
      grouped: true,
      choice: 'last',
    }).ok,
  );
  assert.ok(
    !parseExperimentsToHost({
      type: 'exportTable',
      format: 'xlsx',
      dirs: [],
      columns: [],
      grouped: true,
      choice: 'last',
    }).ok,
  );
  const chart = parseExperimentsToHost({
    type: 'exportChart',
    format: 'svg',
    name: '../../etc/passwd',
    data: '<svg/>',
  });
  assert.ok(
    chart.ok && chart.value.type === 'exportChart' && !chart.value.name.includes('/'),
    'the name cannot leave the chosen folder',
  );
  assert.ok(
    !parseHostToExperiments({
      type: 'diff',
      runs: [{ dir: '/a', name: 'a' }],
      parameters: [{ path: 'x', values: [1, 2] }],
      same: 0,
      metrics: [],
    }).ok,
    'values must match the runs',
  );
});
