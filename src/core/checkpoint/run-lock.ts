/**
 * One writer per run folder: `run.lock`, an exclusive lock file that names its holder.
 *
 * The file is created with O_EXCL (`open(..., 'wx')`), which is atomic on local disks and on NFS
 * (v3 and later) alike, so two processes, or two machines sharing the folder, cannot both take it.
 * An OS lock (flock/fcntl) would vanish with its process, but it does not cross machines on many
 * shared file systems and Node has no portable call for it; a lock file needs a rule for when its
 * holder is gone instead:
 *   - the same machine (host name and boot id): the holder's pid is checked; a dead pid is stale,
 *     and so is any lock written before the machine last booted;
 *   - another machine: its pid means nothing here, so the holder refreshes a heartbeat in the
 *     file while it trains, and a heartbeat older than `STALE_AFTER_MS` is stale;
 *   - a process of Slurm job J (SLURM_JOB_ID=J) takes over a lock naming job J: the lock its earlier
 *     incarnation left before a requeue (Slurm has stopped it), or one the submitting host took for
 *     J (LockOptions.slurmJobId). Two training processes inside one job are not told apart.
 * Every reader that sees a run whose status says `running` asks `runActivity` (one rule for the CLI,
 * the sidebar, the run follower and the experiments table) whether it is still live.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PeftLabError } from '../errors';
import { writeFileAtomic } from './atomic';

export const LOCK_FILE = 'run.lock';
/** How often a holder refreshes its heartbeat. */
export const HEARTBEAT_MS = 30_000;
/** A holder on another machine whose heartbeat is older than this is taken as gone (20 missed heartbeats). */
export const STALE_AFTER_MS = 10 * 60_000;

/** What `run.lock` holds. */
export interface LockHolder {
  pid: number;
  host: string;
  /** /proc/sys/kernel/random/boot_id on Linux: tells a reboot (pids start over) from the same boot. */
  bootId?: string;
  /** ISO time the lock was taken. */
  since: string;
  /** ISO time of the last heartbeat. */
  heartbeat: string;
  /** What took it: 'train', 'resume', 'pretrain', 'slurm', ... */
  purpose: string;
  slurmJobId?: string;
  slurmRestartCount?: number;
  /** Random per acquisition: a heartbeat or release never touches a lock someone else has taken since. */
  token: string;
}

/** A second writer: the run folder is locked by a live holder. */
export class RunLockedError extends PeftLabError {
  constructor(
    readonly dir: string,
    readonly holder: LockHolder,
  ) {
    super(`${dir}: the run is in use by ${describeHolder(holder)}; wait for it to end or stop it first`);
  }
}

/** "pid 123 on host gpu-7 (train) since 2026-12-07 21:04:05 UTC" */
export function describeHolder(holder: LockHolder): string {
  const job = holder.slurmJobId ? `, Slurm job ${holder.slurmJobId}` : '';
  return `pid ${holder.pid} on ${holder.host} (${holder.purpose}${job}) since ${formatTime(holder.since)}`;
}

export interface LockOptions {
  /** Heartbeat period (default HEARTBEAT_MS); 0 disables the timer (the caller calls heartbeat()). */
  heartbeatMs?: number;
  /** See STALE_AFTER_MS. */
  staleAfterMs?: number;
  /**
   * The Slurm job the lock is for (default: SLURM_JOB_ID). A submitting host that takes the lock for a
   * job it queued names the job here, so the job's own process on its node takes the lock over.
   */
  slurmJobId?: string;
}

/** A lock this process holds. */
export class RunLock {
  private timer?: NodeJS.Timeout;
  private released = false;
  private readonly onExit = () => this.release();

  /** @internal use acquireRunLock */
  constructor(
    readonly dir: string,
    private holderValue: LockHolder,
    heartbeatMs: number,
  ) {
    if (heartbeatMs > 0) {
      this.timer = setInterval(() => this.heartbeat(), heartbeatMs);
      this.timer.unref();
    }
    // process.exit() (a second Ctrl-C) runs no finally blocks: the lock must not outlive its holder needlessly
    process.once('exit', this.onExit);
  }

  get file(): string {
    return path.join(this.dir, LOCK_FILE);
  }

  get holder(): LockHolder {
    return this.holderValue;
  }

  /** False once another process has broken this lock (it judged it stale) or it was released. */
  get held(): boolean {
    return !this.released && readRunLock(this.dir)?.token === this.holderValue.token;
  }

