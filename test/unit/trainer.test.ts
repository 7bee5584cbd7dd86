/**
 * The training loop end to end, in-process on the pure-JS cpu backend: real (tiny, randomly
 * initialised) encoders trained on generated data in temporary folders.
 *
 * A frozen random encoder's [CLS] carries almost no information about the input, so only `full`
 * fine-tuning can be expected to learn a task; the adapter-method tests check mechanics (resume,
 * cancel, checkpoints), not accuracy.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { evaluateCheckpoint, train, type TrainOptions } from '../../src/core/train/trainer';
import { CheckpointError, ConfigError, DataError } from '../../src/core/errors';
import { Rng } from '../../src/core/random';
import { readSafetensors, toFloat32 } from '../../src/core/checkpoint/safetensors';
import type { RunStatus, CheckpointInfo } from '../../src/core/checkpoint/run-folder';
import { readRunStatus } from '../../src/core/checkpoint/run-reader';
import type { MetricsMessage, StartedMessage, WorkerMessage } from '../../src/protocol/worker';
import { HEAP_SHARE, MEMORY_LIMIT_ENV } from '../../src/core/train/memory-plan';
import {
  metricsLines,
  ofType,
  readJson,
  rejection,
  runRecorded,
  writeExperiment,
  type MetricsLine,
  type Outcome,
} from './helpers/runs';

const REPO = path.resolve(__dirname, '..', '..');
const VOCAB = path.join(REPO, 'test', 'fixtures', 'tiny-bert', 'vocab.txt');

// Words of the tiny-bert vocabulary (checked below), so every token is a whole word.
const FILLER = [
  'the',
  'movie',
  'film',
  'story',
  'plot',
  'was',
  'is',
  'this',
  'it',
  'really',
  'very',
  'quite',
  'music',
  'actor',
  'scene',
  'people',
  'time',
  'day',
  'night',
  'book',
];
const KEYWORDS = { pos: ['good', 'great'], neg: ['bad', 'terrible'] };

const TINY_MODEL = {
  scratch: { vocab: VOCAB, layers: 1, hiddenSize: 16, heads: 2, intermediateSize: 32, maxPositions: 64 },
};
/** Big enough for `full` to learn the keyword task in a few dozen steps. */
const SMALL_MODEL = {
  scratch: { vocab: VOCAB, layers: 2, hiddenSize: 64, heads: 2, intermediateSize: 128, maxPositions: 64 },
};

let root: string;

before(() => {
  // The environment override would beat training.backend; these tests want the cpu backend.
  delete process.env.PEFT_LAB_BACKEND;
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-trainer-'));
});

after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

// ---- helpers -------------------------------------------------------------------------------------

/**
 * `n` sentences of 3-5 filler words with one keyword at a random place; the label says which
 * keyword list it came from. Alternating labels keep every batch balanced-ish.
 */
function keywordRows(
  n: number,
  seed: number,
  label: (i: number, rng: Rng) => string | number = (i) => (i % 2 ? 'pos' : 'neg'),
): string {
  const rng = new Rng(seed);
  const rows: string[] = [];
  for (let i = 0; i < n; i++) {
    const polarity = i % 2 ? 'pos' : 'neg';
    const words = Array.from({ length: 3 + rng.int(3) }, () => FILLER[rng.int(FILLER.length)]!);
    words.splice(rng.int(words.length + 1), 0, KEYWORDS[polarity][rng.int(KEYWORDS[polarity].length)]!);
    rows.push(JSON.stringify({ text: words.join(' '), label: label(i, rng) }));
  }
  return `${rows.join('\n')}\n`;
}

/** A folder with the given data files and a config (defaults: tiny model, houlsby, cpu); returns the config file. */
function experiment(files: Record<string, string>, overrides: Record<string, unknown> = {}): string {
  const { training, data, ...rest } = overrides as { training?: object; data?: object };
  const config = {
    name: 'test',
    model: TINY_MODEL,
    task: { type: 'classification' },
    method: { type: 'houlsby', bottleneck: 4 },
    ...rest,
    data: { train: 'train.jsonl', validation: 'validation.jsonl', maxLength: 32, ...data },
    training: { backend: 'cpu', batchSize: 8, epochs: 1, seed: 3, ...training },
  };
  return writeExperiment(root, files, config, 'test.peft.json');
}

function run(configFile: string, options: TrainOptions = {}): Promise<Outcome> {
  return runRecorded(train, configFile, options);
}

/** Trains until a progress message reports `step` or later, then aborts from inside the callback. */
function cancelAfter(configFile: string, step: number): Promise<Outcome> {
  const controller = new AbortController();
  return run(configFile, {
    signal: controller.signal,
    onMessage: (m) => {
      if (m.type === 'progress' && m.step >= step) controller.abort();
    },
  });
}

