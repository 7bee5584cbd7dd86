/**
 * Run folders that cannot be corrupted (issue 18): one writer, honest state, no litter, disk errors
 * that say what they were writing, output only where it belongs, resumes that refuse a changed
 * config or a finished run. Real tiny trainings in temporary folders, on the cpu backend.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { evaluateCheckpoint, train, type TrainOptions } from '../../src/core/train/trainer';
import { ConfigError, DiskError, RunFinishedError } from '../../src/core/errors';
import { RunLockedError } from '../../src/core/checkpoint/run-lock';
import type { RunStatus } from '../../src/core/checkpoint/run-folder';
import { metricsLines, ofType, readJson, rejection, runRecorded, type Outcome } from './helpers/runs';
import { tinyConfig, writeTrainingData } from './helpers/tiny-experiment';
import { runCli } from './helpers/run-cli';
import { RunData } from '../../src/host/dashboard/dashboard-data';
import { pendingConfigChanges } from '../../src/core/train/run-start';
import { loadAnyConfig } from '../../src/core/config/load';

let root: string;

before(() => {
  delete process.env.PEFT_LAB_BACKEND;
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-integrity-'));
});

after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** A folder with the tiny config (training overrides merged) and its data; returns the config file. */
function experiment(
  training: Record<string, unknown> = {},
  overrides: Record<string, unknown> = {},
  parent = root,
): string {
  const folder = fs.mkdtempSync(path.join(parent, 'exp-'));
  writeTrainingData(path.join(folder, 'train.jsonl'));
  const config = tinyConfig(overrides);
  const file = path.join(folder, 'tiny.peft.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ ...config, training: { ...(config.training as object), evalEvery: 2, ...training } }, null, 2),
  );
  return file;
}

/** The parts of a config file the tests below rewrite. */
type EditableConfig = { training: Record<string, unknown>; method: Record<string, unknown> };

function editConfig(file: string, edit: (config: EditableConfig) => void): void {
  const config = JSON.parse(fs.readFileSync(file, 'utf8')) as EditableConfig;
  edit(config);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
}

function run(configFile: string, options: TrainOptions = {}): Promise<Outcome> {
  return runRecorded(train, configFile, options);
}

/** Trains until `step`, then stops at the step boundary (a checkpoint there): a run to resume. */
async function stoppedRun(configFile: string, step: number): Promise<string> {
  const controller = new AbortController();
  const { result } = await run(configFile, {
    signal: controller.signal,
    onMessage: (m) => m.type === 'progress' && m.step >= step && controller.abort(),
  });
  assert.equal(result.state, 'stopped');
  return result.runDir;
}

function everything(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true }).map(String).sort();
}

function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of everything(dir)) {
    const full = path.join(dir, name);
    if (fs.statSync(full).isFile()) files.set(name, fs.readFileSync(full).toString('base64'));
  }
  return files;
}

describe('one writer per run folder', () => {
  test('two resumes of a stopped run at the same moment: one trains, the other is refused naming the holder, and metrics.jsonl has each step once', async () => {
    const configFile = experiment({ epochs: 3 });
    const runDir = await stoppedRun(configFile, 3);
    const [a, b] = await Promise.allSettled([run(configFile, { resume: runDir }), run(configFile, { resume: runDir })]);
    const outcomes = [a, b];
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    assert.equal(refused.length, 1, 'exactly one resume is refused');
    assert.ok(refused[0]!.reason instanceof RunLockedError, String(refused[0]!.reason));
    assert.match(
      refused[0]!.reason.message,
      new RegExp(`the run is in use by pid ${process.pid} on ${os.hostname()} \\(resume\\) since `),
    );
    const trainSteps = metricsLines(runDir)
      .filter((l) => l.kind === 'train')
      .map((l) => l.step);
    assert.deepEqual(
      trainSteps,
      [...new Set(trainSteps)].sort((x, y) => x - y),
      'no repeated train steps',
    );
    assert.equal(readJson<RunStatus>(path.join(runDir, 'status.json')).state, 'finished');
    assert.equal(fs.existsSync(path.join(runDir, 'run.lock')), false, 'the lock is released at the end');
  });

  test('a resume while the run still trains in another process is refused by the CLI naming that pid', async () => {
    const configFile = experiment({ epochs: 400 });
    const folder = path.dirname(configFile);
    let runDir = '';
    let second: Awaited<ReturnType<typeof runCli>> | undefined;
    const first = await runCli(['train', 'tiny.peft.json', '--json'], folder, {
      timeoutMs: 180_000,
      onStdout: (stdout, child) => {
        if (runDir || !stdout.includes('"type":"checkpoint"')) return;
        runDir = (JSON.parse(stdout.split('\n').find((l) => l.includes('"type":"started"'))!) as { runDir: string })
          .runDir;
        void runCli(['train', 'tiny.peft.json', '--resume', runDir], folder, { timeoutMs: 120_000 }).then((result) => {
          second = result;
          child.kill('SIGKILL');
        });
      },
    });
    assert.equal(first.code, null, 'the first run was killed by the test');
    assert.ok(second, 'the second command ran');
    assert.equal(second.code, 1, second.stderr);
    assert.match(
      second.stderr,
      /the run is in use by pid \d+ on .* \(train\) since .*; wait for it to end or stop it first/,
    );
  });
});

