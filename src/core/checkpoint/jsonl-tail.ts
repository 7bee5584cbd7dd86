/**
 * Follows an append-only JSONL file (a run's metrics.jsonl) from where the last read stopped: the
 * one way every reader of the log notices appended lines and a rewritten file.
 *
 * Rewritten means: a file with another identity (device and inode: the writer wrote a new file and
 * renamed it into place, as a resume does when it drops the lines after its checkpoint), or a
 * file shorter than what was already read. Then the whole file is read again and `reset` says so.
 * A last line without its newline (being written, or cut by a crash) is kept back, as bytes, until
 * the next read completes it.
 */
import * as fs from 'node:fs';

const READ_CHUNK = 1 << 20;

export interface TailRead {
  /** True when what was read before no longer holds (rewritten or removed): `lines` start from the top. */
  readonly reset: boolean;
  /** Complete lines read now (without their newline and a trailing \r), blank ones included. */
  readonly lines: string[];
  /** The 1-based line number of `lines[0]` in the file. */
  readonly firstLine: number;
  /** The file ends in a line without its newline (kept back for the next read). */
  readonly partialLastLine: boolean;
  /** The file does not exist (now). */
  readonly missing: boolean;
}

export class JsonlTail {
  /** Bytes consumed so far (the next read starts here). */
  private offset = 0;
  /** Bytes read from disk over this tail's life (tests check that an append costs only its size). */
  bytesRead = 0;
  /** Complete lines consumed so far. */
  private lineCount = 0;
  private identity?: string;
  private pending: Buffer = Buffer.alloc(0);

  constructor(readonly file: string) {}

  /** Reads what was appended since the last call. */
  read(): TailRead {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      const hadSomething = this.offset > 0 || this.identity !== undefined;
      this.restart();
      return { reset: hadSomething, lines: [], firstLine: 1, partialLastLine: false, missing: true };
    }
    try {
      const stat = fs.fstatSync(fd);
      const identity = `${stat.dev}:${stat.ino}`;
      let reset = false;
      if ((this.identity !== undefined && identity !== this.identity) || stat.size < this.offset) {
        reset = this.offset > 0 || this.pending.length > 0;
        this.restart();
      }
      this.identity = identity;
      const firstLine = this.lineCount + 1;
      const lines: string[] = [];
      while (this.offset < stat.size) {
        const length = Math.min(READ_CHUNK, stat.size - this.offset);
        const chunk = Buffer.allocUnsafe(length);
        const read = fs.readSync(fd, chunk, 0, length, this.offset);
        if (read <= 0) break;
        this.offset += read;
        this.bytesRead += read;
        this.consume(chunk.subarray(0, read), lines);
      }
      this.lineCount += lines.length;
      return { reset, lines, firstLine, partialLastLine: this.pending.length > 0, missing: false };
    } finally {
      fs.closeSync(fd);
    }
  }

  private restart(): void {
    this.offset = 0;
    this.lineCount = 0;
    this.identity = undefined;
    this.pending = Buffer.alloc(0);
  }

  private consume(chunk: Buffer, lines: string[]): void {
    // split on bytes, not characters: a chunk can end inside a multi-byte character
    const data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const end = data.lastIndexOf(0x0a);
    if (end < 0) {
      this.pending = Buffer.from(data);
      return;
    }
    this.pending = Buffer.from(data.subarray(end + 1));
    for (const raw of data.toString('utf8', 0, end).split('\n'))
      lines.push(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
  }
}
