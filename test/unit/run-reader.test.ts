/**
 * The one reader of run folders (src/core/checkpoint/run-reader.ts, jsonl-tail.ts) and the metrics
 * line contract (src/protocol/metrics.ts), and that the Runs view, the dashboard and the follower
 * of a reattached run agree through it: on a rewritten metrics.jsonl, on whether a run still runs,
 * and on where a run's paths point.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JsonlTail } from '../../src/core/checkpoint/jsonl-tail';
import { MetricsTail, readRunStatus, readRunStatusChecked } from '../../src/core/checkpoint/run-reader';
import { statusForDisk, type RunStatus } from '../../src/core/checkpoint/run-folder';
import { metricsLineText, parseMetricsLine } from '../../src/protocol/metrics';
import { RunsModel } from '../../src/host/runs/runs-model';
import { RunMetricsLog } from '../../src/host/runs/metrics-log';
import { RunData } from '../../src/host/dashboard/dashboard-data';
import { RunFollower, findLiveRuns } from '../../src/host/training/run-follower';
import type { WorkerMessage } from '../../src/protocol/worker';
import { until } from './helpers/until';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-run-reader-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let folders = 0;
/** A run folder in a runs folder of its own, status running with `pid`, and `lines` train lines. */
function runFolder(pid: number, lines = 3): { runs: string; dir: string } {
  const runs = path.join(root, `runs-${++folders}`);
  const dir = path.join(runs, `r-${folders}`);
  fs.mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ name: 'r', task: { metric: 'accuracy' } }));
  writeStatus(dir, { state: 'running', pid });
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), trainLines(1, lines));
  return { runs, dir };
}

function writeStatus(dir: string, fields: Partial<RunStatus>): void {
  const status = {
    name: 'r',
    method: 'houlsby',
    configFile: path.join(root, 'r.peft.json'),
    started: '2026-12-01T00:00:00.000Z',
    step: 0,
    totalSteps: 30,
    ...fields,
  };
  fs.writeFileSync(path.join(dir, 'status.json'), JSON.stringify(status));
}

function trainLines(from: number, to: number, loss = 0.5): string {
  let text = '';
  for (let step = from; step <= to; step++) {
    text += `${metricsLineText({ kind: 'train', step, epoch: 0, loss, learningRate: 1e-3, examplesPerSecond: 50, elapsedMs: step })}\n`;
  }
  return text;
}

/** Replaces the file as the writer does (a new file renamed into place), with `text` (not shorter than before). */
function rewrite(file: string, text: string): void {
  fs.writeFileSync(`${file}.tmp-1`, text);
  fs.renameSync(`${file}.tmp-1`, file);
}

describe('the metrics line contract', () => {
  test('what the writer writes is what every reader parses; evaluation metrics are one object', () => {
    const text = metricsLineText({
      kind: 'eval',
      split: 'validation',
      step: 4,
      epoch: 0,
      metrics: { accuracy: 0.5, loss: 0.7 },
      isBest: true,
    });
    assert.equal(
      text,
      '{"kind":"eval","split":"validation","step":4,"epoch":0,"accuracy":0.5,"loss":0.7,"isBest":true}',
      'the log keeps its format',
    );
    assert.deepEqual(parseMetricsLine(text), {
      kind: 'eval',
      split: 'validation',
      step: 4,
      epoch: 0,
      metrics: { accuracy: 0.5, loss: 0.7 },
      isBest: true,
    });
    assert.deepEqual(
      parseMetricsLine(
        metricsLineText({
          kind: 'train',
          step: 2,
          epoch: 0,
          loss: NaN,
          learningRate: 1e-3,
          examplesPerSecond: 9,
          elapsedMs: 5,
        }),
      ),
      {
        kind: 'train',
        step: 2,
        epoch: 0,
        loss: null,
        learningRate: 1e-3,
        examplesPerSecond: 9,
        elapsedMs: 5,
      },
    );
    assert.throws(
      () => metricsLineText({ kind: 'eval', split: 'test', step: 1, metrics: { step: 3 } }),
      /a metric cannot be called "step"/,
    );
    assert.match((parseMetricsLine('{"kind":"x","step":1}') as { error: string }).error, /unknown record kind "x"/);
    assert.match((parseMetricsLine('{"kind":"train"}') as { error: string }).error, /no numeric "step"/);
  });
});