describe('a run folder that moved', () => {
  test('copied elsewhere, it names its own checkpoints: peft-lab train --resume continues it there, inspect and the dashboard find its best checkpoint', async () => {
    const configFile = experiment({ epochs: 3 });
    const runDir = await stoppedRun(configFile, 7);
    const status = readJson<RunStatus>(path.join(runDir, 'status.json'));
    assert.ok(
      status.bestCheckpoint && !path.isAbsolute(status.bestCheckpoint),
      `bestCheckpoint is stored relative: ${status.bestCheckpoint}`,
    );
    assert.ok(!path.isAbsolute(status.configFile), `configFile is stored relative: ${status.configFile}`);
    const before = snapshot(runDir);

    const copied = path.join(fs.mkdtempSync(path.join(root, 'moved-')), 'runs', path.basename(runDir));
    fs.cpSync(runDir, copied, { recursive: true });
    const bestThere = new RunData(copied).bestCheckpoint!;
    assert.ok(
      bestThere.startsWith(copied + path.sep) && fs.existsSync(bestThere),
      `the dashboard finds ${bestThere} in the copy`,
    );

    const inspect = await runCli(['inspect', copied], path.dirname(configFile));
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.ok(
      !inspect.stdout.includes(runDir + path.sep),
      `inspect names no path of the original folder:\n${inspect.stdout}`,
    );

    const resumed = await runCli(['train', 'tiny.peft.json', '--resume', copied, '--json'], path.dirname(configFile), {
      timeoutMs: 120_000,
    });
    assert.equal(resumed.code, 0, resumed.stderr);
    const finished = readJson<RunStatus>(path.join(copied, 'status.json'));
    assert.equal(finished.state, 'finished');
    assert.ok(fs.existsSync(path.join(copied, 'checkpoints', 'step-15')), 'the copy trained on');
    assert.ok(fs.existsSync(path.resolve(copied, finished.bestCheckpoint!)), 'its best checkpoint is in the copy');
    assert.equal(path.resolve(copied, finished.configFile), configFile, 'and it names the config it was resumed with');
    assert.deepEqual(snapshot(runDir), before, 'the original folder is untouched');
  });
});

