/**
 * The Slurm job's pieces that need no cluster: the batch script sbatch gets, how squeue's and
 * scontrol's lines are read, and what a user is told when a task ends without its run saying so.
 * (test/unit/slurm.test.ts runs all of it against a real Slurm.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { batchScript, describeFailure, type SlurmJobSpec } from '../../src/core/slurm/job';
import { parseScontrolLine, parseSqueueLine } from '../../src/core/slurm/scheduler';
import { SlurmError } from '../../src/core/slurm/scheduler';

function spec(overrides: Partial<SlurmJobSpec> = {}): SlurmJobSpec {
  const point = { index: 0, name: 'p', config: {} as SlurmJobSpec['points'][number]['config'] };
  return {
    version: 1,
    kind: 'sweep',
    name: 'peft-lab:grid',
    configFile: '/home/me/my project/grid.peft.json',
    workdir: '/home/me/my project',
    points: [point, { ...point, index: 1 }, { ...point, index: 2 }],
    options: {},
    command: ['/usr/bin/node', '/ext/dist/cli.js'],
    concurrency: 2,
    ...overrides,
  };
}

describe('batch script', () => {
  test('a sweep is a job array of its points, K at a time, that requeues and gets USR1 90 s before its limit', () => {
    const script = batchScript(
      spec({
        options: {
          partition: 'gpu',
          time: '4:00:00',
          cpusPerTask: 4,
          mem: '16G',
          gres: 'gpu:1',
          account: 'lab',
          qos: 'normal',
          extraDirectives: ['--constraint=a100', '#SBATCH --exclusive'],
        },
      }),
      '/home/me/my project/runs/.slurm/grid',
    );
    const directives = script
      .split('\n')
      .filter((l) => l.startsWith('#SBATCH '))
      .map((l) => l.slice('#SBATCH '.length));
    assert.deepEqual(directives, [
      '--job-name=peft-lab:grid',
      '--output="/home/me/my project/runs/.slurm/grid/logs/%A_%a.out"',
      '--open-mode=append',
      '--requeue',
      '--signal=B:USR1@90',
      '--array=0-2%2',
      '--partition=gpu',
      '--time=4:00:00',
      '--cpus-per-task=4',
      '--mem=16G',
      '--gres=gpu:1',
      '--account=lab',
      '--qos=normal',
      '--constraint=a100',
      '--exclusive',
    ]);
    assert.match(script, /^cd '\/home\/me\/my project' \|\| exit 3$/m, 'paths with spaces are quoted for bash');
    assert.match(
      script,
      /^exec "\$NODE" \/ext\/dist\/cli\.js slurm-task "\$JOB_DIR"$/m,
      'the worker replaces the batch shell, so signals reach it',
    );
  });

  test('Train is a single job (no array) and defaults to one CPU', () => {
    const script = batchScript(spec({ kind: 'train', points: spec().points.slice(0, 1) }), '/r/.slurm/t');
    assert.ok(!script.includes('--array'));
    assert.match(script, /#SBATCH --output=\/r\/\.slurm\/t\/logs\/%j\.out\n/);
    assert.match(script, /#SBATCH --cpus-per-task=1\n/);
  });

  test('an extra line that is not one sbatch option is refused, naming it', () => {
    assert.throws(
      () => batchScript(spec({ options: { extraDirectives: ['--mem=1G\nrm -rf ~'] } }), '/r'),
      (err: unknown) =>
        err instanceof SlurmError && /extra directive '--mem=1G\nrm -rf ~' is not an sbatch option/.test(err.message),
    );
    assert.throws(() => batchScript(spec({ options: { extraDirectives: ['echo hi'] } }), '/r'), SlurmError);
  });
});

describe('squeue and scontrol lines', () => {
  test('one task of an array, and the pending rest of it', () => {
    assert.deepEqual(parseSqueueLine('12|3|RUNNING|None|node7'), {
      jobId: '12',
      taskId: 3,
      state: 'RUNNING',
      node: 'node7',
    });
    assert.deepEqual(parseSqueueLine('12|[2-3%2]|PENDING|JobArrayTaskLimit|'), {
      jobId: '12',
      taskId: undefined,
      state: 'PENDING',
      reason: 'JobArrayTaskLimit',
    });
    assert.equal(parseSqueueLine(''), undefined);
  });

  test('scontrol show job -o gives the exit code and node of an ended task', () => {
    const line =
      'JobId=15 ArrayJobId=12 ArrayTaskId=1 JobName=peft-lab:grid JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=4:0 BatchHost=node7 NodeList=node7';
    assert.deepEqual(parseScontrolLine(line), {
      jobId: '12',
      taskId: 1,
      state: 'FAILED',
      reason: 'NonZeroExitCode',
      node: 'node7',
      exitCode: '4:0',
    });
  });
});

describe('a task that ended without its run saying so', () => {
  test("names Node missing on the node, and a workspace the node cannot see, with the log's last lines", () => {
    const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-slurm-log-')), '12_1.out');
    fs.writeFileSync(log, 'peft-lab: Node.js (/opt/node) not found on node node7\n');
    const noNode = describeFailure(
      { jobId: '12', taskId: 1, state: 'FAILED', node: 'node7', exitCode: '4:0' },
      log,
      false,
    );
    assert.match(noNode, /^Node\.js was not found on node node7: set peftLab\.slurm\.nodePath/);
    assert.match(noNode, /ends:\npeft-lab: Node\.js \(\/opt\/node\) not found on node node7$/);
    const noWorkspace = describeFailure(
      { jobId: '12', taskId: 1, state: 'FAILED', node: 'node7', exitCode: '3:0' },
      log,
      false,
    );
    assert.match(noWorkspace, /cannot see the workspace: the compute nodes must share its file system/);
    const noLog = describeFailure(
      { jobId: '12', state: 'FAILED', node: 'node7', exitCode: '0:53', reason: 'JobLaunchFailure' },
      `${log}.missing`,
      false,
    );
    assert.match(noLog, /ended \(FAILED\) before writing its log .*: the node probably cannot see the workspace/);
    assert.match(
      describeFailure({ jobId: '12', state: 'TIMEOUT' }, log, true),
      /hit its time limit before a checkpoint \(raise peftLab\.slurm\.time\)/,
    );
  });
});
