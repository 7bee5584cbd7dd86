/**
 * Turns errors into what crosses the process boundary (`ErrorInfo`) and into what a person reads
 * in a terminal. The library's error classes already carry the file, line and JSON pointer at
 * fault, so for them a stack trace is noise; only an unexpected error (a bug) earns one, and only
 * on request, because users paste whatever the terminal shows into bug reports.
 */
import * as path from 'node:path';
import type { ErrorInfo } from '../protocol/worker';
import { CheckpointError, ConfigError, DataError, DiskError, PeftLabError } from '../core/errors';

/** Set to 1 to print stack traces of unexpected errors. */
export const DEBUG_ENV = 'PEFT_LAB_DEBUG';

/** A serialisable description of `err` for a `failed` message. */
export function toErrorInfo(err: unknown): ErrorInfo {
  if (!(err instanceof Error)) return { name: 'Error', message: describeNonError(err) };
  return { name: err.name, message: err.message, ...locationOf(err) };
}

/**
 * One line for a terminal, e.g. `error: examples/x.peft.json:12: /method/bottleneck: must be >= 1`.
 * Paths inside the current folder are shown relative to it, which keeps the line short and lets
 * terminals that recognise `file:line` make it clickable. `stack` overrides PEFT_LAB_DEBUG for
 * callers whose output is a log rather than a terminal.
 */
export function formatError(err: unknown, options: { stack?: boolean } = {}): string {
  if (!(err instanceof Error)) return `error: ${describeNonError(err)}`;
  const text = `error: ${describeError(err)}`;
  if (isExpected(err)) return text;
  if (options.stack ?? process.env[DEBUG_ENV] === '1') return `${text}\n${stackBody(err)}`;
  return `${text}\n(this looks like a bug in PEFT Lab; set ${DEBUG_ENV}=1 to see the stack trace)`;
}

/** Errors that describe a problem with the user's input or machine rather than a bug. */
export function isExpected(err: unknown): boolean {
  return err instanceof PeftLabError || isSystemError(err);
}

function locationOf(err: Error): Pick<ErrorInfo, 'file' | 'line' | 'path'> {
  if (err instanceof ConfigError) return withoutUndefined({ file: err.file, line: err.line, path: err.path });
  if (err instanceof DataError) return withoutUndefined({ file: err.file, line: err.line });
  if (err instanceof CheckpointError || err instanceof DiskError) return { file: err.file };
  // Node's fs errors name the file in `path`; in ErrorInfo `path` means a JSON pointer.
  if (isSystemError(err) && typeof err.path === 'string') return { file: err.path };
  return {};
}

/** The message rebuilt from the error's fields so its file can be shown relative to the cwd. */
function describeError(err: Error): string {
  // A whole-file problem (not found, unreadable) has no pointer; '/' would only add noise.
  if (err instanceof ConfigError)
    return [location(err.file, err.line), err.path, err.detail].filter(Boolean).join(': ');
  if (err instanceof DataError) return `${location(err.file, err.line)}: ${err.detail}`;
  if (err instanceof CheckpointError) return `${location(err.file)}: ${err.detail}`;
  if (err instanceof DiskError) return `${location(err.file)}${err.message.slice(err.file.length)}`;
  return err.message || err.name;
}

function location(file: string, line?: number): string {
  return line === undefined ? displayPath(file) : `${displayPath(file)}:${line}`;
}

/** `file` relative to the current folder when it lies inside it, else unchanged. */
export function displayPath(file: string, cwd: string = process.cwd()): string {
  if (!path.isAbsolute(file)) return file;
  const relative = path.relative(cwd, file);
  const inside = relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
  return inside ? relative : file;
}

function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return err instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

/** The stack without its first line, which repeats the message already printed. */
function stackBody(err: Error): string {
  const lines = (err.stack ?? '').split('\n');
  const firstFrame = lines.findIndex((line) => /^\s+at /.test(line));
  return firstFrame >= 0 ? lines.slice(firstFrame).join('\n') : lines.join('\n');
}

function describeNonError(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
