/**
 * `peft-lab sweep`, run as a real process from its TypeScript source (as test/unit/cli.test.ts does):
 * every point of a tiny config's sweep trains in a worker process of its own, into a normal run
 * folder that records its sweep and point.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ResolvedConfig } from '../../src/core/config/types';
import { tinyConfig, writeTrainingData } from './helpers/tiny-experiment';
import { jsonLines } from './helpers/json';
import { runCli } from './helpers/run-cli';

const TIMEOUT_MS = 180_000;

let dir: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-sweep-cli-'));
});

after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder with training data and the tiny config plus `sweep`; returns the folder. */
function experiment(sweep: unknown, training: Record<string, unknown> = {}): string {
  const folder = fs.mkdtempSync(path.join(dir, 'exp-'));
  writeTrainingData(path.join(folder, 'train.jsonl'));
  const config = tinyConfig();
  fs.writeFileSync(
    path.join(folder, 'tiny.peft.json'),
    JSON.stringify({ ...config, training: { ...(config.training as object), ...training }, sweep }, null, 2),
  );
  return folder;
}

function runFolders(folder: string): string[] {
  const runs = path.join(folder, 'runs');
  return fs.existsSync(runs) ? fs.readdirSync(runs).sort() : [];
}

describe('peft-lab sweep', () => {
  test('--help describes it', async () => {
    const result = await runCli(['--help'], dir);
    assert.match(result.stdout, /peft-lab sweep <file\.peft\.json> \[--parallel <n>\]/);
  });

  test('runs every point of a 2x2 grid, two at a time, into run folders named after their points (--json)', async () => {
    const folder = experiment({
      parameters: { 'method.bottleneck': { values: [2, 4] }, 'training.learningRate': { values: [1e-3, 1e-4] } },
    });
    const result = await runCli(['sweep', 'tiny.peft.json', '--parallel', '2', '--json'], folder, {
      timeoutMs: TIMEOUT_MS,
    });
    assert.equal(result.code, 0, result.stderr);
    const lines = jsonLines(result.stdout);
    const plan = lines[0]!;
    assert.equal(plan.type, 'sweep');
    assert.equal(plan.parallel, 2);
    assert.deepEqual(
      plan.points.map((p: { name: string }) => p.name),
      [
        'tiny-bottleneck=2-lr=1e-3',
        'tiny-bottleneck=2-lr=1e-4',
        'tiny-bottleneck=4-lr=1e-3',
        'tiny-bottleneck=4-lr=1e-4',
      ],
    );
    const started = lines.filter((l) => l.type === 'started');
    assert.deepEqual(started.map((l) => l.point).sort(), [0, 1, 2, 3], 'every worker message carries its point');
    const ended = lines.at(-1)!;
    assert.equal(ended.type, 'sweepEnded');
    assert.deepEqual(
      ended.results.map((r: { state: string }) => r.state),
      ['finished', 'finished', 'finished', 'finished'],
    );
    assert.ok(
      ended.best && typeof ended.best.value === 'number' && ended.best.metric === 'accuracy',
      JSON.stringify(ended.best),
    );
    const maxAccuracy = Math.max(...ended.results.map((r: { metrics: { accuracy: number } }) => r.metrics.accuracy));
    assert.equal(ended.best.value, maxAccuracy);

    const folders = runFolders(folder);
    assert.equal(folders.length, 4);
    for (const [index, point] of plan.points.entries()) {
      const runDir = folders.find((f) => f.startsWith(`${point.name}-`));
      assert.ok(runDir, `a run folder for ${point.name}: ${folders.join(', ')}`);
      const config = JSON.parse(
        fs.readFileSync(path.join(folder, 'runs', runDir, 'config.json'), 'utf8'),
      ) as ResolvedConfig;
      assert.equal(config.name, point.name);
      assert.equal(config.sourceFile, path.join(fs.realpathSync(folder), 'tiny.peft.json'));
      assert.equal(config.sweepPoint?.sweepId, plan.sweepId);
      assert.equal(config.sweepPoint?.index, index);
      assert.deepEqual(config.sweepPoint?.values, point.values);
      assert.equal((config.method as { bottleneck: number }).bottleneck, point.values['method.bottleneck']);
      assert.equal(config.training.learningRate, point.values['training.learningRate']);
      const status = JSON.parse(fs.readFileSync(path.join(folder, 'runs', runDir, 'status.json'), 'utf8'));
      assert.equal(status.state, 'finished');
    }
  });

  test('runs points one after another by default and prints a summary with the best point', async () => {
    const folder = experiment({
      method: 'random',
      count: 2,
      seed: 1,
      parameters: { 'training.seed': { values: [1, 2, 3] } },
    });
    const result = await runCli(['sweep', 'tiny.peft.json'], folder, { timeoutMs: TIMEOUT_MS });
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^sweep tiny-sweep-\d{8}-\d{6}: 2 points \(random over training\.seed\), 1 at a time; best by accuracy \(maximize\)/,
    );
    assert.match(result.stdout, /\[1\/2 tiny-seed=\d\] run: runs\/tiny-seed=\d-\d{8}-\d{6}/);
    assert.match(result.stdout, /2 of 2 points finished/);
    assert.match(result.stdout, /^best: tiny-seed=\d \(training\.seed=\d\): accuracy \d\.\d{4}$/m);
    assert.equal(runFolders(folder).length, 2);
  });

  test('an invalid point exits 1 naming the sweep field, before any run starts', async () => {
    const folder = experiment({ parameters: { 'method.bottleneck': { values: [2, 16] } } });
    const result = await runCli(['sweep', 'tiny.peft.json'], folder);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^error: tiny\.peft\.json:\d+: \/sweep\/parameters\/method\.bottleneck\/values\/1: method\.bottleneck = 16: bottleneck 16 must be smaller than the model's hidden size 16$/m,
    );
    assert.deepEqual(runFolders(folder), []);
  });

  test('a config without a sweep section exits 1', async () => {
    const folder = experiment(undefined);
    const result = await runCli(['sweep', 'tiny.peft.json'], folder);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no 'sweep' section/);
  });

  test('--parallel must be a whole number of at least 1', async () => {
    const result = await runCli(['sweep', 'x.peft.json', '--parallel', '0'], dir);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--parallel must be a whole number of at least 1, not '0'/);
  });

  test('Ctrl-C stops the running point at a checkpoint and drops the waiting ones (exit 130)', async () => {
    const folder = experiment(
      { parameters: { 'training.seed': { values: [1, 2, 3] } } },
      { epochs: 200, evalEvery: 1000 },
    );
    let interrupted = false;
    const result = await runCli(['sweep', 'tiny.peft.json', '--json'], folder, {
      timeoutMs: TIMEOUT_MS,
      onStdout: (stdout, child) => {
        if (interrupted || !stdout.split('\n').some((line) => line.includes('"type":"progress"'))) return;
        interrupted = true;
        child.kill('SIGINT');
      },
    });
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /stopping the sweep/);
    const ended = jsonLines(result.stdout).at(-1)!;
    assert.equal(ended.type, 'sweepEnded');
    assert.equal(ended.results[0].state, 'stopped');
    assert.deepEqual(
      ended.results.slice(1).map((r: { error: string }) => r.error),
      ['not started: the sweep was interrupted', 'not started: the sweep was interrupted'],
    );
    assert.equal(runFolders(folder).length, 1);
  });
});