function checkpointSteps(runDir: string): number[] {
  return fs
    .readdirSync(path.join(runDir, 'checkpoints'))
    .map((name) => /^step-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

function allFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? [full, ...allFiles(full)] : [full];
  });
}

function stepOf(dir: string): number {
  return Number(/step-(\d+)$/.exec(dir)![1]);
}

// ---- tests ---------------------------------------------------------------------------------------

test('the generated data uses only whole words of the tiny-bert vocabulary', () => {
  const vocab = new Set(
    fs
      .readFileSync(VOCAB, 'utf8')
      .split('\n')
      .map((w) => w.trim()),
  );
  for (const word of [...FILLER, ...KEYWORDS.pos, ...KEYWORDS.neg])
    assert.ok(vocab.has(word), `"${word}" is not in ${VOCAB}`);
});

describe('full fine-tuning learns a keyword task', () => {
  // One run, inspected by several tests: 128 examples, batch 16, 5 epochs = 40 steps.
  let configFile: string;
  let outcome: Outcome;
  let runDir: string;

  before(async () => {
    configFile = experiment(
      { 'train.jsonl': keywordRows(128, 1), 'validation.jsonl': keywordRows(32, 2), 'test.jsonl': keywordRows(24, 3) },
      {
        name: 'keywords',
        model: SMALL_MODEL,
        method: { type: 'full' },
        data: { test: 'test.jsonl' },
        training: {
          epochs: 5,
          batchSize: 16,
          learningRate: 0.003,
          warmupRatio: 0.1,
          dropout: 0,
          evalEvery: 8,
          logEvery: 4,
          keepCheckpoints: 1,
          seed: 1,
        },
      },
    );
    outcome = await run(configFile);
    runDir = outcome.result.runDir;
  });

  test('reaches at least 0.9 validation accuracy', () => {
    const best = outcome.result.bestMetrics;
    assert.ok(best, 'the run reports its best metrics');
    assert.ok(best.accuracy! >= 0.9, `best validation accuracy ${best.accuracy}`);
    const last = ofType(outcome.messages, 'metrics')
      .filter((m) => m.split === 'validation')
      .at(-1)!;
    assert.ok(last.metrics.accuracy! >= 0.9, `final validation accuracy ${last.metrics.accuracy}`);
  });

  test('the promise resolves to finished', () => {
    const { result } = outcome;
    assert.equal(result.type, 'finished');
    assert.equal(result.state, 'finished');
    assert.equal(result.reason, undefined);
    assert.ok(fs.existsSync(result.bestCheckpoint!), `missing ${result.bestCheckpoint}`);
    assert.ok(result.durationMs > 0);
  });

  test('messages: started first (backend, placement), increasing progress, metrics and checkpoints', () => {
    const messages = outcome.messages.filter((m) => m.type !== 'log');
    const started = messages[0];
    assert.ok(started && started.type === 'started', `first message: ${started?.type}`);
    assert.equal(ofType(messages, 'started').length, 1);
    assert.equal(started.runDir, runDir);
    assert.equal(started.configFile, configFile);
    assert.equal(started.backend.active, 'cpu');
    assert.match(started.backend.description, /cpu/);
    assert.equal(started.placement.method, 'full');
    assert.equal(started.placement.layers, 2);
    assert.equal(started.placement.hiddenSize, 64);
    assert.ok(started.placement.trainableParams > 0);
    assert.equal(started.totalSteps, 40);
    assert.equal(started.stepsPerEpoch, 8);
    assert.equal(started.trainExamples, 128);
    assert.equal(started.validationExamples, 32);
    assert.equal(started.resumedFromStep, undefined);

    const progress = ofType(messages, 'progress');
    assert.deepEqual(
      progress.map((p) => p.step),
      [1, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40],
    );
    for (const p of progress) {
      assert.equal(p.totalSteps, 40);
      assert.ok(Number.isFinite(p.loss) && p.loss > 0, `loss ${p.loss}`);
      assert.ok(p.learningRate > 0 && p.learningRate <= 0.003, `learning rate ${p.learningRate}`);
      assert.equal(p.epoch, Math.floor((p.step - 1) / 8));
    }
    assert.ok(progress.at(-1)!.loss < progress[0]!.loss, 'the loss goes down');

    const validation = ofType(messages, 'metrics').filter((m) => m.split === 'validation');
    assert.deepEqual(
      validation.map((m) => m.step),
      [8, 16, 24, 32, 40],
    );
    for (const m of validation)
      for (const key of ['accuracy', 'f1', 'mcc', 'loss']) assert.equal(typeof m.metrics[key], 'number', key);
    const checkpoints = ofType(messages, 'checkpoint');
    assert.deepEqual(
      checkpoints.map((c) => c.step),
      [8, 16, 24, 32, 40],
    );
    for (const c of checkpoints) {
      assert.ok(c.sizeBytes > 0);
      assert.equal(c.isBest, validation.find((m) => m.step === c.step)!.isBest);
      // metrics for a step come before its checkpoint
      assert.ok(messages.indexOf(c) > messages.indexOf(validation.find((m) => m.step === c.step)!));
    }
    assert.ok(fs.existsSync(checkpoints.at(-1)!.dir));
    assert.equal(ofType(messages, 'finished').length, 0, 'finished is the promise value, not a message');
    assert.equal(ofType(messages, 'failed').length, 0);
  });

  test('the run folder holds config, status, placement, metrics and complete checkpoints', () => {
    const config = readJson<{ name: string; sourceFile: string }>(path.join(runDir, 'config.json'));
    assert.equal(config.name, 'keywords');
    assert.equal(config.sourceFile, configFile);

    const status = readJson<RunStatus>(path.join(runDir, 'status.json'));
    assert.equal(status.state, 'finished');
    assert.equal(status.step, 40);
    assert.equal(status.totalSteps, 40);
    // stored relative to the run folder (a copied run folder still names its own), read back absolute
    assert.equal(status.bestCheckpoint, path.relative(runDir, outcome.result.bestCheckpoint!));
    assert.equal(status.configFile, path.relative(runDir, configFile));
    assert.equal(readRunStatus(runDir)?.bestCheckpoint, outcome.result.bestCheckpoint);
    assert.deepEqual(status.bestMetrics, outcome.result.bestMetrics);
    assert.ok(status.ended, 'status records when the run ended');

    const placement = readJson<{ method: string; trainableParams: number }>(path.join(runDir, 'placement.json'));
    assert.equal(placement.method, 'full');
    assert.ok(placement.trainableParams > 0);

    const lines = metricsLines(runDir);
    const train = lines.filter((l) => l.kind === 'train');
    assert.deepEqual(
      train.map((l) => l.step),
      [1, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40],
    );
    for (const l of train) assert.ok(Number.isFinite(l.loss) && Number.isFinite(l.learningRate), JSON.stringify(l));
    const evals = lines.filter((l) => l.kind === 'eval' && l.split === 'validation');
    assert.deepEqual(
      evals.map((l) => l.step),
      [8, 16, 24, 32, 40],
    );
    for (const l of evals) assert.equal(typeof l.accuracy, 'number');

    for (const step of checkpointSteps(runDir)) {
      const dir = path.join(runDir, 'checkpoints', `step-${step}`);
      for (const name of ['weights.safetensors', 'optimizer.safetensors', 'checkpoint.json']) {
        assert.ok(fs.statSync(path.join(dir, name)).size > 0, `${dir}/${name}`);
      }
      const info = readJson<CheckpointInfo>(path.join(dir, 'checkpoint.json'));
      assert.equal(info.step, step);
      assert.equal(info.method, 'full');
      assert.deepEqual(info.labelNames, ['neg', 'pos']);
      assert.equal(info.trainer.step, step);
      assert.equal(info.trainer.rng.length, 4);
    }

    const best = fs.readFileSync(path.join(runDir, 'best'), 'utf8').trim();
    assert.match(best, /^step-\d+$/);
    assert.ok(fs.existsSync(path.join(runDir, 'checkpoints', best, 'checkpoint.json')), `best names ${best}`);
    assert.equal(path.join(runDir, 'checkpoints', best), outcome.result.bestCheckpoint);

    const temporary = allFiles(runDir).filter((f) => path.basename(f).includes('.tmp-'));
    assert.deepEqual(temporary, [], 'no temporary files are left behind');
  });

  test('keepCheckpoints 1 keeps only the newest checkpoint and the best one', () => {
    const best = stepOf(outcome.result.bestCheckpoint!);
    assert.deepEqual(
      checkpointSteps(runDir),
      [...new Set([best, 40])].sort((a, b) => a - b),
    );
    assert.ok(best < 40, `the best checkpoint (step ${best}) is an earlier one, so pruning is really exercised`);
  });

  test('data.test: the best checkpoint is scored on the test split', () => {
    const bestDir = outcome.result.bestCheckpoint!;
    const bestStep = stepOf(bestDir);
    const file = path.join(bestDir, 'eval-test.json');
    assert.ok(fs.existsSync(file), `missing ${file}`);
    const stored = readJson<{ split: string; step: number; examples: number; metrics: Record<string, number> }>(file);
    assert.equal(stored.split, 'test');
    assert.equal(stored.step, bestStep);
    assert.equal(stored.examples, 24);
    const messages = ofType(outcome.messages, 'metrics').filter((m) => m.split === 'test');
    assert.equal(messages.length, 1);
    const message = messages[0] as MetricsMessage;
    assert.equal(message.step, bestStep);
    assert.equal(message.isBest, true);
    assert.deepEqual(message.metrics, stored.metrics);
    assert.ok(message.metrics.accuracy! >= 0.9, `test accuracy ${message.metrics.accuracy}`);
    const logged = metricsLines(runDir).filter((l) => l.kind === 'eval' && l.split === 'test');
    assert.deepEqual(
      logged.map((l) => l.step),
      [bestStep],
    );
    // No other checkpoint was scored on the test split.
    for (const step of checkpointSteps(runDir)) {
      if (step !== bestStep)
        assert.ok(!fs.existsSync(path.join(runDir, 'checkpoints', `step-${step}`, 'eval-test.json')));
    }
  });

  test("evaluateCheckpoint on the best checkpoint reproduces the run's best metrics and stores them", async () => {
    const bestDir = outcome.result.bestCheckpoint!;
    const evaluated = await evaluateCheckpoint(bestDir, 'validation', { backend: 'cpu' });
    assert.equal(evaluated.type, 'evaluated');
    assert.equal(evaluated.checkpointDir, bestDir);
    assert.equal(evaluated.split, 'validation');
    assert.equal(evaluated.examples, 32);
    assert.equal(evaluated.metrics.accuracy, outcome.result.bestMetrics!.accuracy);
    assert.ok(
      Math.abs(evaluated.metrics.loss! - outcome.result.bestMetrics!.loss!) < 1e-6,
      `loss ${evaluated.metrics.loss} vs ${outcome.result.bestMetrics!.loss}`,
    );
    const stored = readJson<{ split: string; metrics: Record<string, number>; examples: number }>(
      path.join(bestDir, 'eval-validation.json'),
    );
    assert.equal(stored.split, 'validation');
    assert.equal(stored.examples, 32);
    assert.deepEqual(stored.metrics, evaluated.metrics);
  });
});

