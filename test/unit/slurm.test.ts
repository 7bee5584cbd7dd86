/**
 * `peft-lab train|sweep --executor slurm` against a real single-node Slurm (scripts/slurm/local-cluster.sh):
 * a sweep as one job array ends with the local sweep's metrics, a job requeued mid-run continues its
 * own run folder to the uninterrupted run's metrics, and each problem a user can meet is named with
 * nothing left behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tinyConfig, writeTrainingData } from './helpers/tiny-experiment';
import { jsonLines } from './helpers/json';
import { runCli } from './helpers/run-cli';
import { slurm, slurmSkipReason, startSlurm, stopSlurm } from './helpers/slurm-cluster';

const TIMEOUT_MS = 240_000;
const skip = slurmSkipReason();

let dir: string;

/** A fresh folder with `lines` examples and the tiny config (with `extra` top-level fields and `training` overrides). */
function experiment(extra: Record<string, unknown>, training: Record<string, unknown> = {}, lines = 40): string {
  const folder = fs.mkdtempSync(path.join(dir, 'exp-'));
  writeTrainingData(path.join(folder, 'train.jsonl'), lines);
  const config = tinyConfig();
  fs.writeFileSync(
    path.join(folder, 'tiny.peft.json'),
    JSON.stringify({ ...config, training: { ...(config.training as object), ...training }, ...extra }, null, 2),
  );
  return folder;
}

function evalLines(runDir: string): Record<string, unknown>[] {
  return fs
    .readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.kind === 'eval');
}

