/**
 * The training worker as the extension runs it: a forked process spoken to over IPC. It is forked
 * from its TypeScript source through tsx, so these tests never depend on a stale `dist/` build.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CheckpointMessage, FailedMessage, FinishedMessage, LogMessage } from '../../src/protocol/worker';
import { tinyConfig, tinyExperiment } from './helpers/tiny-experiment';
import { WorkerUnderTest, isType } from './helpers/worker-under-test';

const REPO = path.resolve(__dirname, '..', '..');
const WORKER = path.join(REPO, 'src', 'worker', 'worker.ts');
// An absolute URL: a bare `--import tsx` would be resolved from the child's cwd.
const TSX = pathToFileURL(require.resolve('tsx')).href;

let dir: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-worker-'));
});

after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('worker', () => {
  test('a bad config ends in exactly one `failed` message with the ConfigError context, and exit code 1', async () => {
    const file = path.join(dir, 'bad.peft.json');
    const text = JSON.stringify(tinyConfig({ method: { type: 'houlsby', bottleneck: 0 } }), null, 2);
    fs.writeFileSync(file, text);
    const worker = new WorkerUnderTest(dir);
    worker.send({ type: 'train', configFile: file });
    const exit = await worker.exited;
    assert.deepEqual(exit, { code: 1, signal: null }, worker.stderr);
    const failed = worker.ofType('failed');
    assert.equal(failed.length, 1, worker.types().join(', '));
    const { error } = failed[0] as FailedMessage;
    assert.equal(error.name, 'ConfigError');
    assert.equal(error.file, file);
    assert.equal(error.path, '/method/bottleneck');
    assert.equal(error.line, text.split('\n').findIndex((line) => line.includes('"bottleneck": 0')) + 1);
    assert.equal(worker.ofType('finished').length, 0);
    assert.match(worker.stderr, /\/method\/bottleneck: must be >= 1/, 'the output channel shows the error too');
  });

  test('a malformed request is ignored with a log message, and the worker keeps waiting', async () => {
    const worker = new WorkerUnderTest(dir);
    worker.send({ hello: 'world' });
    worker.send({ type: 'fly' });
    const log = await worker.next((m): m is LogMessage => m.type === 'log' && /malformed/.test(m.message));
    assert.equal(log.level, 'warn');
    assert.match(log.message, /hello/);
    assert.match(worker.stderr, /malformed/);
    // Still alive: a cancel before any job simply ends it.
    worker.send({ type: 'cancel' });
    assert.deepEqual(await worker.exited, { code: 0, signal: null });
    assert.equal(worker.ofType('failed').length, 0);
  });

  test('an idle worker exits 0 when its parent disconnects', async () => {
    const worker = new WorkerUnderTest(dir);
    await waitFor(() => worker.stderr.includes('waiting for a request'));
    worker.disconnect();
    assert.deepEqual(await worker.exited, { code: 0, signal: null });
  });

  test('an idle worker exits 0 on SIGTERM', async () => {
    const worker = new WorkerUnderTest(dir);
    // The handler is installed once the worker says it is ready; a SIGTERM before that kills it outright.
    await waitFor(() => worker.stderr.includes('waiting for a request'));
    worker.kill('SIGTERM');
    assert.deepEqual(await worker.exited, { code: 0, signal: null });
  });

  test('started without IPC, it explains how to use the CLI instead', async () => {
    const result = await runWithoutIpc();
    assert.equal(result.code, 2);
    assert.match(result.stderr, /peft-lab train <file\.peft\.json>/);
  });
});

// ---- real runs: only once src/core/train/trainer.ts exports a real `train` ---------------------

function trainerMissingReason(): string | undefined {
  const file = path.join(REPO, 'src', 'core', 'train', 'trainer.ts');
  if (!fs.existsSync(file)) return 'src/core/train/trainer.ts does not exist yet';
  let trainer: { train?: unknown };
  try {
    trainer = require(file) as typeof trainer;
  } catch {
    // A trainer that exists but cannot load is a failure to see, not a reason to skip.
    return undefined;
  }
  return typeof trainer.train === 'function' ? undefined : 'src/core/train/trainer.ts does not export train yet';
}

describe('worker training a tiny model', { skip: trainerMissingReason() }, () => {
  test('sends started, progress, checkpoint, then finished, and exits 0', async () => {
    const file = tinyExperiment(dir);
    const worker = new WorkerUnderTest(dir);
    worker.send({ type: 'train', configFile: file });
    assert.deepEqual(await worker.exited, { code: 0, signal: null }, worker.stderr);
    const types = worker.types().filter((t) => t !== 'log');
    assert.equal(types[0], 'started', types.join(', '));
    assert.ok(types.includes('progress'), types.join(', '));
    assert.ok(types.includes('metrics'), types.join(', '));
    assert.ok(types.indexOf('checkpoint') > types.indexOf('progress'), types.join(', '));
    assert.equal(types.at(-1), 'finished');
    assert.equal(worker.ofType('failed').length, 0);
    const finished = worker.ofType('finished')[0] as FinishedMessage;
    assert.equal(finished.state, 'finished');
    const started = worker.ofType('started')[0];
    assert.equal(finished.runDir, started.runDir);
    assert.equal(started.totalSteps, worker.ofType('progress').at(-1)?.step);
    for (const checkpoint of worker.ofType('checkpoint'))
      assert.ok(fs.existsSync(checkpoint.dir), `missing ${checkpoint.dir}`);
  });

  test('cancel mid-run stops at a step boundary with a checkpoint: finished, stopped, cancelled', async () => {
    // Enough steps that the run cannot end on its own before the cancel arrives.
    const file = tinyExperiment(dir, { epochs: 200 });
    const worker = new WorkerUnderTest(dir);
    worker.send({ type: 'train', configFile: file });
    const progress = await worker.next(isType('progress'));
    worker.send({ type: 'cancel' });
    assert.deepEqual(await worker.exited, { code: 0, signal: null }, worker.stderr);
    const finished = worker.ofType('finished');
    assert.equal(finished.length, 1, worker.types().join(', '));
    assert.equal(finished[0].state, 'stopped');
    assert.equal(finished[0].reason, 'cancelled');
    const checkpoints = worker.ofType('checkpoint') as CheckpointMessage[];
    assert.ok(checkpoints.length > 0, 'a checkpoint is written before stopping');
    const last = checkpoints.at(-1)!;
    assert.ok(last.step >= progress.step && last.step < progress.totalSteps, `checkpoint at step ${last.step}`);
    assert.ok(fs.existsSync(last.dir), `missing ${last.dir}`);
  });

  test('SIGTERM mid-run stops like a cancel', async () => {
    const file = tinyExperiment(dir, { epochs: 200 });
    const worker = new WorkerUnderTest(dir);
    worker.send({ type: 'train', configFile: file });
    await worker.next(isType('progress'));
    worker.kill('SIGTERM');
    assert.deepEqual(await worker.exited, { code: 0, signal: null }, worker.stderr);
    assert.equal(worker.ofType('finished')[0]?.reason, 'cancelled');
    assert.ok(worker.ofType('checkpoint').length > 0);
  });

  test('losing the parent mid-run still writes a checkpoint before exiting', async () => {
    const file = tinyExperiment(dir, { epochs: 200 });
    const worker = new WorkerUnderTest(dir);
    worker.send({ type: 'train', configFile: file });
    await worker.next(isType('progress'));
    worker.disconnect();
    assert.deepEqual(await worker.exited, { code: 0, signal: null }, worker.stderr);
    // No IPC is left to report on, so the worker's stderr (the output channel) tells the story.
    assert.match(worker.stderr, /disconnected; stopping at the next step boundary/);
    assert.match(worker.stderr, /checkpoint at step \d+/);
    assert.match(worker.stderr, /stopped \(cancelled\)/);
  });

  test('a detached run keeps training when the parent goes away, and logs to its run folder', async () => {
    const file = tinyExperiment(dir, { epochs: 3 });
    const worker = new WorkerUnderTest(dir);
    worker.send({ type: 'train', configFile: file, detach: true });
    const started = (await worker.next(isType('started'))) as { runDir: string };
    await worker.next(isType('progress'));
    worker.disconnect();
    assert.deepEqual(await worker.exited, { code: 0, signal: null }, worker.stderr);
    const status = JSON.parse(fs.readFileSync(path.join(started.runDir, 'status.json'), 'utf8'));
    assert.equal(status.state, 'finished', 'the run went on to its last step');
    assert.equal(status.step, status.totalSteps);
    const log = fs.readFileSync(path.join(started.runDir, 'worker.log'), 'utf8');
    assert.match(log, /the extension host went away; training goes on/);
    assert.match(log, /finished after/);
  });
});

function runWithoutIpc(): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, WORKER], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

async function waitFor(condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