// ---- resume ----------------------------------------------------------------------------------------

/** 40 examples, batch 8: 5 steps per epoch, 3 epochs = 15 steps; evaluations at 4, 8, 12 and 15. */
function resumableExperiment(method: Record<string, unknown>): string {
  return experiment(
    { 'train.jsonl': keywordRows(40, 11), 'validation.jsonl': keywordRows(16, 12) },
    {
      method,
      training: {
        epochs: 3,
        batchSize: 8,
        learningRate: 0.01,
        warmupRatio: 0.2,
        dropout: 0.1,
        evalEvery: 4,
        logEvery: 1,
        seed: 5,
      },
    },
  );
}

test('resuming from an older checkpoint rewinds the run to it, discards what followed, and reaches the same end', async () => {
  const configFile = resumableExperiment({ type: 'houlsby', bottleneck: 4 });
  const a = await run(configFile);
  const runDir = a.result.runDir;
  const final = path.join(runDir, 'checkpoints', 'step-15');
  const weightsBefore = fs.readFileSync(path.join(final, 'weights.safetensors'));
  const trainLines = (lines: MetricsLine[]) =>
    lines.filter((l) => l.kind === 'train').map(({ step, loss, learningRate }) => ({ step, loss, learningRate }));
  const evalLines = (lines: MetricsLine[]) => lines.filter((l) => l.kind === 'eval');
  const before = metricsLines(runDir);

  const rewound = await run(configFile, { resume: path.join(runDir, 'checkpoints', 'step-12') });
  assert.equal(rewound.result.runDir, runDir);
  assert.equal(ofType(rewound.messages, 'started')[0]!.resumedFromStep, 12);
  assert.equal(ofType(rewound.messages, 'progress')[0]!.step, 13, 'training went on from the older checkpoint');
  assert.ok(weightsBefore.equals(fs.readFileSync(path.join(final, 'weights.safetensors'))), 'the same final weights');
  const after = metricsLines(runDir);
  assert.deepEqual(trainLines(after), trainLines(before));
  assert.deepEqual(evalLines(after), evalLines(before));
  assert.equal(readJson<RunStatus>(path.join(runDir, 'status.json')).state, 'finished');
});