describe('honest state', () => {
  test('SIGKILL mid-run: inspect reports interrupted (not running), and a resume finishes the run', async () => {
    const configFile = experiment({ epochs: 400 });
    const folder = path.dirname(configFile);
    let runDir = '';
    await runCli(['train', 'tiny.peft.json', '--json'], folder, {
      timeoutMs: 180_000,
      onStdout: (stdout, child) => {
        if (runDir || !stdout.includes('"type":"checkpoint"')) return;
        runDir = (JSON.parse(stdout.split('\n').find((l) => l.includes('"type":"started"'))!) as { runDir: string })
          .runDir;
        child.kill('SIGKILL');
      },
    });
    assert.equal(
      readJson<RunStatus>(path.join(runDir, 'status.json')).state,
      'running',
      'the killed run could not record its end',
    );
    const inspect = await runCli(['inspect', runDir], folder);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(
      inspect.stdout,
      /^ {2}state {5}interrupted \(status\.json says running, but its training process \(\d+\) is gone/m,
    );
    editConfig(configFile, (c) => (c.training.epochs = 3));
    const resumed = await run(configFile, { resume: runDir, allowConfigChange: true });
    assert.equal(resumed.result.state, 'finished');
  });

  test('resuming a finished run says it is finished and writes nothing (the CLI exits 0)', async () => {
    const configFile = experiment({ epochs: 1 });
    const { result } = await run(configFile);
    const before = snapshot(result.runDir);
    const err = await rejection(run(configFile, { resume: result.runDir }));
    assert.ok(err instanceof RunFinishedError, String(err));
    assert.match(err.message, /the run is already finished \(step 5 of 5.*nothing to resume, nothing written/);
    assert.deepEqual(snapshot(result.runDir), before);
    const cli = await runCli(['train', 'tiny.peft.json', '--resume', result.runDir], path.dirname(configFile));
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stderr, /already finished/);
    assert.deepEqual(snapshot(result.runDir), before);
  });
});

describe('no litter', () => {
  test('what a kill leaves (staged checkpoint, temporary files, a half-pruned and a half-deleted checkpoint) is cleared by the resume, which then finishes', async () => {
    const configFile = experiment({ epochs: 3, keepCheckpoints: 1 });
    const runDir = await stoppedRun(configFile, 7);
    const checkpoints = path.join(runDir, 'checkpoints');
    const kept = fs.readdirSync(checkpoints);
    // what a SIGKILL at each point of saving and pruning leaves
    fs.mkdirSync(path.join(checkpoints, 'step-8.tmp-99999'));
    fs.writeFileSync(path.join(checkpoints, 'step-8.tmp-99999', 'weights.safetensors'), 'half');
    fs.mkdirSync(path.join(checkpoints, 'step-1'));
    fs.writeFileSync(path.join(checkpoints, 'step-1', 'optimizer.safetensors'), 'left over by an old-style prune');
    fs.mkdirSync(path.join(checkpoints, 'step-4.tmp-99999-0badc0de'));
    fs.writeFileSync(path.join(runDir, 'status.json.tmp-99999-deadbeef'), '{');
    fs.writeFileSync(path.join(runDir, 'metrics.jsonl.tmp-99999'), '');
    const { messages, result } = await run(configFile, { resume: runDir });
    assert.equal(result.state, 'finished');
    const removed = ofType(messages, 'log').find((m) => /removed what an interrupted writer left/.test(m.message));
    assert.ok(removed, 'the resume says what it removed');
    for (const name of [
      'step-8.tmp-99999',
      'step-1',
      'step-4.tmp-99999-0badc0de',
      'status.json.tmp-99999-deadbeef',
      'metrics.jsonl.tmp-99999',
    ]) {
      assert.ok(removed.message.includes(name), `${name} in: ${removed.message}`);
    }
    assert.deepEqual(
      everything(runDir).filter((n) => /\.tmp-|\.stale-/.test(n)),
      [],
      'no temporary names left',
    );
    assert.ok(!fs.readdirSync(checkpoints).includes('step-1'));
    assert.ok(kept.length >= 1);
  });

  test('pruning renames before deleting: no step-N folder without checkpoint.json at any moment', async () => {
    const configFile = experiment({ epochs: 2, keepCheckpoints: 1, evalEvery: 1 });
    const seen: string[] = [];
    const { result } = await run(configFile, {
      onMessage: (m) => {
        if (m.type !== 'checkpoint') return;
        const checkpoints = path.dirname(m.dir);
        for (const name of fs.readdirSync(checkpoints))
          if (/^step-\d+$/.test(name) && !fs.existsSync(path.join(checkpoints, name, 'checkpoint.json')))
            seen.push(name);
      },
    });
    assert.deepEqual(seen, []);
    assert.ok(fs.readdirSync(path.join(result.runDir, 'checkpoints')).every((n) => /^step-\d+$/.test(n)));
  });
});

describe('a changed config on resume', () => {
  test('another method, learning rate or decayRatio is refused naming the fields; --allow-config-change continues and records them', async () => {
    const configFile = experiment({ epochs: 3, learningRate: 0.001 });
    const runDir = await stoppedRun(configFile, 3);
    editConfig(configFile, (c) => {
      c.training.learningRate = 0.01;
      c.training.decayRatio = 0.5;
      c.training.logEvery = 5; // changes nothing computed: not named
    });
    // what the editor asks about before it resumes (read-only)
    assert.deepEqual(
      pendingConfigChanges(runDir, configFile, (f) => loadAnyConfig(f)).map((c) => c.path),
      ['/training/learningRate', '/training/decayRatio'],
    );
    const err = await rejection(run(configFile, { resume: runDir }));
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.path, '/training/learningRate');
    assert.match(
      err.message,
      /\/training\/learningRate 0\.001 -> 0\.01, \/training\/decayRatio \(unset\) -> 0\.5\. .*--allow-config-change/,
    );
    assert.doesNotMatch(err.message, /logEvery/);
    assert.equal(fs.existsSync(path.join(runDir, 'run.lock')), false, 'the refused resume released the lock');

    editConfig(configFile, (c) => (c.method = { type: 'lora', rank: 2 }));
    const methodErr = await rejection(run(configFile, { resume: runDir }));
    assert.match(methodErr.message, /\/method\/type "houlsby" -> "lora"/);
    editConfig(configFile, (c) => (c.method = { type: 'houlsby', bottleneck: 4 }));

    const { result, messages } = await run(configFile, { resume: runDir, allowConfigChange: true });
    assert.equal(result.state, 'finished');
    assert.ok(ofType(messages, 'log').some((m) => m.level === 'warn' && /with a changed config/.test(m.message)));
    const status = readJson<RunStatus>(path.join(runDir, 'status.json'));
    assert.equal(status.configChanges?.length, 1);
    assert.equal(status.configChanges![0]!.step, 3);
    assert.deepEqual(
      status.configChanges![0]!.changes.map((c) => c.path),
      ['/training/learningRate', '/training/decayRatio'],
    );
    assert.equal(
      readJson<{ training: { learningRate: number } }>(path.join(runDir, 'config.json')).training.learningRate,
      0.01,
    );
  });

  test('an unchanged config (or only logEvery) resumes without a word', async () => {
    const configFile = experiment({ epochs: 2 });
    const runDir = await stoppedRun(configFile, 2);
    editConfig(configFile, (c) => (c.training.logEvery = 3));
    const { result } = await run(configFile, { resume: runDir });
    assert.equal(result.state, 'finished');
    assert.equal(readJson<RunStatus>(path.join(runDir, 'status.json')).configChanges, undefined);
  });
});