describe('JsonlTail', () => {
  test('reads only what was appended, keeps a partial last line for the next read, numbers the lines', () => {
    const file = path.join(root, 'tail.jsonl');
    fs.writeFileSync(file, 'a\nb\nc');
    const tail = new JsonlTail(file);
    assert.deepEqual(tail.read(), {
      reset: false,
      lines: ['a', 'b'],
      firstLine: 1,
      partialLastLine: true,
      missing: false,
    });
    fs.appendFileSync(file, 'c\nd\n');
    assert.deepEqual(tail.read(), {
      reset: false,
      lines: ['cc', 'd'],
      firstLine: 3,
      partialLastLine: false,
      missing: false,
    });
    assert.equal(tail.bytesRead, Buffer.byteLength('a\nb\ncc\nd\n'));
  });

  test('a file replaced by a longer one (new inode) is read again from the top, and so is a truncated one', () => {
    const file = path.join(root, 'rewritten.jsonl');
    fs.writeFileSync(file, 'one\ntwo\n');
    const tail = new JsonlTail(file);
    tail.read();
    rewrite(file, 'ONE\nTWO\nTHREE\n');
    assert.deepEqual(tail.read(), {
      reset: true,
      lines: ['ONE', 'TWO', 'THREE'],
      firstLine: 1,
      partialLastLine: false,
      missing: false,
    });
    fs.truncateSync(file, 4);
    assert.deepEqual(tail.read(), {
      reset: true,
      lines: ['ONE'],
      firstLine: 1,
      partialLastLine: false,
      missing: false,
    });
  });
});

describe('every reader detects a rewritten metrics.jsonl, also one that did not shrink', () => {
  // a resume that rewinds drops later lines and then logs again: the new file can be as long as the old
  test('the Runs view', () => {
    const { dir } = runFolder(process.pid, 5);
    const log = new RunMetricsLog(dir);
    log.update();
    assert.equal(log.log.lastTrain?.step, 5);
    rewrite(path.join(dir, 'metrics.jsonl'), trainLines(1, 6, 0.25));
    assert.equal(log.update(), true);
    assert.equal(log.log.trainLines, 6, 'read from the top, not appended to what was there');
    assert.equal(log.log.lastTrain?.loss, 0.25);
  });

  test('the dashboard', () => {
    const { dir } = runFolder(process.pid, 5);
    const data = new RunData(dir);
    rewrite(path.join(dir, 'metrics.jsonl'), trainLines(1, 6, 0.25));
    const changes = data.refresh();
    assert.equal(changes.reset, true);
    assert.deepEqual(data.snapshot(false).train.loss, [0.25, 0.25, 0.25, 0.25, 0.25, 0.25]);
  });

  test('the follower of a reattached run', async () => {
    const { dir } = runFolder(process.pid, 5);
    const messages: WorkerMessage[] = [];
    const follower = new RunFollower(
      findLiveRuns([dir])[0]!,
      (m) => messages.push(m),
      () => {},
    );
    try {
      assert.equal(messages.length, 5);
      rewrite(path.join(dir, 'metrics.jsonl'), trainLines(1, 6, 0.25));
      await until(() => messages.length >= 11, 'the rewritten file read again');
      const again = messages.slice(5).map((m) => (m.type === 'progress' ? `${m.step}:${m.loss}` : m.type));
      assert.deepEqual(again, ['1:0.25', '2:0.25', '3:0.25', '4:0.25', '5:0.25', '6:0.25']);
    } finally {
      follower.dispose();
    }
  });
});

test('a metrics.jsonl that goes away and comes back is read from the top once, in the tree and the dashboard', () => {
  const { dir } = runFolder(process.pid, 4);
  const file = path.join(dir, 'metrics.jsonl');
  const log = new RunMetricsLog(dir);
  log.update();
  const data = new RunData(dir);
  fs.rmSync(file);
  log.update();
  data.refresh();
  fs.writeFileSync(file, trainLines(1, 2));
  log.update();
  data.refresh();
  assert.equal(log.log.trainLines, 2);
  assert.deepEqual(data.snapshot(false).train.step, [1, 2]);
});