const CANCEL_AT = 6; // mid-epoch, not an evaluation step, so the cancel writes its own checkpoint

for (const method of [
  { type: 'houlsby', bottleneck: 4 },
  { type: 'adamix', bottleneck: 4, experts: 3, consistencyWeight: 1 },
]) {
  test(`${method.type}: cancel at step ${CANCEL_AT} then resume gives bit-identical weights and metrics to an uninterrupted run`, async () => {
    const configFile = resumableExperiment(method);
    const a = await run(configFile);
    assert.equal(a.result.state, 'finished');

    const first = await cancelAfter(configFile, CANCEL_AT);
    assert.equal(first.result.state, 'stopped');
    assert.equal(first.result.reason, 'cancelled');
    const runDirB = first.result.runDir;
    assert.notEqual(runDirB, a.result.runDir);
    assert.ok(checkpointSteps(runDirB).includes(CANCEL_AT));

    const resumed = await run(configFile, { resume: runDirB });
    assert.equal(resumed.result.runDir, runDirB);
    assert.equal(resumed.result.state, 'finished');
    const started = ofType(resumed.messages, 'started')[0]!;
    assert.equal(started.resumedFromStep, CANCEL_AT);
    assert.equal(ofType(resumed.messages, 'progress')[0]!.step, CANCEL_AT + 1);

    // The final checkpoints are byte for byte the same.
    const finalA = path.join(a.result.runDir, 'checkpoints', 'step-15');
    const finalB = path.join(runDirB, 'checkpoints', 'step-15');
    for (const name of ['weights.safetensors', 'optimizer.safetensors']) {
      const bytesA = fs.readFileSync(path.join(finalA, name));
      const bytesB = fs.readFileSync(path.join(finalB, name));
      assert.ok(bytesA.equals(bytesB), `${name} differs between the uninterrupted and the resumed run`);
    }
    const infoA = readJson<CheckpointInfo>(path.join(finalA, 'checkpoint.json'));
    const infoB = readJson<CheckpointInfo>(path.join(finalB, 'checkpoint.json'));
    assert.deepEqual(
      { ...infoB, created: '' },
      { ...infoA, created: '' },
      'RNG, routing counts, optimizer steps and metrics agree',
    );
    if (method.type === 'adamix') {
      // Routing really was random: more than one down-projection expert was used somewhere.
      const counts = Object.values(infoA.trainer.routing);
      assert.ok(
        counts.length > 0 && counts.some((c) => c.down.filter((n) => n > 0).length > 1),
        JSON.stringify(infoA.trainer.routing),
      );
    }

    // The same evaluations, the same best checkpoint, the same per-step training losses.
    assert.deepEqual(resumed.result.bestMetrics, a.result.bestMetrics);
    assert.equal(path.basename(resumed.result.bestCheckpoint!), path.basename(a.result.bestCheckpoint!));
    const linesA = metricsLines(a.result.runDir);
    const linesB = metricsLines(runDirB);
    const evals = (lines: MetricsLine[]) => lines.filter((l) => l.kind === 'eval');
    assert.deepEqual(evals(linesB), evals(linesA));
    assert.deepEqual(
      evals(linesA).map((l) => l.step),
      [4, 8, 12, 15],
    );
    const losses = (lines: MetricsLine[]) =>
      lines
        .filter((l) => l.kind === 'train')
        .map(({ step, epoch, loss, learningRate }) => ({ step, epoch, loss, learningRate }));
    assert.deepEqual(losses(linesB), losses(linesA));
    assert.equal(losses(linesA).length, 15);

    // No step is logged twice in the resumed run's log.
    const keys = linesB.map((l) => `${l.kind}/${l.split ?? ''}/${l.step}`);
    assert.deepEqual(
      keys.filter((k, i) => keys.indexOf(k) !== i),
      [],
      'duplicate metrics lines',
    );
    assert.equal(readJson<RunStatus>(path.join(runDirB, 'status.json')).state, 'finished');
  });
}

