/**
 * The one way PEFT Lab writes durations, bytes, counts, shares and metrics: the CLI, the sidebar and the
 * dashboard all call src/protocol/format.ts, and no other module formats these kinds on its own.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  formatBytes,
  formatCount,
  formatCountCompact,
  formatDuration,
  formatMetrics,
  formatMetricValue,
  formatPercent,
} from '../../src/protocol/format';

const ROOT = path.join(__dirname, '..', '..');

describe('formatting', () => {
  test('durations: seconds, then minutes and seconds, then hours and minutes', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(42_000), '42s');
    assert.equal(formatDuration(72_000), '1m 12s');
    assert.equal(formatDuration(3_599_400), '59m 59s');
    assert.equal(formatDuration(3_723_000), '1h 02m');
    assert.equal(formatDuration(Number.NaN), '–');
    assert.equal(formatDuration(-5), '–');
  });

  test('bytes: binary multiples with one decimal', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(12_600), '12.3 kB');
    assert.equal(formatBytes(4.5 * 1024 ** 2), '4.5 MB');
    assert.equal(formatBytes(1.25 * 1024 ** 3), '1.3 GB');
  });

  test('counts: exact with separators, or compact with three significant digits', () => {
    assert.equal(formatCount(1_234_567), '1,234,567');
    assert.equal(formatCount(12.4), '12');
    assert.equal(formatCountCompact(4_385_920), '4.39M');
    assert.equal(formatCountCompact(20_736), '20.7K');
    assert.equal(formatCountCompact(110_000_000), '110M', 'a zero before the point stays (it once read 11M)');
    assert.equal(formatCountCompact(100_000), '100K');
    assert.equal(formatCountCompact(20_000), '20K');
    assert.equal(formatCountCompact(2_000_000_000), '2B');
    assert.equal(formatCountCompact(512), '512');
  });

  test('shares: enough digits to be non-zero', () => {
    assert.equal(formatPercent(100_738 / 4_385_920), '2.30%');
    assert.equal(formatPercent(0.5), '50.0%');
    assert.equal(formatPercent(0.00012), '0.012%');
    assert.equal(formatPercent(0), '0%');
    assert.equal(formatPercent(Number.POSITIVE_INFINITY), '–');
  });

  test('metric values: four decimals, integers as they are, exponents far from 1, a dash when missing', () => {
    assert.equal(formatMetricValue(0.812_49), '0.8125');
    assert.equal(formatMetricValue(3), '3');
    assert.equal(formatMetricValue(0.000_02), '2.00e-5');
    assert.equal(formatMetricValue(123_456.7), '1.23e+5');
    assert.equal(formatMetricValue(undefined), '–');
    assert.equal(formatMetricValue(null), '–');
    assert.equal(formatMetricValue(Number.NaN), '–');
  });

  test('metric lists: the main metric first, loss last, one separator', () => {
    const metrics = { loss: 0.41, f1: 0.8, accuracy: 0.8125 };
    assert.equal(formatMetrics(metrics), 'f1 0.8000 · accuracy 0.8125 · loss 0.4100');
    assert.equal(formatMetrics(metrics, { main: 'accuracy' }), 'accuracy 0.8125 · f1 0.8000 · loss 0.4100');
    assert.equal(formatMetrics(metrics, { main: 'accuracy', short: true }), 'accuracy 0.8125 · loss 0.4100');
    assert.equal(formatMetrics(metrics, { main: 'accuracy', omit: ['loss'] }), 'accuracy 0.8125 · f1 0.8000');
    assert.equal(formatMetrics({}), '');
  });
});

/** The files that once each had their own formatDuration / formatCount / metric-list formatter. */
const FORMERLY_FORMATTING = [
  'src/core/train/describe.ts',
  'src/host/peft-lab.ts',
  'src/host/runs-present.ts',
  'webview/model/format.ts',
  'webview/model/experiments-table.ts',
];

function sourceFiles(dir: string): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f));
}

test('no module but src/protocol/format.ts defines a duration, byte, count, share or metric formatter', () => {
  const files = [...sourceFiles('src'), ...sourceFiles('webview')];
  assert.ok(files.length > 50, 'found the sources');
  for (const f of FORMERLY_FORMATTING)
    assert.ok(files.includes(f) || !fs.existsSync(path.join(ROOT, f)), `${f} is among the scanned sources`);
  const own =
    /function (formatDuration|formatBytes|formatCount\w*|formatInt|formatPercent|formatMetrics?|formatMetricValues?|formatValue)\b/;
  const offenders = files.filter(
    (f) => f !== path.join('src', 'protocol', 'format.ts') && own.test(fs.readFileSync(path.join(ROOT, f), 'utf8')),
  );
  assert.deepEqual(offenders, []);
});

/** analysis-view.ts writes mean ± sd with the digits the exported tables use (core/analysis/tables.ts), a different kind. */
const OWN_DIGITS = [path.join('webview', 'experiments', 'analysis-view.ts')];

test('no metric or count is formatted inline (toFixed(4), toLocaleString) outside src/protocol/format.ts', () => {
  const files = [...sourceFiles('src'), ...sourceFiles('webview')].filter(
    (f) => f !== path.join('src', 'protocol', 'format.ts') && !OWN_DIGITS.includes(f),
  );
  const offenders = files.flatMap((f) =>
    fs
      .readFileSync(path.join(ROOT, f), 'utf8')
      .split('\n')
      .flatMap((line, i) =>
        /\.toFixed\(4\)|toLocaleString\('en-US'\)/.test(line) ? [`${f}:${i + 1}: ${line.trim()}`] : [],
      ),
  );
  assert.deepEqual(offenders, []);
});