describe('one liveness rule', () => {
  test('a run whose pid answers EPERM (a process of another user) is running in the tree, the dashboard and the follower alike', () => {
    const pid = 2 ** 22 + 4321;
    const { runs, dir } = runFolder(pid);
    const kill = process.kill;
    // what signal 0 says for a live process this user may not signal (the tests may run as root, which may signal all)
    process.kill = ((target: number, signal?: string | number) => {
      if (target === pid) throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
      return kill.call(process, target, signal);
    }) as typeof process.kill;
    try {
      const model = new RunsModel();
      model.setRoots([runs]);
      const record = model.run(dir)!;
      assert.equal(record.state, 'running');
      assert.equal(record.interrupted, undefined);
      assert.equal(new RunData(dir).state, 'running');
      assert.deepEqual(
        findLiveRuns([dir]).map((r) => r.runDir),
        [dir],
        'a reload follows the run the tree shows running',
      );
    } finally {
      process.kill = kill;
    }
  });

  test('a run whose process is gone is interrupted everywhere', () => {
    const { runs, dir } = runFolder(2 ** 22 + 4322);
    const model = new RunsModel();
    model.setRoots([runs]);
    assert.equal(model.run(dir)!.state, 'failed');
    assert.match(model.run(dir)!.interrupted ?? '', /is gone/);
    assert.equal(new RunData(dir).state, 'failed');
    assert.deepEqual(findLiveRuns([dir]), []);
  });
});

describe('paths in status.json', () => {
  test('are written relative to the run folder and read back absolute, from there or from wherever the folder was copied', () => {
    const { dir } = runFolder(process.pid);
    const status = readRunStatus(dir)!;
    const best = path.join(dir, 'checkpoints', 'step-20');
    const onDisk = statusForDisk(dir, { ...status, state: 'finished', bestCheckpoint: best });
    assert.equal(onDisk.bestCheckpoint, path.join('checkpoints', 'step-20'));
    assert.ok(!path.isAbsolute(onDisk.configFile), onDisk.configFile);
    fs.writeFileSync(path.join(dir, 'status.json'), JSON.stringify(onDisk));
    assert.equal(readRunStatus(dir)!.bestCheckpoint, best);
    assert.equal(readRunStatus(dir)!.configFile, path.join(root, 'r.peft.json'));

    const copy = path.join(root, 'elsewhere', path.basename(dir));
    fs.cpSync(dir, copy, { recursive: true });
    assert.equal(readRunStatus(copy)!.bestCheckpoint, path.join(copy, 'checkpoints', 'step-20'));
    assert.equal(new RunData(copy).bestCheckpoint, path.join(copy, 'checkpoints', 'step-20'));
  });

  test('the absolute paths older runs wrote are still read as they are', () => {
    const { dir } = runFolder(process.pid);
    writeStatus(dir, {
      state: 'finished',
      pid: 1,
      bestCheckpoint: '/old/place/run/checkpoints/step-10',
      configFile: '/old/place/x.peft.json',
    });
    assert.equal(readRunStatus(dir)!.bestCheckpoint, '/old/place/run/checkpoints/step-10');
    assert.equal(new RunData(dir).bestCheckpoint, '/old/place/run/checkpoints/step-10');
  });

  test('a status.json that is not a run status is a problem naming the field', () => {
    const { dir } = runFolder(process.pid);
    fs.writeFileSync(path.join(dir, 'status.json'), '{"state":"sleeping"}');
    assert.match(
      (readRunStatusChecked(dir) as { error: string }).error,
      /status\.json has no valid "state" .* found "sleeping"/,
    );
    assert.equal(readRunStatus(dir), undefined);
  });
});

test('MetricsTail names the broken lines by their line number in the file', () => {
  const { dir } = runFolder(process.pid, 2);
  const tail = new MetricsTail(dir);
  tail.read();
  fs.appendFileSync(path.join(dir, 'metrics.jsonl'), '\nnot json\n');
  const read = tail.read();
  assert.deepEqual(
    read.broken.map((b) => b.line),
    [4],
  );
});
