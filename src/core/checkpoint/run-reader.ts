/**
 * The one reader of a run folder for everything that watches runs (the Runs tree, the dashboard,
 * the follower of a run started before a reload, Slurm's monitor, the CLI): whether a folder is a
 * run, its status.json (paths resolved against the folder), whether a running run still runs (the
 * one liveness rule of run-lock.ts), and its metrics.jsonl followed line by line.
 * The writer is run-folder.ts; the metrics lines' contract is src/protocol/metrics.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isBrokenLine, parseMetricsLine, type MetricsLine } from '../../protocol/metrics';
import { JsonlTail } from './jsonl-tail';
import { statusFromDisk, type RunState, type RunStatus } from './run-folder';
import { runActivity, type LivenessOptions, type LockVerdict } from './run-lock';

export const STATUS_FILE = 'status.json';
export const METRICS_FILE = 'metrics.jsonl';
const RUN_STATES = new Set<string>(['running', 'finished', 'failed', 'stopped']);
/** A folder holding any of these is a run (RunFolder.create makes checkpoints/ first). */
const RUN_MARKERS = [
  'status.json',
  'config.json',
  'metrics.jsonl',
  'placement.json',
  'checkpoints',
  'best',
  'worker.log',
];

/** Whether one of these names (a folder's listing) makes the folder a run folder. */
export function hasRunMarker(names: readonly string[]): boolean {
  return names.some((n) => RUN_MARKERS.includes(n));
}

/** Whether a folder is a run folder (holds any of a run's files). */
export function isRunFolder(dir: string): boolean {
  try {
    return hasRunMarker(fs.readdirSync(dir));
  } catch {
    return false;
  }
}

export type StatusRead =
  | { readonly status: RunStatus; readonly text: string }
  | { readonly status?: undefined; readonly missing: true }
  | { readonly status?: undefined; readonly error: string };

/**
 * status.json of a run folder, checked (a JSON object with a known `state`), with `configFile` and
 * `bestCheckpoint` absolute (stored relative to the folder; older runs stored them absolute).
 * Never throws: `missing`, or an `error` naming the file and what is wrong.
 */
export function readRunStatusChecked(dir: string): StatusRead {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, STATUS_FILE), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { missing: true };
    return { error: `cannot read status.json (${code ?? (err as Error).message})` };
  }
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '') return { error: 'status.json is empty' };
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    return { error: `status.json is not valid JSON (${(err as Error).message})` };
  }
  const s = value as Record<string, unknown> | null;
  if (
    typeof s !== 'object' ||
    s === null ||
    Array.isArray(s) ||
    typeof s.state !== 'string' ||
    !RUN_STATES.has(s.state)
  ) {
    const found = typeof s === 'object' && s !== null && !Array.isArray(s) ? s.state : s;
    return {
      error: `status.json has no valid "state" (expected running, finished, failed or stopped; found ${JSON.stringify(found)})`,
    };
  }
  return { status: statusFromDisk(dir, s as unknown as RunStatus), text };
}

/** status.json of a run folder, or undefined when it is missing or unreadable (see readRunStatusChecked). */
export function readRunStatus(dir: string): RunStatus | undefined {
  return readRunStatusChecked(dir).status;
}

/**
 * Whether a run whose status says running still runs: the one rule (run-lock.ts) every reader
 * uses. Its lock's holder decides; without a lock, the pid in its status (EPERM from signal 0: a
 * process of another user holds that pid, so it is alive).
 */
export function runLiveness(dir: string, status: Pick<RunStatus, 'pid'>, options: LivenessOptions = {}): LockVerdict {
  return runActivity(dir, typeof status.pid === 'number' ? status.pid : undefined, options);
}

/** What a running run's state is taken to be: running (here or elsewhere), or interrupted with why. */
export function effectiveState(
  dir: string,
  status: RunStatus,
  options: LivenessOptions = {},
): { state: RunState; verdict?: LockVerdict } {
  if (status.state !== 'running') return { state: status.state };
  const verdict = runLiveness(dir, status, options);
  return { state: verdict.live ? 'running' : 'failed', verdict };
}

export interface MetricsRead {
  /** What was read before no longer holds (the file was rewritten or removed): `records` start from the top. */
  readonly reset: boolean;
  readonly records: MetricsLine[];
  /** Lines that are not metrics records, with their 1-based line number. */
  readonly broken: { readonly line: number; readonly reason: string }[];
  /** Complete lines read now, blank and broken ones included. */
  readonly lineCount: number;
  /** The file ends in a line without its newline, kept for the next read. */
  readonly partialLastLine: boolean;
  readonly missing: boolean;
}

/** A run's metrics.jsonl followed from where the last read stopped (JsonlTail), parsed by the one contract. */
export class MetricsTail {
  private readonly tail: JsonlTail;

  constructor(runDir: string) {
    this.tail = new JsonlTail(path.join(runDir, METRICS_FILE));
  }

  /** Bytes read from disk over this tail's life. */
  get bytesRead(): number {
    return this.tail.bytesRead;
  }

  read(): MetricsRead {
    const read = this.tail.read();
    const records: MetricsLine[] = [];
    const broken: { line: number; reason: string }[] = [];
    read.lines.forEach((text, i) => {
      if (text.trim() === '') return;
      const parsed = parseMetricsLine(text);
      if (isBrokenLine(parsed)) broken.push({ line: read.firstLine + i, reason: parsed.error });
      else records.push(parsed);
    });
    return {
      reset: read.reset,
      records,
      broken,
      lineCount: read.lines.length,
      partialLastLine: read.partialLastLine,
      missing: read.missing,
    };
  }
}