describe('output only where it belongs (CLI)', () => {
  test('output.runsDir "/etc" is refused, even with --allow-outside, and nothing is written there', async () => {
    const configFile = experiment({}, { output: { runsDir: '/etc' } });
    const before = fs.readdirSync('/etc').length;
    for (const extra of [[], ['--allow-outside']]) {
      const result = await runCli(['train', 'tiny.peft.json', ...extra], path.dirname(configFile));
      assert.equal(result.code, 1, result.stdout);
      assert.match(
        result.stderr,
        /tiny\.peft\.json: \/output\/runsDir: \/etc is inside the system folder \/etc: runs are never written there/,
      );
    }
    assert.equal(fs.readdirSync('/etc').length, before);
  });

  test('"../../x" (outside the folder of the config and the current one) is refused without --allow-outside and accepted with it; runs beside the folder of the config, from the project folder, are fine', async () => {
    const parent = fs.mkdtempSync(path.join(root, 'deep-'));
    const nested = path.join(parent, 'a', 'b');
    fs.mkdirSync(nested, { recursive: true });
    const configFile = experiment({ epochs: 1 }, { output: { runsDir: '../../runs-outside' } }, nested);
    const refused = await runCli(['train', 'tiny.peft.json'], path.dirname(configFile));
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /\/output\/runsDir: .*runs-outside is outside the config's folder .* and the current folder .*; pass --allow-outside to write there anyway/,
    );
    assert.equal(fs.existsSync(path.join(parent, 'a', 'runs-outside')), false);
    const allowed = await runCli(['train', 'tiny.peft.json', '--allow-outside'], path.dirname(configFile), {
      timeoutMs: 120_000,
    });
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(fs.readdirSync(path.join(parent, 'a', 'runs-outside')).length, 1);
    // the repository's own layout: examples/x.peft.json with "runsDir": "../runs", run from the project folder
    const project = fs.mkdtempSync(path.join(root, 'project-'));
    fs.mkdirSync(path.join(project, 'examples'));
    const example = experiment({ epochs: 1 }, { output: { runsDir: '../runs' } }, path.join(project, 'examples'));
    const fromProject = await runCli(['train', path.relative(project, example)], project, { timeoutMs: 120_000 });
    assert.equal(fromProject.code, 0, fromProject.stderr);
    assert.equal(fs.readdirSync(path.join(project, 'examples', 'runs')).length, 1);
  });
});

