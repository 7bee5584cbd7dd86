/** Following a run through its folder, as a reloaded window does. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { RunFollower, findLiveRuns, type FollowedOutcome } from '../../src/host/training/run-follower';
import type { WorkerMessage } from '../../src/protocol/worker';

function runFolder(pid: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-follow-'));
  writeStatus(dir, { state: 'running', pid, step: 0, totalSteps: 30 });
  return dir;
}

function writeStatus(dir: string, fields: Record<string, unknown>): void {
  const status = {
    name: 'x',
    method: 'houlsby',
    configFile: '/w/x.peft.json',
    started: '2026-11-25T00:00:00.000Z',
    ...fields,
  };
  fs.writeFileSync(path.join(dir, 'status.json'), JSON.stringify(status));
}

function until<T>(get: () => T | undefined, ms = 5000): Promise<T> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      const value = get();
      if (value !== undefined) resolve(value);
      else if (Date.now() - start > ms) reject(new Error('timed out'));
      else setTimeout(tick, 50);
    };
    tick();
  });
}

test('live runs are found by status and process; dead or finished ones are not', () => {
  const live = runFolder(process.pid);
  const dead = runFolder(2 ** 22 + 12345);
  const done = runFolder(process.pid);
  writeStatus(done, { state: 'finished', pid: process.pid });
  assert.deepEqual(
    findLiveRuns([live, dead, done]).map((r) => r.runDir),
    [live],
  );
});

test('progress and evaluations arrive from metrics.jsonl, each line once, and the end from status.json', async () => {
  const dir = runFolder(process.pid);
  const messages: WorkerMessage[] = [];
  let outcome: FollowedOutcome | undefined;
  const [run] = findLiveRuns([dir]);
  const follower = new RunFollower(
    run!,
    (m) => messages.push(m),
    (o) => (outcome = o),
  );
  const metrics = path.join(dir, 'metrics.jsonl');
  fs.appendFileSync(
    metrics,
    JSON.stringify({
      kind: 'train',
      step: 10,
      epoch: 0,
      loss: 0.7,
      learningRate: 1e-3,
      examplesPerSecond: 50,
      elapsedMs: 1000,
    }) + '\n',
  );
  await until(() => (messages.length === 1 ? true : undefined));
  // a half-written line is held back until it is complete
  fs.appendFileSync(
    metrics,
    JSON.stringify({
      kind: 'eval',
      split: 'validation',
      step: 15,
      epoch: 0,
      accuracy: 0.8,
      loss: 0.5,
      isBest: true,
    }).slice(0, 20),
  );
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(messages.length, 1);
  fs.appendFileSync(
    metrics,
    JSON.stringify({
      kind: 'eval',
      split: 'validation',
      step: 15,
      epoch: 0,
      accuracy: 0.8,
      loss: 0.5,
      isBest: true,
    }).slice(20) + '\n',
  );
  await until(() => (messages.length === 2 ? true : undefined));
  assert.deepEqual(messages[0], {
    type: 'progress',
    step: 10,
    totalSteps: 30,
    epoch: 0,
    loss: 0.7,
    learningRate: 1e-3,
    examplesPerSecond: 50,
    elapsedMs: 1000,
  });
  assert.deepEqual(messages[1], {
    type: 'metrics',
    step: 15,
    split: 'validation',
    metrics: { accuracy: 0.8, loss: 0.5 },
    isBest: true,
  });
  writeStatus(dir, {
    state: 'finished',
    pid: process.pid,
    ended: '2026-11-25T00:01:00.000Z',
    bestMetrics: { accuracy: 0.8 },
  });
  const ended = await until(() => outcome);
  assert.equal(ended.kind, 'finished');
  assert.equal(ended.kind === 'finished' && ended.message.durationMs, 60_000);
  follower.dispose();
});

test('a process that dies while its status says running is reported as a crash with its last log lines', async () => {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  const dir = runFolder(child.pid!);
  fs.writeFileSync(path.join(dir, 'worker.log'), 'line one\nout of memory\n');
  let outcome: FollowedOutcome | undefined;
  const follower = new RunFollower(
    findLiveRuns([dir])[0]!,
    () => {},
    (o) => (outcome = o),
  );
  child.kill('SIGKILL');
  const ended = await until(() => outcome);
  assert.equal(ended.kind, 'failed');
  assert.equal(ended.kind === 'failed' && ended.error.name, 'WorkerCrashedError');
  assert.match(ended.kind === 'failed' ? ended.error.message : '', /out of memory/);
  follower.dispose();
});

test("stop sends SIGTERM to the run's process", async () => {
  const child = spawn(process.execPath, [
    '-e',
    'process.on("SIGTERM", () => { console.log("graceful"); process.exit(0); }); console.log("ready"); setTimeout(() => {}, 60000)',
  ]);
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await until(() => (out.includes('ready') ? true : undefined)); // its handler is in place
  const dir = runFolder(child.pid!);
  const follower = new RunFollower(
    findLiveRuns([dir])[0]!,
    () => {},
    () => {},
  );
  follower.stop();
  const code = await new Promise((r) => child.on('exit', r));
  assert.equal(code, 0);
  assert.match(out, /graceful/);
  follower.dispose();
});