  /** Throws a RunLockedError naming the new holder when another process has taken the lock over. */
  assertHeld(): void {
    if (this.released || this.held) return;
    const now = readRunLock(this.dir);
    if (now) throw new RunLockedError(this.dir, now);
    throw new PeftLabError(
      `${this.dir}: the run's lock (${LOCK_FILE}) was removed by another process; stopping so as not to write beside another writer`,
    );
  }

  /** Refreshes the heartbeat; does nothing (and stops the timer) if the lock is no longer ours. */
  heartbeat(now = new Date()): void {
    if (this.released) return;
    if (!this.held) {
      clearInterval(this.timer);
      return;
    }
    const next = { ...this.holderValue, heartbeat: now.toISOString() };
    try {
      writeFileAtomic(this.file, `${JSON.stringify(next, null, 2)}\n`);
      this.holderValue = next;
    } catch {
      // a full disk must not stop training; the next beat tries again
    }
  }

  /** Removes the lock if it is still ours. Safe to call twice. */
  release(): void {
    if (this.released) return;
    clearInterval(this.timer);
    process.removeListener('exit', this.onExit);
    try {
      if (readRunLock(this.dir)?.token === this.holderValue.token) fs.unlinkSync(this.file);
    } catch {
      // already gone
    }
    this.released = true;
  }
}

/**
 * Takes the run folder's lock for this process, breaking a stale one; throws RunLockedError naming
 * a live holder. `dir` must exist. Disk errors (ENOSPC, EACCES, EROFS) are thrown as they come.
 */
export function acquireRunLock(dir: string, purpose: string, options: LockOptions = {}): RunLock {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 5; attempt++) {
    const holder = newHolder(purpose, options.slurmJobId);
    if (createExclusive(file, holder)) return new RunLock(dir, holder, options.heartbeatMs ?? HEARTBEAT_MS);
    const existing = readLockFile(file);
    if (existing === 'missing') continue; // released between our attempt and the read
    const verdict = judgeLock(existing, file, options);
    if (verdict.live) {
      if (existing === 'unreadable')
        throw new PeftLabError(`${dir}: the run is being locked by another process right now; try again in a moment`);
      throw new RunLockedError(dir, existing);
    }
    breakLock(file, existing);
  }
  throw new PeftLabError(`${dir}: could not take the run's lock (${LOCK_FILE}): other processes keep taking it`);
}

/** The holder named in a run folder's lock, or undefined when there is none (or it cannot be read). */
export function readRunLock(dir: string): LockHolder | undefined {
  const read = readLockFile(path.join(dir, LOCK_FILE));
  return typeof read === 'object' ? read : undefined;
}

export type LockVerdict = { live: true; holder?: LockHolder; elsewhere: boolean } | { live: false; why: string };

export interface LivenessOptions extends LockOptions {
  now?: Date;
  /** Whether a pid on this machine is alive (default: signal 0). */
  isAlive?: (pid: number) => boolean;
}

/** Whether the holder a lock names is still there (see the file comment for the rules). */
export function judgeHolder(holder: LockHolder, options: LivenessOptions = {}): LockVerdict {
  const here = thisMachine();
  const isAlive = options.isAlive ?? processAlive;
  // Slurm stopped the earlier incarnation of a requeued job (or the submitting host handed the lock over)
  if (
    holder.slurmJobId &&
    holder.slurmJobId === process.env.SLURM_JOB_ID &&
    !(holder.host === here.host && holder.pid === process.pid)
  ) {
    return {
      live: false,
      why: `Slurm job ${holder.slurmJobId} runs again here; its lock from pid ${holder.pid} on ${holder.host} is taken over`,
    };
  }
  if (holder.host === here.host) {
    if (holder.bootId && here.bootId && holder.bootId !== here.bootId) {
      return {
        live: false,
        why: `its training process (${holder.pid}) is gone: ${holder.host} has restarted since ${formatTime(holder.since)}`,
      };
    }
    if (!isAlive(holder.pid))
      return {
        live: false,
        why: `its training process (${holder.pid}) is gone without recording how the run ended (killed, or the machine stopped)`,
      };
    return { live: true, holder, elsewhere: false };
  }
  const now = (options.now ?? new Date()).getTime();
  const beat = Date.parse(holder.heartbeat);
  const staleAfter = options.staleAfterMs ?? STALE_AFTER_MS;
  if (!Number.isFinite(beat) || now - beat > staleAfter) {
    return {
      live: false,
      why: `its training process (${holder.pid} on ${holder.host}) has sent no heartbeat since ${formatTime(holder.heartbeat)} (over ${Math.round(staleAfter / 60_000)} minutes): taken as gone`,
    };
  }
  return { live: true, holder, elsewhere: true };
}

