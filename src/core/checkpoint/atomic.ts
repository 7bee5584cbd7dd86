/**
 * Crash-safe file writes for checkpoints, run state and logs.
 *
 * A training run can be killed at any instant (the user cancels, the worker runs out of memory, the
 * machine loses power). Whole files are therefore never rewritten in place: they are written to a
 * temporary sibling, flushed to disk, and renamed over the target, so a reader sees either the old
 * or the new content, never a mix. Logs are append-only JSONL, where a crash can at most leave a
 * partial last line, which `readJsonl` reports and skips.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../errors';

/** Matches the suffix `tempPathFor` adds; also the `*.tmp-*` pattern in .gitignore. */
const TEMP_FILE_SUFFIX = /\.tmp-\d+-[0-9a-f]{8}$/;

/** Folder fsync is not supported on Windows and on some network or FUSE file systems. */
const FOLDER_FSYNC_UNSUPPORTED = new Set(['EISDIR', 'EINVAL', 'EPERM', 'EACCES', 'ENOTSUP', 'EBADF']);

/** On Windows a rename fails while another process (indexer, antivirus, editor) briefly holds the target. */
const TRANSIENT_RENAME_ERRORS = new Set(['EPERM', 'EACCES', 'EBUSY']);
const RENAME_ATTEMPTS = 6;

/** True for the temporary files `writeFileAtomic` creates, so file watchers can ignore them. Accepts a name or a path. */
export function isTempFile(name: string): boolean {
  return TEMP_FILE_SUFFIX.test(name);
}

/**
 * Replaces `file` with `data` so that a crash at any point leaves either the old or the new content.
 * Creates missing parent folders. Throws the underlying fs error (with its `code`) on failure, after
 * removing the temporary file; the old content of `file` is then untouched.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const folder = path.dirname(path.resolve(file));
  fs.mkdirSync(folder, { recursive: true });
  const temp = tempPathFor(file);
  try {
    writeAndFlush(temp, data, existingMode(file));
    renameWithRetry(temp, file);
  } catch (err) {
    removeQuietly(temp);
    throw err;
  }
  // Without this the rename itself may not survive a power loss on ext4/xfs.
  syncFolder(folder);
}

/** Writes `value` as pretty JSON (2 spaces, trailing newline), atomically. */
export function writeJsonAtomic(file: string, value: unknown): void {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) {
    throw new TypeError(`cannot write ${file}: the value is not JSON-serialisable (${typeof value})`);
  }
  writeFileAtomic(file, text + '\n');
}

/**
 * Appends one line (a newline is added) to a JSONL log with a single write, flushed to disk.
 * If an earlier crash left a partial last line, a newline is written first so the new record
 * does not fuse with the broken one and get lost too.
 */
export function appendLine(file: string, line: string): void {
  if (/[\r\n]/.test(line)) {
    throw new RangeError(`cannot append to ${file}: the line contains a line break, which would split the record`);
  }
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  // 'a+' rather than 'a' so the last byte can be read back; writes still always go to the end.
  const fd = fs.openSync(file, 'a+');
  try {
    const separator = endsMidLine(fd) ? '\n' : '';
    fs.writeFileSync(fd, `${separator}${line}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export interface JsonlContents {
  records: unknown[];
  /** Lines that could not be parsed; `line` is 1-based. Blank lines are ignored silently. */
  skipped: { line: number; reason: string }[];
}

/** Reads a JSONL file, keeping every parsable record and reporting (not throwing on) broken lines. */
export function readJsonl(file: string): JsonlContents {
  const text = readText(file, 'JSONL file');
  const lines = text.split('\n');
  const lastLineIsPartial = !text.endsWith('\n');
  const result: JsonlContents = { records: [], skipped: [] };
  lines.forEach((rawLine, index) => {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (line.trim() === '') return;
    try {
      result.records.push(JSON.parse(line));
    } catch (err) {
      const truncated = index === lines.length - 1 && lastLineIsPartial;
      const reason = truncated
        ? `truncated last line, probably an interrupted write (${errorMessage(err)})`
        : errorMessage(err);
      result.skipped.push({ line: index + 1, reason });
    }
  });
  return result;
}

/** Reads and parses a JSON file; `what` names it in errors, e.g. "adapter config". */
export function readJsonFile(file: string, what: string): unknown {
  const text = readText(file, what);
  if (text.trim() === '') {
    throw new CheckpointError(file, `${what} is empty`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(file, `${what} is not valid JSON: ${describeJsonError(text, err)}`);
  }
}

function tempPathFor(file: string): string {
  return `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Keeps the permissions of a file being replaced (a rename would otherwise reset them to the default). */
function existingMode(file: string): number {
  try {
    return fs.statSync(file).mode & 0o777;
  } catch {
    return 0o666;
  }
}

function writeAndFlush(temp: string, data: string | Uint8Array, mode: number): void {
  // 'wx': never follow or clobber something already at the temporary name.
  const fd = fs.openSync(temp, 'wx', mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function renameWithRetry(from: string, to: string): void {
  for (let attempt = 1; ; attempt++) {
    try {
      fs.renameSync(from, to);
      return;
    } catch (err) {
      const retryable = process.platform === 'win32' && TRANSIENT_RENAME_ERRORS.has(errorCode(err));
      if (!retryable || attempt >= RENAME_ATTEMPTS) throw err;
      sleepSync(10 * 2 ** attempt);
    }
  }
}

function syncFolder(folder: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(folder, 'r');
    fs.fsyncSync(fd);
  } catch (err) {
    if (!FOLDER_FSYNC_UNSUPPORTED.has(errorCode(err))) throw err;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function endsMidLine(fd: number): boolean {
  const size = fs.fstatSync(fd).size;
  if (size === 0) return false;
  const last = Buffer.alloc(1);
  fs.readSync(fd, last, 0, 1, size - 1);
  return last[0] !== 0x0a;
}

function readText(file: string, what: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT') throw new CheckpointError(file, `${what} does not exist`);
    if (code === 'EISDIR') throw new CheckpointError(file, `${what} is a folder, not a file`);
    throw new CheckpointError(file, `cannot read ${what}: ${errorMessage(err)}`);
  }
  // Editors on Windows may save a byte-order mark, which JSON.parse rejects.
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Node 20's JSON.parse reports a character offset only; users fixing a file by hand need line and column. */
function describeJsonError(text: string, err: unknown): string {
  const message = errorMessage(err);
  const position = /at position (\d+)/.exec(message);
  if (!position || /\bline\b/.test(message)) return message;
  const before = text.slice(0, Number(position[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${message} (line ${line}, column ${column})`;
}

function removeQuietly(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    // Nothing to clean up if the temporary file was never created.
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? '';
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