// ---- cancel and early stopping ---------------------------------------------------------------------

test('an abort stops at the step boundary with a checkpoint there: stopped, cancelled', async () => {
  const configFile = experiment(
    { 'train.jsonl': keywordRows(40, 21), 'validation.jsonl': keywordRows(8, 22) },
    { training: { epochs: 100, logEvery: 1 } },
  );
  const { result, messages } = await cancelAfter(configFile, 3);
  assert.equal(result.state, 'stopped');
  assert.equal(result.reason, 'cancelled');
  assert.deepEqual(
    ofType(messages, 'progress').map((p) => p.step),
    [1, 2, 3],
  );
  const checkpoints = ofType(messages, 'checkpoint');
  assert.deepEqual(
    checkpoints.map((c) => c.step),
    [3],
  );
  const dir = path.join(result.runDir, 'checkpoints', 'step-3');
  assert.equal(checkpoints[0]!.dir, dir);
  assert.equal(readJson<CheckpointInfo>(path.join(dir, 'checkpoint.json')).step, 3);
  assert.ok(fs.existsSync(path.join(dir, 'weights.safetensors')));
  const status = readJson<RunStatus>(path.join(result.runDir, 'status.json'));
  assert.equal(status.state, 'stopped');
  assert.equal(status.reason, 'cancelled');
  assert.equal(status.step, 3);
  assert.equal(status.totalSteps, 500);
});

test('an abort during the last step lets the run finish with its final evaluation', async () => {
  // A cancel checkpoint at totalSteps would carry no metrics, and a resume from it would have no
  // step left to run, so the final evaluation would never happen.
  const configFile = experiment(
    { 'train.jsonl': keywordRows(24, 25), 'validation.jsonl': keywordRows(8, 26) },
    { training: { maxSteps: 3, evalEvery: 2, logEvery: 1 } },
  );
  const { result, messages } = await cancelAfter(configFile, 3);
  assert.equal(result.state, 'finished');
  assert.equal(result.reason, undefined);
  const validation = ofType(messages, 'metrics').filter((m) => m.split === 'validation');
  assert.deepEqual(
    validation.map((m) => m.step),
    [2, 3],
  );
  const info = readJson<CheckpointInfo>(path.join(result.runDir, 'checkpoints', 'step-3', 'checkpoint.json'));
  assert.ok(info.metrics, 'the last checkpoint carries the final evaluation');
  assert.equal(readJson<RunStatus>(path.join(result.runDir, 'status.json')).state, 'finished');
});