/**
 * The one rule for "is this running run still running?", for a run whose status.json says `running`:
 * its lock's holder decides; a run without a lock (written before locks, or between its status and
 * its lock) falls back to the pid in its status, taken as a pid of this machine (no pid: live).
 */
export function runActivity(dir: string, statusPid: number | undefined, options: LivenessOptions = {}): LockVerdict {
  const holder = readRunLock(dir);
  if (holder) return judgeHolder(holder, options);
  const isAlive = options.isAlive ?? processAlive;
  // a status without a pid says nothing either way
  if (typeof statusPid !== 'number' || isAlive(statusPid)) return { live: true, elsewhere: false };
  return {
    live: false,
    why: `its training process (${statusPid}) is gone without recording how the run ended (killed, or the machine stopped)`,
  };
}

export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: a process of another user holds this pid, so it is alive
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---- internals -------------------------------------------------------------------------------------

let machine: { host: string; bootId?: string } | undefined;

function thisMachine(): { host: string; bootId?: string } {
  if (!machine) {
    let bootId: string | undefined;
    try {
      bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
    } catch {
      bootId = undefined; // not Linux
    }
    machine = { host: os.hostname(), bootId };
  }
  return machine;
}

function newHolder(purpose: string, slurmJobId = process.env.SLURM_JOB_ID): LockHolder {
  const here = thisMachine();
  const now = new Date().toISOString();
  const restart = Number(process.env.SLURM_RESTART_COUNT);
  return {
    pid: process.pid,
    host: here.host,
    ...(here.bootId && { bootId: here.bootId }),
    since: now,
    heartbeat: now,
    purpose,
    ...(slurmJobId && { slurmJobId }),
    ...(Number.isInteger(restart) && process.env.SLURM_RESTART_COUNT !== undefined && { slurmRestartCount: restart }),
    token: randomBytes(8).toString('hex'),
  };
}

/** True when this process created the file; false when it exists already. */
function createExclusive(file: string, holder: LockHolder): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    fs.writeFileSync(fd, `${JSON.stringify(holder, null, 2)}\n`);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch (err) {
    // a half-written lock (a full disk) would block the folder for no one
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    fs.rmSync(file, { force: true });
    throw err;
  }
  return true;
}

/** A holder, 'missing', or 'unreadable' (being written this instant, or damaged). */
function readLockFile(file: string): LockHolder | 'missing' | 'unreadable' {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable';
  }
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    if (typeof value.pid === 'number' && typeof value.host === 'string' && typeof value.token === 'string')
      return value as LockHolder;
  } catch {
    // falls through
  }
  return 'unreadable';
}

/** An unreadable lock is one being written (live) unless it has been so for longer than a write takes. */
function judgeLock(existing: LockHolder | 'unreadable', file: string, options: LockOptions): LockVerdict {
  if (existing !== 'unreadable') return judgeHolder(existing, options);
  try {
    const age = Date.now() - fs.statSync(file).mtimeMs;
    return age > 10_000 ? { live: false, why: 'its lock file is damaged' } : { live: true, elsewhere: false };
  } catch {
    return { live: false, why: 'its lock file is gone' };
  }
}

/**
 * Removes a stale lock without removing one another process has just taken in its place: the
 * file is moved aside first (one atomic rename), and put back if what was moved is not the stale one.
 */
function breakLock(file: string, stale: LockHolder | 'unreadable'): void {
  const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    fs.renameSync(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = readLockFile(aside);
  const same =
    stale === 'unreadable' ? moved === 'unreadable' : typeof moved === 'object' && moved.token === stale.token;
  if (!same) {
    try {
      fs.linkSync(aside, file); // fails if yet another process has taken the lock meanwhile: theirs wins
    } catch {
      // the lock is taken again either way
    }
  }
  fs.rmSync(aside, { force: true });
}

function formatTime(iso: string): string {
  const t = Date.parse(iso);
  return Number.isFinite(t)
    ? new Date(t)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, ' UTC')
    : iso;
}
