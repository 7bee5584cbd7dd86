/**
 * run.lock: one writer per run folder, its holder named, and the stale-lock rules (a dead pid on
 * this machine, a reboot, a silent heartbeat from another machine, a requeued Slurm job).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  LOCK_FILE,
  RunLockedError,
  acquireRunLock,
  judgeHolder,
  readRunLock,
  runActivity,
  type LockHolder,
} from '../../src/core/checkpoint/run-lock';

let root: string;

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-lock-'));
});

after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function runDir(): string {
  return fs.mkdtempSync(path.join(root, 'run-'));
}

function bootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

function writeHolder(dir: string, holder: Partial<LockHolder>): void {
  const now = new Date().toISOString();
  const full: LockHolder = {
    pid: 1,
    host: os.hostname(),
    since: now,
    heartbeat: now,
    purpose: 'train',
    token: 'feedfeedfeedfeed',
    ...holder,
  };
  fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(full));
}

/** A pid that is certainly dead: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

describe('acquireRunLock', () => {
  test('the lock names this process; a second taker is refused naming pid, host and since; release frees it', () => {
    const dir = runDir();
    const lock = acquireRunLock(dir, 'train', { heartbeatMs: 0 });
    const holder = readRunLock(dir)!;
    assert.equal(holder.pid, process.pid);
    assert.equal(holder.host, os.hostname());
    assert.equal(holder.purpose, 'train');
    assert.equal(holder.bootId, bootId());
    assert.throws(
      () => acquireRunLock(dir, 'resume', { heartbeatMs: 0 }),
      (err: unknown) => {
        assert.ok(err instanceof RunLockedError);
        assert.match(
          err.message,
          new RegExp(
            `in use by pid ${process.pid} on ${os.hostname()} \\(train\\) since \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC`,
          ),
        );
        return true;
      },
    );
    lock.release();
    assert.equal(fs.existsSync(path.join(dir, LOCK_FILE)), false);
    acquireRunLock(dir, 'resume', { heartbeatMs: 0 }).release();
  });

  test('a lock left by a dead process on this machine is broken and taken over', async () => {
    const dir = runDir();
    writeHolder(dir, { pid: await deadPid(), bootId: bootId() });
    const lock = acquireRunLock(dir, 'resume', { heartbeatMs: 0 });
    assert.equal(readRunLock(dir)!.pid, process.pid);
    lock.release();
    assert.deepEqual(fs.readdirSync(dir), [], 'no stale copy left beside it');
  });

  test('a lock from before this machine last booted is stale even if its pid is alive now', () => {
    const dir = runDir();
    writeHolder(dir, { pid: process.pid, bootId: '00000000-0000-0000-0000-000000000000' });
    if (!bootId()) return; // no boot id on this system: the pid rule alone applies
    acquireRunLock(dir, 'resume', { heartbeatMs: 0 }).release();
  });

  test('the heartbeat is refreshed in the file; a lock someone else took over is left alone', () => {
    const dir = runDir();
    const lock = acquireRunLock(dir, 'train', { heartbeatMs: 0 });
    const first = readRunLock(dir)!.heartbeat;
    lock.heartbeat(new Date(Date.parse(first) + 60_000));
    assert.equal(Date.parse(readRunLock(dir)!.heartbeat), Date.parse(first) + 60_000);
    writeHolder(dir, { host: 'other-node', token: '0123456789abcdef' });
    lock.heartbeat();
    assert.equal(readRunLock(dir)!.host, 'other-node');
    lock.release();
    assert.equal(readRunLock(dir)!.host, 'other-node', 'release removes only its own lock');
  });
});

describe('judgeHolder: the stale rules', () => {
  const now = new Date('2026-12-07T12:00:00Z');
  const other = (minutesAgo: number, extra: Partial<LockHolder> = {}): LockHolder => ({
    pid: 4242,
    host: 'gpu-node-7',
    since: '2026-12-07T10:00:00Z',
    heartbeat: new Date(now.getTime() - minutesAgo * 60_000).toISOString(),
    purpose: 'train',
    token: 'abcdefabcdefabcd',
    ...extra,
  });

  test('another machine with a recent heartbeat is live and elsewhere; a silent one is stale, saying since when', () => {
    assert.deepEqual(judgeHolder(other(2), { now }), { live: true, holder: other(2), elsewhere: true });
    const stale = judgeHolder(other(11), { now });
    assert.equal(stale.live, false);
    assert.match(
      !stale.live ? stale.why : '',
      /4242 on gpu-node-7\) has sent no heartbeat since 2026-12-07 11:49:00 UTC/,
    );
  });

  test('a requeued Slurm job takes over the lock of its earlier incarnation on another node', () => {
    const saved = process.env.SLURM_JOB_ID;
    process.env.SLURM_JOB_ID = '777';
    try {
      assert.equal(judgeHolder(other(1, { slurmJobId: '777' }), { now }).live, false);
      assert.equal(judgeHolder(other(1, { slurmJobId: '778' }), { now }).live, true);
      // the submitting host took the lock for job 777 (a live pid on this machine): the job's process takes it over
      const dir = runDir();
      const submitted = acquireRunLock(dir, 'slurm-submit', { heartbeatMs: 0, slurmJobId: '777' });
      writeHolder(dir, { ...readRunLock(dir)!, pid: process.ppid });
      const job = acquireRunLock(dir, 'resume', { heartbeatMs: 0 });
      assert.equal(readRunLock(dir)!.pid, process.pid);
      assert.equal(readRunLock(dir)!.slurmJobId, '777');
      job.release();
      submitted.release();
    } finally {
      if (saved === undefined) delete process.env.SLURM_JOB_ID;
      else process.env.SLURM_JOB_ID = saved;
    }
  });

  test('runActivity: a running status whose lock holder is dead is interrupted; without a lock the status pid decides', async () => {
    const dir = runDir();
    const pid = await deadPid();
    writeHolder(dir, { pid, bootId: bootId() });
    const verdict = runActivity(dir, pid);
    assert.equal(verdict.live, false);
    assert.match(!verdict.live ? verdict.why : '', new RegExp(`its training process \\(${pid}\\) is gone`));
    fs.rmSync(path.join(dir, LOCK_FILE));
    assert.equal(runActivity(dir, process.pid).live, true);
    assert.equal(runActivity(dir, pid).live, false);
  });
});