test('early stopping with patience 1 ends a run that cannot improve before its last step', async () => {
  // Random labels and a negligible learning rate (the schema requires > 0): the metric never improves.
  const randomLabel = (_i: number, rng: Rng) => (rng.next() < 0.5 ? 'pos' : 'neg');
  const configFile = experiment(
    { 'train.jsonl': keywordRows(40, 31, randomLabel), 'validation.jsonl': keywordRows(16, 32, randomLabel) },
    { training: { maxSteps: 30, learningRate: 1e-9, evalEvery: 2, logEvery: 1, earlyStopping: { patience: 1 } } },
  );
  const { result, messages } = await run(configFile);
  assert.equal(result.reason, 'early-stopping');
  assert.equal(result.state, 'finished', 'early stopping is a normal end of training');
  const validation = ofType(messages, 'metrics').filter((m) => m.split === 'validation');
  assert.deepEqual(
    validation.map((m) => [m.step, m.isBest]),
    [
      [2, true],
      [4, false],
    ],
  );
  assert.equal(ofType(messages, 'progress').at(-1)!.step, 4);
  assert.equal(result.bestCheckpoint, path.join(result.runDir, 'checkpoints', 'step-2'));
  const status = readJson<RunStatus>(path.join(result.runDir, 'status.json'));
  assert.equal(status.state, 'finished', 'early stopping is a normal end of training');
  assert.equal(status.reason, 'early-stopping');
  assert.equal(status.step, 4);
  assert.ok(status.step < status.totalSteps);
});

// ---- regression ----------------------------------------------------------------------------------------

test('a regression task (numeric labels, metric pearson) trains and reports pearson, spearman and mse', async () => {
  const score = (i: number, rng: Rng) => (i % 2 ? 4 : 1) + Math.round(rng.next() * 10) / 10;
  const configFile = experiment(
    { 'train.jsonl': keywordRows(32, 41, score), 'validation.jsonl': keywordRows(16, 42, score) },
    { task: { type: 'regression', metric: 'pearson' }, training: { maxSteps: 6, evalEvery: 3, logEvery: 1 } },
  );
  const { result, messages } = await run(configFile);
  assert.equal(result.state, 'finished');
  const validation = ofType(messages, 'metrics').filter((m) => m.split === 'validation');
  assert.deepEqual(
    validation.map((m) => m.step),
    [3, 6],
  );
  for (const m of validation) {
    for (const key of ['pearson', 'spearman', 'mse', 'loss'])
      assert.ok(Number.isFinite(m.metrics[key]), `${key}: ${m.metrics[key]}`);
    assert.ok(Math.abs(m.metrics.pearson!) <= 1 && Math.abs(m.metrics.spearman!) <= 1);
    assert.equal(m.metrics.accuracy, undefined);
  }
  assert.ok(result.bestMetrics && Number.isFinite(result.bestMetrics.pearson), JSON.stringify(result.bestMetrics));
  const info = readJson<CheckpointInfo>(path.join(result.bestCheckpoint!, 'checkpoint.json'));
  assert.deepEqual(info.labelNames, []);
  assert.equal(ofType(messages, 'started')[0]!.placement.trainableParams > 0, true);
});

// ---- bad inputs ------------------------------------------------------------------------------------

