/**
 * One error class per failure kind, each carrying the context a user needs to fix the input:
 * the file, and the JSON path, line or tensor name inside it.
 */

export class PeftLabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A config value that is missing, malformed or inconsistent. `path` is a JSON pointer like `/method/bottleneck`. */
export class ConfigError extends PeftLabError {
  constructor(
    readonly file: string,
    readonly path: string,
    readonly detail: string,
    readonly line?: number,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${path || '/'}: ${detail}`);
  }
}

/** A data file that cannot be read as the config says; `line` is 1-based. */
export class DataError extends PeftLabError {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly detail: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${detail}`);
  }
}

/** A model or adapter checkpoint that is missing, unreadable, or has weights of the wrong name or shape. */
export class CheckpointError extends PeftLabError {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

/** The training worker exited without finishing; carries its exit code and last log lines. */
export class WorkerCrashedError extends PeftLabError {
  constructor(
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly lastLines: string[],
  ) {
    super(
      `training worker ${signal ? `was killed by ${signal}` : `exited with code ${exitCode}`}` +
        (lastLines.length ? `; last output:\n${lastLines.join('\n')}` : ''),
    );
  }
}

/** What the system says for the write failures a user can fix (the disk, its permissions or its quota). */
const DISK_PROBLEMS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is used up',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EIO: 'input/output error',
};

/** A write the disk refused: names the file or folder and what was being written. */
export class DiskError extends PeftLabError {
  constructor(
    readonly file: string,
    readonly what: string,
    readonly code: string,
  ) {
    super(`${file}: cannot write ${what}: ${DISK_PROBLEMS[code] ?? code} (${code})`);
  }

  /** `err` as a DiskError when it is a disk failure (a system error with one of the codes above), else undefined. */
  static from(err: unknown, file: string, what: string): DiskError | undefined {
    if (err instanceof DiskError) return err;
    const cause = (err as { cause?: unknown } | null)?.cause;
    const code = (err as NodeJS.ErrnoException | null)?.code ?? (cause as NodeJS.ErrnoException | undefined)?.code;
    return typeof code === 'string' && code in DISK_PROBLEMS ? new DiskError(file, what, code) : undefined;
  }
}

/** A resume of a run that has already finished: nothing to do, and nothing is written. */
export class RunFinishedError extends PeftLabError {
  constructor(
    readonly dir: string,
    detail: string,
  ) {
    super(`${dir}: ${detail}`);
  }
}

/** A requested TensorFlow.js backend that could not be loaded. */
export class BackendError extends PeftLabError {}

/** The run was cancelled by the user; not a failure. */
export class CancelledError extends PeftLabError {
  constructor() {
    super('cancelled');
  }
}
