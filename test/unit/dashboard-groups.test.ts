/**
 * Seed groups in the dashboard: the host's bands from run snapshots (src/host/dashboard-groups.ts),
 * their validation as messages, the group charts (a mean per group, its band's edges, the smoothing)
 * and the files a chart is saved as (CSV with mean/sd/n columns, SVG with the band's path).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupCurves } from '../../src/host/dashboard/dashboard-groups';
import {
  parseDashboardState,
  parseHostToDashboard,
  type DashboardGroup,
  type RunSnapshot,
} from '../../src/protocol/dashboard';
import { buildGroupCharts, groupN } from '../../webview/model/charts';
import { chartCsv, chartSvg } from '../../webview/model/chart-export';
import { SmoothingCache } from '../../webview/model/series';

function run(dir: string, loss: number[], accuracy: number[]): RunSnapshot {
  const step = loss.map((_, i) => (i + 1) * 10);
  return {
    dir,
    name: dir.slice(1),
    config: { task: { metric: 'accuracy' } },
    status: { state: 'finished', step: step.length * 10, totalSteps: 30, followed: false },
    train: {
      step,
      epoch: step.map(() => 0),
      loss,
      learningRate: step.map(() => 0.001),
      examplesPerSecond: step.map(() => null),
      elapsedMs: step.map(() => null),
    },
    evals: accuracy.map((a, i) => ({
      step: (i + 1) * 20,
      split: 'validation' as const,
      metrics: { accuracy: a, loss: 1 - a },
      isBest: false,
    })),
    checkpoints: [],
    problems: [],
  };
}

const runs = [
  run('/a', [3, 2, 1], [0.5, 0.7]),
  run('/b', [5, 4, 3], [0.6, 0.8]),
  run('/c', [4, 6, 2], [0.7, 0.9]),
  run('/other', [9, 9, 9], [0.1, 0.1]),
];
const group = groupCurves({ label: 'method.type lora', dirs: ['/a', '/b', '/c'] }, runs);

test("groupCurves: per step the mean, sample sd and N of the group's runs only, for loss, learning rate and every validation metric", () => {
  assert.equal(group.primaryMetric, 'accuracy');
  assert.deepEqual(group.bands.loss!.step, [10, 20, 30]);
  assert.deepEqual(group.bands.loss!.mean, [4, 4, 2]);
  assert.deepEqual(group.bands.loss!.sd, [1, 2, 1]);
  assert.deepEqual(group.bands.loss!.n, [3, 3, 3]);
  assert.deepEqual(group.bands['validation:accuracy']!.step, [20, 40]);
  assert.ok(Math.abs(group.bands['validation:accuracy']!.mean[0]! - 0.6) < 1e-12);
  assert.ok(Math.abs(group.bands['validation:accuracy']!.sd[1]! - 0.1) < 1e-12);
  assert.deepEqual(Object.keys(group.bands).sort(), ['learningRate', 'loss', 'validation:accuracy', 'validation:loss']);
  assert.equal(groupN(group.bands.loss!), 'N = 3');
});

test('group messages are validated: a band whose columns disagree in length is refused with its path', () => {
  assert.ok(parseHostToDashboard({ type: 'snapshot', mode: 'groups', runs, groups: [group] }).ok);
  assert.ok(parseHostToDashboard({ type: 'groups', groups: [group] }).ok);
  const broken = { ...group, bands: { loss: { ...group.bands.loss!, sd: [1, 2] } } };
  const parsed = parseHostToDashboard({ type: 'groups', groups: [broken] });
  assert.equal(parsed.ok, false);
  assert.match((parsed as { error: string }).error, /groups\.groups\[0\]\.bands\.loss\.sd: expected 3 values/);
  const noDirs = parseHostToDashboard({ type: 'groups', groups: [{ ...group, dirs: [] }] });
  assert.match((noDirs as { error: string }).error, /groups\.groups\[0\]\.dirs: expected at least one run folder/);
  const state = parseDashboardState({
    version: 1,
    runDirs: ['/a'],
    mode: 'groups',
    groups: [{ label: 'g', dirs: ['/a'] }],
    ui: { smoothing: 0, logScale: false, band: 'minmax' },
  });
  assert.ok(state.ok && state.value.groups?.[0]?.label === 'g' && state.value.ui?.band === 'minmax');
  assert.equal(
    parseDashboardState({ version: 1, runDirs: ['/a'], mode: 'groups' }).ok,
    false,
    'a groups panel needs its groups to come back',
  );
});

test('group charts: one mean line per group with its band (±1 sd or min–max); the legend names the group and N', () => {
  const other: DashboardGroup = groupCurves({ label: 'method.type houlsby', dirs: ['/other'] }, runs);
  const [loss, metric] = buildGroupCharts([group, other], { smoothing: 0, logScale: false }, new SmoothingCache());
  const means = loss!.series.filter((s) => s.role === 'mean');
  assert.deepEqual(
    means.map((s) => s.label),
    ['method.type lora (N = 3)', 'method.type houlsby (N = 1)'],
  );
  assert.deepEqual(
    means.map((s) => s.run),
    [0, 1],
    'a colour per group',
  );
  assert.deepEqual(loss!.x, [10, 20, 30, 40], "training steps and the validation loss's evaluations");
  const band = loss!.bands![0]!;
  assert.deepEqual(loss!.ys[band.lowerSeries]!.slice(0, 3), [3, 2, 1]);
  assert.deepEqual(loss!.ys[band.upperSeries]!.slice(0, 3), [5, 6, 3]);
  // a, b and the outlier: min–max spans the runs, unlike mean ± sd
  const wide = groupCurves({ label: 'wide', dirs: ['/a', '/b', '/other'] }, runs);
  const [minmax] = buildGroupCharts([wide], { smoothing: 0, logScale: false, band: 'minmax' }, new SmoothingCache());
  assert.deepEqual(minmax!.ys[minmax!.bands![0]!.lowerSeries]!.slice(0, 3), [3, 2, 1]);
  assert.deepEqual(minmax!.ys[minmax!.bands![0]!.upperSeries]!.slice(0, 3), [9, 9, 9]);
  assert.equal(minmax!.bands![0]!.kind, 'minmax');
  assert.equal(metric!.series.find((s) => s.role === 'eval')!.label, 'method.type lora accuracy (N = 3)');
});

test('group charts: smoothing applies to the mean and its band alike; the raw mean stays beside it', () => {
  const [loss] = buildGroupCharts(
    [group],
    { smoothing: 0.5, smoother: 'moving', logScale: false },
    new SmoothingCache(),
  );
  const roles = loss!.series.map((s) => s.role);
  assert.deepEqual(roles.slice(0, 4), ['raw', 'mean', 'edge', 'edge']);
  // window 3 (2 / (1 - 0.5) - 1): trailing means of [4, 4, 2] and of the edges [3, 2, 1], [5, 6, 3]
  assert.deepEqual(loss!.ys[0]!.slice(0, 3), [4, 4, 2]);
  assert.deepEqual(loss!.ys[1]!.slice(0, 3), [4, 4, 10 / 3]);
  assert.deepEqual(loss!.ys[2]!.slice(0, 3), [3, 2.5, 2]);
  assert.deepEqual(loss!.ys[3]!.slice(0, 3), [5, 5.5, 14 / 3]);
});

test("a group chart saved as CSV has the mean, sd and n of each band; as SVG, the band is a filled path in the group's colour", () => {
  const [loss] = buildGroupCharts([group], { smoothing: 0, logScale: false }, new SmoothingCache());
  const lines = chartCsv(loss!).trim().split(/\r?\n/);
  const header = lines[0]!.split(',');
  assert.ok(!header.some((h) => / (lower|upper)$/.test(h)), 'the edges are not columns');
  for (const c of ['mean', 'sd', 'n']) assert.ok(header.includes(`method.type lora training loss ${c}`), `${c} column`);
  const at = (name: string) => header.indexOf(name);
  const row20 = lines.find((l) => l.startsWith('20,'))!.split(',');
  assert.equal(row20[at('method.type lora training loss mean')], '4');
  assert.equal(row20[at('method.type lora training loss sd')], '2');
  assert.equal(row20[at('method.type lora training loss n')], '3');
  const svg = chartSvg(loss!, {
    colors: loss!.series.map(() => 'rgb(1, 2, 3)'),
    background: '#fff',
    foreground: '#000',
    grid: '#ccc',
    font: 'sans-serif',
  });
  assert.match(svg, /<path class="band" d="M[^"]+Z" fill="rgb\(1, 2, 3\)" fill-opacity="0.22"/);
  assert.equal(
    (svg.match(/<polyline/g) ?? []).length,
    2,
    'the means (training and validation loss) are lines, the edges are not',
  );
  assert.equal((svg.match(/<path class="band"/g) ?? []).length, 2);
  // one evaluation so far: the band is a bar across the point
  const once = groupCurves({ label: 'g', dirs: ['/a', '/b'] }, [run('/a', [1], [0.5]), run('/b', [2], [0.7])]);
  const [, metric] = buildGroupCharts([once], { smoothing: 0, logScale: false }, new SmoothingCache());
  const bar = chartSvg(metric!, {
    colors: metric!.series.map(() => 'red'),
    background: '#fff',
    foreground: '#000',
    grid: '#ccc',
    font: 'sans-serif',
  });
  assert.match(bar, /<path class="band" d="M[\d.,L]+Z"/);
});