describe('bad inputs reject with the named error', () => {
  test('a malformed JSONL line: DataError naming the file and line, and no run folder', async () => {
    const lines = keywordRows(10, 51).split('\n');
    lines[2] = '{"text": "good movie", "label": ';
    const configFile = experiment({ 'train.jsonl': lines.join('\n'), 'validation.jsonl': keywordRows(4, 52) });
    const err = await rejection(train(configFile));
    assert.ok(err instanceof DataError, `${err.name}: ${err.message}`);
    assert.equal(err.file, path.join(path.dirname(configFile), 'train.jsonl'));
    assert.equal(err.line, 3);
    assert.match(err.message, /train\.jsonl:3: malformed JSON/);
    assert.ok(!fs.existsSync(path.join(path.dirname(configFile), 'runs')), 'a data error leaves no run folder behind');
  });

  test('an unknown label in the validation file: DataError naming the file and line', async () => {
    const lines = keywordRows(4, 53).trim().split('\n');
    lines[1] = JSON.stringify({ text: 'the plot was fun', label: 'maybe' });
    const configFile = experiment({ 'train.jsonl': keywordRows(10, 54), 'validation.jsonl': `${lines.join('\n')}\n` });
    const err = await rejection(train(configFile));
    assert.ok(err instanceof DataError, `${err.name}: ${err.message}`);
    assert.equal(err.file, path.join(path.dirname(configFile), 'validation.jsonl'));
    assert.equal(err.line, 2);
    assert.match(err.message, /unknown label "maybe"/);
  });

  test('a config schema error: ConfigError with the JSON path', async () => {
    const configFile = experiment(
      { 'train.jsonl': keywordRows(10, 55), 'validation.jsonl': keywordRows(4, 56) },
      { training: { batchSize: 0 } },
    );
    const err = await rejection(train(configFile));
    assert.ok(err instanceof ConfigError, `${err.name}: ${err.message}`);
    assert.equal(err.file, configFile);
    assert.equal(err.path, '/training/batchSize');
    assert.ok(err.line !== undefined && err.line > 1, `line ${err.line}`);
  });

  test('resuming from a folder that is not a run: CheckpointError', async () => {
    const notARun = fs.mkdtempSync(path.join(root, 'not-a-run-'));
    fs.writeFileSync(path.join(notARun, 'notes.txt'), 'hello');
    const err = await rejection(train('unused.peft.json', { resume: notARun }));
    assert.ok(err instanceof CheckpointError, `${err.name}: ${err.message}`);
    assert.equal(err.file, notARun);
  });

  test('resuming from a checkpoint with a truncated weights.safetensors: CheckpointError naming the file; status failed', async () => {
    const configFile = experiment(
      { 'train.jsonl': keywordRows(40, 57), 'validation.jsonl': keywordRows(8, 58) },
      { training: { epochs: 100, logEvery: 1 } },
    );
    const { result } = await cancelAfter(configFile, 2);
    const weights = path.join(result.runDir, 'checkpoints', 'step-2', 'weights.safetensors');
    const bytes = fs.readFileSync(weights);
    fs.writeFileSync(weights, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const err = await rejection(train(configFile, { resume: result.runDir }));
    assert.ok(err instanceof CheckpointError, `${err.name}: ${err.message}`);
    assert.equal(err.file, weights);
    assert.match(err.message, /truncated/);
    const status = readJson<RunStatus>(path.join(result.runDir, 'status.json'));
    assert.equal(status.state, 'failed');
    assert.deepEqual(status.error, { name: 'CheckpointError', message: err.message });
  });

  test('a loss that overflows mid-run fails the run: DataError, and status.json says failed with the message', async () => {
    // Regression targets of 1e30: the squared error overflows float32 to Infinity at step 1.
    const huge = () => 1e30;
    const configFile = experiment(
      { 'train.jsonl': keywordRows(16, 59, huge), 'validation.jsonl': keywordRows(4, 60, huge) },
      { task: { type: 'regression', metric: 'pearson' }, training: { maxSteps: 4 } },
    );
    const messages: WorkerMessage[] = [];
    const err = await rejection(train(configFile, { onMessage: (m) => messages.push(m) }));
    assert.ok(err instanceof DataError, `${err.name}: ${err.message}`);
    assert.match(err.message, /training loss became (Infinity|NaN) at step 1/);
    const started = ofType(messages, 'started')[0];
    assert.ok(started, 'the run had started');
    const status = readJson<RunStatus>(path.join(started.runDir, 'status.json'));
    assert.equal(status.state, 'failed');
    assert.deepEqual(status.error, { name: 'DataError', message: err.message });
    assert.ok(status.ended);
  });
});

// ---- micro-batches (gradient accumulation) ---------------------------------------------------------

describe('training.microBatchSize: a batch in smaller passes makes the same updates', () => {
  const finalWeights = (runDir: string) =>
    readSafetensors(path.join(runDir, 'checkpoints', `step-${STEPS}`, 'weights.safetensors')).tensors;
  const STEPS = 10;

  for (const method of [
    { type: 'houlsby', bottleneck: 4 },
    { type: 'adamix', bottleneck: 4, experts: 3, consistencyWeight: 1 },
    { type: 'adamix', bottleneck: 4, experts: 3, consistencyWeight: 0 },
  ]) {
    test(`${method.type} ${JSON.stringify(method)}: batch 8 in passes of 3 (3 + 3 + 2) ends with the weights and losses of one pass of 8`, async () => {
      // Dropout 0: with dropout the passes would draw other masks than the single pass does.
      const training = {
        maxSteps: STEPS,
        batchSize: 8,
        learningRate: 0.01,
        dropout: 0,
        evalEvery: STEPS,
        logEvery: 1,
        seed: 5,
      };
      const files = { 'train.jsonl': keywordRows(40, 11), 'validation.jsonl': keywordRows(16, 12) };
      const whole = await run(experiment(files, { method, training }));
      const split = await run(experiment(files, { method, training: { ...training, microBatchSize: 3 } }));
      assert.equal(split.result.state, 'finished');
      const a = finalWeights(whole.result.runDir);
      const b = finalWeights(split.result.runDir);
      assert.deepEqual([...b.keys()], [...a.keys()]);
      for (const [name, tensor] of a) {
        const x = toFloat32(tensor);
        const y = toFloat32(b.get(name)!);
        const worst = x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
        assert.ok(worst < 1e-4, `${name} differs by ${worst}`);
      }
      const losses = (o: Outcome) =>
        metricsLines(o.result.runDir)
          .filter((l) => l.kind === 'train')
          .map((l) => l.loss!);
      losses(split).forEach((loss, i) =>
        assert.ok(Math.abs(loss - losses(whole)[i]!) < 1e-4, `step ${i + 1}: ${loss} vs ${losses(whole)[i]}`),
      );
    });
  }
});

// ---- the memory plan ---------------------------------------------------------------------------------

describe('the memory plan (wasm): a batch that does not fit trains in passes that do, one row that cannot is refused before training', () => {
  const STEPS = 6;
  const training = {
    backend: 'wasm',
    maxSteps: STEPS,
    batchSize: 8,
    learningRate: 0.01,
    dropout: 0,
    evalEvery: STEPS,
    logEvery: 1,
    seed: 5,
  };
  const files = { 'train.jsonl': keywordRows(40, 21), 'validation.jsonl': keywordRows(16, 22) };
  const method = { type: 'adamix', bottleneck: 4, experts: 3, consistencyWeight: 1 };
  const started = (o: Outcome) => ofType(o.messages, 'started')[0] as StartedMessage;
  const withLimit = async <T>(mib: number | undefined, f: () => Promise<T>): Promise<T> => {
    if (mib === undefined) delete process.env[MEMORY_LIMIT_ENV];
    else process.env[MEMORY_LIMIT_ENV] = String(mib);
    try {
      return await f();
    } finally {
      delete process.env[MEMORY_LIMIT_ENV];
    }
  };

  test('the passes fit the limit, make the updates one pass makes, are logged, and a resume keeps them', async () => {
    const whole = await withLimit(undefined, () => run(experiment(files, { method, training })));
    const plan = started(whole).memory!;
    assert.ok(plan, 'the started message carries the memory plan');
    assert.equal(plan.rows, 8, 'a tiny model fits a batch of 8 in one pass');
    assert.ok(plan.heldBytes > 0 && plan.rowBytes > 0, JSON.stringify(plan));
    // room for 3.5 rows: passes of 3 (3 + 3 + 2)
    const limitMib = (plan.heldBytes + plan.passBytes + 3.5 * plan.rowBytes) / HEAP_SHARE / 2 ** 20;
    const config = experiment(files, { method, training });
    const split = await withLimit(limitMib, () => cancelAfter(config, 3));
    assert.equal(started(split).memory?.rows, 3);
    assert.equal(started(split).memory?.limitedBy, MEMORY_LIMIT_ENV);
    assert.ok(
      ofType(split.messages, 'log').some((m) =>
        /memory: a batch of 8 sequences .* passes of at most 3 rows/.test(m.message),
      ),
    );
    const checkpoint = readJson<CheckpointInfo>(
      path.join(split.result.runDir, 'checkpoints', 'step-3', 'checkpoint.json'),
    );
    assert.equal(checkpoint.trainer.microBatchSize, 3, 'the checkpoint records the passes');
    // resumed without the limit, the run keeps its passes of 3
    const resumed = await withLimit(undefined, () => run(config, { resume: split.result.runDir }));
    assert.equal(started(resumed).memory?.rows, 3);
    const finalWeights = (runDir: string) =>
      readSafetensors(path.join(runDir, 'checkpoints', `step-${STEPS}`, 'weights.safetensors')).tensors;
    const a = finalWeights(whole.result.runDir);
    const b = finalWeights(resumed.result.runDir);
    for (const [name, tensor] of a) {
      const x = toFloat32(tensor);
      const y = toFloat32(b.get(name)!);
      const worst = x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
      assert.ok(worst < 1e-4, `${name} differs by ${worst}`);
    }
  });

  test('when not even one sequence fits, the run fails before its first step, naming the length field and the numbers', async () => {
    const probe = await withLimit(undefined, () =>
      run(experiment(files, { method, training: { ...training, maxSteps: 1 } })),
    );
    const tooLittle = started(probe).memory!.heldBytes / 2 / 2 ** 20;
    const messages: WorkerMessage[] = [];
    const err = await withLimit(tooLittle, () =>
      rejection(train(experiment(files, { method, training }), { onMessage: (m) => messages.push(m) })),
    );
    assert.ok(err instanceof ConfigError, `${err.name}: ${err.message}`);
    assert.equal(err.path, '/data/maxLength');
    assert.match(
      err.message,
      /out of memory before training: one sequence of \d+ tokens needs [\d.]+ [MG]iB .* PEFT_LAB_MEMORY_LIMIT_MIB leaves [\d.]+ [MG]iB/,
    );
    assert.equal(ofType(messages, 'progress').length, 0, 'no step ran');
  });
});