// ---- a full disk: a real small tmpfs, when this process may mount one ---------------------------

function tmpfsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'tmpfs mounts are Linux only';
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root (CI runs as root)';
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here (${String((err as { stderr?: Buffer }).stderr ?? err).trim()})`;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

const noTmpfs = tmpfsUnavailable();

describe('a full disk (tmpfs)', { skip: noTmpfs }, () => {
  let disk: string;

  before(() => {
    disk = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', disk]);
  });

  after(() => {
    execFileSync('umount', [disk]);
    fs.rmSync(disk, { recursive: true, force: true });
  });

  /** Fills the disk until a write fails; returns the filler file (delete it to free the space). */
  function fill(name: string): string {
    const file = path.join(disk, name);
    const fd = fs.openSync(file, 'w');
    try {
      for (;;) fs.writeSync(fd, Buffer.alloc(4096, 1));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      fs.closeSync(fd);
    }
    return file;
  }

  function usedBytes(): number {
    const s = fs.statfsSync(disk);
    return (s.blocks - s.bfree) * s.bsize;
  }

  test('full from the start: a DiskError naming the path and what was being written, and no half-made run folder', async () => {
    const configFile = experiment({ epochs: 1 });
    const runsDir = path.join(disk, 'runs-start');
    fs.mkdirSync(runsDir);
    const filler = fill('filler-start');
    try {
      const err = await rejection(run(configFile, { runsDir }));
      assert.ok(err instanceof DiskError, String(err));
      assert.match(
        err.message,
        new RegExp(
          `^${runsDir}/tiny-[\\d-]+/\\S+: cannot write the \\S+( \\S+)*: no space left on the device \\(ENOSPC\\)$`,
        ),
      );
      assert.deepEqual(fs.readdirSync(runsDir), [], 'nothing half-made');
    } finally {
      fs.rmSync(filler);
    }
  });

  test('full mid-run: the run fails naming the file, status.json says so, nothing staged is left, and a retry does not fill the disk further', async () => {
    const configFile = experiment({ epochs: 3, evalEvery: 1 });
    const runsDir = path.join(disk, 'runs-mid');
    let filler = '';
    const err = await rejection(
      run(configFile, {
        runsDir,
        onMessage: (m) => {
          if (m.type === 'checkpoint' && !filler) filler = fill('filler-mid');
        },
      }),
    );
    try {
      assert.ok(err instanceof DiskError, String(err));
      assert.match(
        err.message,
        /: cannot write (checkpoint step-\d+|the metrics log|the run status|the best-checkpoint marker): no space left on the device \(ENOSPC\)/,
      );
      const [runDir] = fs.readdirSync(runsDir).map((n) => path.join(runsDir, n));
      const status = readJson<RunStatus>(path.join(runDir!, 'status.json'));
      assert.equal(status.state, 'failed');
      assert.equal(status.error?.message, err.message);
      assert.deepEqual(
        everything(runDir!).filter((n) => /\.tmp-/.test(n)),
        [],
      );
      const used = usedBytes();
      const retry = await rejection(run(configFile, { resume: runDir }));
      assert.ok(retry instanceof DiskError, String(retry));
      assert.ok(usedBytes() <= used, `the retry left ${usedBytes() - used} more bytes on the disk`);
      assert.deepEqual(
        everything(runDir!).filter((n) => /\.tmp-/.test(n)),
        [],
      );
    } finally {
      if (filler) fs.rmSync(filler);
    }
  });
});

describe('messages that name the right thing', () => {
  test('a config over 1 MB is refused at once with its size', async () => {
    const configFile = experiment();
    fs.appendFileSync(configFile, `\n${' '.repeat(1_500_000)}`);
    const err = await rejection(run(configFile));
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.message, /tiny\.peft\.json: \/: the config file is 1\.5 MB; a config is at most 1 MB/);
  });

  test('evaluate <runDir> names the run folder (not its parent) and points at a checkpoint', async () => {
    const configFile = experiment({ epochs: 1 });
    const { result } = await run(configFile);
    const cli = await runCli(['evaluate', result.runDir], path.dirname(configFile));
    assert.equal(cli.code, 1);
    assert.match(
      cli.stderr,
      new RegExp(
        `${path.basename(result.runDir)}: is a run folder, not a checkpoint folder: evaluate one of its checkpoints, e.g. .*checkpoints/step-\\d+ \\(its best\\)`,
      ),
    );
    assert.doesNotMatch(cli.stderr, /is not a PEFT Lab run folder/);
  });

  test('task.labels [0, 1] trains on integer labels; a base without a pooler warns on a new run only, not on resume or evaluate', async () => {
    const configFile = experiment(
      { epochs: 2 },
      {
        task: { type: 'classification', labels: [0, 1] },
        model: { path: path.resolve(__dirname, '..', 'fixtures', 'tiny-xlm-roberta') },
        data: { train: 'train.jsonl', maxLength: 16 },
      },
    );
    fs.writeFileSync(
      path.join(path.dirname(configFile), 'train.jsonl'),
      Array.from({ length: 40 }, (_, i) =>
        JSON.stringify({ text: i % 2 ? 'good fun' : 'bad boring', label: i % 2 }),
      ).join('\n'),
    );
    const pooler = (messages: Outcome['messages']) =>
      ofType(messages, 'log').filter((m) => /no pooler/.test(m.message));
    const controller = new AbortController();
    const first = await run(configFile, {
      signal: controller.signal,
      onMessage: (m) => m.type === 'progress' && m.step >= 2 && controller.abort(),
    });
    assert.equal(pooler(first.messages).length, 1, 'a new run is told its pooler starts random');
    const resumed = await run(configFile, { resume: first.result.runDir });
    assert.deepEqual(pooler(resumed.messages), [], 'the resumed run has its trained pooler');
    const messages: Outcome['messages'] = [];
    await evaluateCheckpoint(resumed.result.bestCheckpoint!, 'validation', {
      onMessage: (m) => messages.push(m),
    }).catch(() => undefined);
    assert.deepEqual(pooler(messages), []);
  });
});

test('a writer whose lock another machine took over (it judged it stale) stops at its next checkpoint and writes no status', async () => {
  const configFile = experiment({ epochs: 3, evalEvery: 1 });
  let taken = '';
  const err = await rejection(
    run(configFile, {
      onMessage: (m) => {
        if (m.type !== 'checkpoint' || taken) return;
        taken = path.dirname(path.dirname(m.dir));
        const now = new Date().toISOString();
        fs.writeFileSync(
          path.join(taken, 'run.lock'),
          JSON.stringify({
            pid: 4242,
            host: 'gpu-node-7',
            since: now,
            heartbeat: now,
            purpose: 'resume',
            token: 'abcdefabcdefabcd',
          }),
        );
      },
    }),
  );
  assert.ok(err instanceof RunLockedError, String(err));
  assert.match(err.message, /in use by pid 4242 on gpu-node-7 \(resume\)/);
  assert.equal(
    readJson<RunStatus>(path.join(taken, 'status.json')).state,
    'running',
    "the status is the new holder's to write",
  );
  assert.equal(
    readJson<{ host: string }>(path.join(taken, 'run.lock')).host,
    'gpu-node-7',
    'the new holder keeps its lock',
  );
});