function jobFolders(folder: string): string[] {
  const root = path.join(folder, 'runs', '.slurm');
  return fs.existsSync(root) ? fs.readdirSync(root) : [];
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('Slurm executor on a real single-node cluster', { skip }, () => {
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-slurm-'));
    startSlurm();
  });

  after(() => {
    stopSlurm();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("a sweep of 4 points runs as one job array, 2 at a time, and ends with the local sweep's metrics", async () => {
    const folder = experiment({
      sweep: {
        parameters: { 'method.bottleneck': { values: [2, 4] }, 'training.learningRate': { values: [1e-3, 1e-4] } },
      },
    });
    const local = await runCli(['sweep', 'tiny.peft.json', '--parallel', '2', '--json'], folder, {
      timeoutMs: TIMEOUT_MS,
    });
    assert.equal(local.code, 0, local.stderr);
    const onSlurm = await runCli(
      [
        'sweep',
        'tiny.peft.json',
        '--parallel',
        '2',
        '--json',
        '--executor',
        'slurm',
        '--partition',
        'debug',
        '--time',
        '10',
      ],
      folder,
      { timeoutMs: TIMEOUT_MS },
    );
    assert.equal(onSlurm.code, 0, onSlurm.stderr + onSlurm.stdout);

    const lines = jsonLines(onSlurm.stdout);
    const plan = lines[0]!;
    assert.equal(plan.type, 'sweep');
    assert.equal(plan.executor, 'slurm');
    const script = fs.readFileSync(path.join(plan.jobDir, 'job.sh'), 'utf8');
    for (const directive of [
      '--array=0-3%2',
      '--requeue',
      '--signal=B:USR1@90',
      '--partition=debug',
      '--time=10',
      '--cpus-per-task=1',
    ]) {
      assert.ok(script.includes(`#SBATCH ${directive}\n`), `job.sh has #SBATCH ${directive}:\n${script}`);
    }
    const states = lines.filter((l) => l.type === 'slurm');
    assert.ok(
      states.some((s) => s.state === 'RUNNING' && s.node === os.hostname()),
      `some point was seen running on ${os.hostname()}: ${JSON.stringify(states)}`,
    );
    assert.ok(
      states.some((s) => s.state === 'PENDING'),
      `some point was seen pending: ${JSON.stringify(states)}`,
    );

    const byName = (results: { name: string; state: string; metrics: Record<string, number> }[]) =>
      Object.fromEntries(results.map((r) => [r.name, { state: r.state, metrics: r.metrics }]));
    const localEnd = jsonLines(local.stdout).at(-1)!;
    const slurmEnd = lines.at(-1)!;
    assert.equal(slurmEnd.type, 'sweepEnded');
    assert.deepEqual(byName(slurmEnd.results), byName(localEnd.results));
    for (const result of slurmEnd.results as { runDir: string; index: number }[]) {
      const config = JSON.parse(fs.readFileSync(path.join(result.runDir, 'config.json'), 'utf8')) as {
        sweepPoint: { sweepId: string; index: number };
      };
      assert.equal(config.sweepPoint.sweepId, plan.sweepId, 'the run folder records its sweep, as a local point does');
      const info = JSON.parse(fs.readFileSync(path.join(result.runDir, 'slurm.json'), 'utf8')) as {
        jobId: string;
        taskId: number;
        log: string;
      };
      assert.deepEqual([info.jobId, info.taskId], [plan.jobId, result.index]);
      assert.match(fs.readFileSync(info.log, 'utf8'), /finished in/);
    }
  });

  test("a job requeued mid-run (scontrol requeue) continues its own run folder to the uninterrupted run's metrics", async () => {
    const folder = experiment({}, { epochs: 8, evalEvery: 10, logEvery: 5 }, 200);
    const local = await runCli(['train', 'tiny.peft.json', '--json'], folder, { timeoutMs: TIMEOUT_MS });
    assert.equal(local.code, 0, local.stderr);
    const localRun = jsonLines(local.stdout).find((l) => l.type === 'started')!.runDir as string;

    let jobId: string | undefined;
    const running = runCli(['train', 'tiny.peft.json', '--json', '--executor', 'slurm'], folder, {
      timeoutMs: TIMEOUT_MS,
      onStdout: (stdout) => (jobId ??= jsonLines(stdout)[0]?.jobId as string | undefined),
    });
    const id = await waitFor('the job id', () => jobId);
    const runDir = await waitFor("the job's run folder", () => {
      const runs = fs
        .readdirSync(path.join(folder, 'runs'))
        .filter((n) => !n.startsWith('.') && n !== path.basename(localRun));
      return runs.length ? path.join(folder, 'runs', runs[0]!) : undefined;
    });
    await waitFor('a checkpoint at step 20', () =>
      fs.existsSync(path.join(runDir, 'checkpoints', 'step-20', 'checkpoint.json')) ? true : undefined,
    );
    slurm('scontrol', 'requeue', id);
    // Slurm holds a requeued job for two minutes (BeginTime); a test need not wait for that
    await waitFor('the requeued job to be pending', () =>
      /JobState=PENDING/.test(slurm('scontrol', 'show', 'job', id)) ? true : undefined,
    );
    slurm('scontrol', 'update', `JobId=${id}`, 'StartTime=now');
    const result = await running;
    assert.equal(result.code, 0, result.stderr + result.stdout);

    const log = fs.readFileSync(
      JSON.parse(fs.readFileSync(path.join(runDir, 'slurm.json'), 'utf8')).log as string,
      'utf8',
    );
    assert.match(log, /DUE TO JOB REQUEUE/);
    assert.match(log, /SIGTERM: stopping at the next step boundary after a checkpoint/);
    assert.match(log, new RegExp(`continuing ${runDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const ended = jsonLines(result.stdout).at(-1)!;
    assert.equal(ended.results[0].runDir, runDir, 'the requeued job finished the run it had started');
    assert.equal(ended.results[0].state, 'finished');
    assert.deepEqual(evalLines(runDir), evalLines(localRun));
    assert.deepEqual(
      JSON.parse(fs.readFileSync(path.join(runDir, 'status.json'), 'utf8')).bestMetrics,
      JSON.parse(fs.readFileSync(path.join(localRun, 'status.json'), 'utf8')).bestMetrics,
    );
  });

  test('no sbatch on PATH: named, and nothing written', async () => {
    const folder = experiment({});
    const saved = process.env.PATH;
    // a PATH without Slurm's tools (the CLI itself starts from node's absolute path)
    process.env.PATH = fs.mkdtempSync(path.join(dir, 'bin-'));
    try {
      const result = await runCli(['train', 'tiny.peft.json', '--executor', 'slurm'], folder);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /sbatch: not found on PATH\. Run PEFT Lab on a machine with the Slurm client tools/);
    } finally {
      process.env.PATH = saved;
    }
    assert.deepEqual(jobFolders(folder), []);
  });

  test('an unknown partition and a job the scheduler rejects: its message and what to change, nothing left behind', async () => {
    const folder = experiment({ slurm: { partition: 'no-such-partition' } });
    const partition = await runCli(['train', 'tiny.peft.json', '--executor', 'slurm'], folder);
    assert.equal(partition.code, 1);
    assert.match(partition.stderr, /invalid partition/i);
    assert.match(
      partition.stderr,
      /set peftLab\.slurm\.partition \(or slurm\.partition in the config\) to one that `sinfo` lists/,
    );

    const rejected = await runCli(
      ['train', 'tiny.peft.json', '--executor', 'slurm', '--partition', 'debug', '--mem', '999999G'],
      folder,
    );
    assert.equal(rejected.code, 1);
    assert.match(rejected.stderr, /sbatch .*: .*(Requested node configuration is not available|Memory specification)/i);
    assert.deepEqual(jobFolders(folder), []);
    assert.deepEqual(
      fs.readdirSync(path.join(folder, 'runs')).filter((n) => !n.startsWith('.')),
      [],
      'no run folder either',
    );
  });

  test('Node.js missing on the node: the job fails naming it and the setting to change', async () => {
    const folder = experiment({});
    const result = await runCli(
      ['train', 'tiny.peft.json', '--executor', 'slurm', '--node', '/opt/no-such-node/bin/node'],
      folder,
      { timeoutMs: TIMEOUT_MS },
    );
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      new RegExp(`failed: Node\\.js was not found on node ${os.hostname()}: set peftLab\\.slurm\\.nodePath`),
    );
    assert.match(
      result.stdout,
      /Node\.js \(\/opt\/no-such-node\/bin\/node\) not found on node/,
      "the log's own line is quoted",
    );
  });

  test('a node that cannot see the workspace: the job fails before its log, and says why', async () => {
    const folder = experiment({});
    const moved = `${folder}-elsewhere`;
    let released = false;
    const result = await runCli(
      ['train', 'tiny.peft.json', '--json', '--executor', 'slurm', '--sbatch=--hold'],
      folder,
      {
        timeoutMs: TIMEOUT_MS,
        onStdout: (stdout) => {
          const jobId = jsonLines(stdout)[0]?.jobId as string | undefined;
          if (!jobId || released) return;
          released = true;
          // as a node without the shared file system sees it: the workspace is not there
          fs.renameSync(folder, moved);
          slurm('scontrol', 'release', jobId);
        },
      },
    );
    assert.equal(result.code, 1);
    const failed = jsonLines(result.stdout).find((l) => l.type === 'failed');
    assert.match(
      failed?.error.message ?? '',
      /before writing its log .*: the node probably cannot see the workspace \(it must be on a file system the compute nodes share\)/,
    );
  });
});
