/**
 * The Runs sidebar's model: every run folder under the watched runs folders, read into plain data
 * (state, progress, metrics, checkpoints, problems), kept up to date one file at a time.
 *
 * No `vscode` import: the tree provider (runs-tree.ts) turns this into TreeItems, the CodeLens
 * reads it through RunIndex, and test/unit/runs-model.test.ts and bench/runs-tree.ts use it as is.
 *
 * Reading is defensive: a missing status, a broken JSON file or log line, a checkpoint without
 * weights each become a `problem` on the run or checkpoint, never an exception. Temporary files
 * (`*.tmp-<pid>-<hex>`, staged checkpoint folders `step-N.tmp-<pid>`) are invisible.
 *
 * metrics.jsonl is followed from where the last read stopped (per-file byte offset and inode):
 * a change reads only the appended bytes; a file that shrank or was replaced (a resume rewrites it)
 * is read again from the start.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isTempFile } from '../../core/checkpoint/atomic';
import type { RunState, RunStatus } from '../../core/checkpoint/run-folder';
import { describeHolder, processAlive, runActivity } from '../../core/checkpoint/run-lock';
import type { Placement, Split } from '../../protocol/worker';
import { ANNOTATIONS_FILE, readAnnotations, type RunAnnotations } from './annotations';

export type { RunState } from '../../core/checkpoint/run-folder';

/** What the sidebar shows for a run: its status's state, or `unknown` when status.json is missing or broken. */
export type RunDisplayState = RunState | 'unknown';

/** Values of the state filter: the four states, and runs with a problem (corrupt or half-written). */
export type StateFilter = RunState | 'problem';
export const STATE_FILTERS: readonly StateFilter[] = ['running', 'finished', 'failed', 'stopped', 'problem'];

export type RunsSort = 'date' | 'metric';

export interface RunsViewOptions {
  /** Newest first (default), or best validation metric first. */
  sort: RunsSort;
  /** Config files to show (absolute; '' is the group of runs whose config is unknown); all when undefined or empty. */
  configs?: readonly string[];
  /** States to show; all when undefined or empty. */
  states?: readonly StateFilter[];
}

export interface TrainRecord {
  step: number;
  epoch: number;
  loss: number;
  learningRate?: number;
  examplesPerSecond?: number;
  elapsedMs?: number;
}

export interface EvalRecord {
  split: Split;
  step: number;
  metrics: Record<string, number>;
  isBest: boolean;
}

/** What metrics.jsonl said so far. */
export interface MetricsLog {
  /** Complete lines read (including broken ones). */
  lines: number;
  trainLines: number;
  lastTrain?: TrainRecord;
  evals: EvalRecord[];
  /** Complete lines that are not valid records; `line` is 1-based. */
  broken: { line: number; reason: string }[];
  /** True while the file ends in a line without its newline (being written, or cut by a crash). */
  partialLastLine: boolean;
}

export interface SplitEval {
  metrics: Record<string, number>;
  examples?: number;
  evaluated?: string;
}

export interface CheckpointRecord {
  readonly dir: string;
  readonly runDir: string;
  readonly name: string;
  step: number;
  epoch?: number;
  /** Validation metrics at this step (checkpoint.json), if it was evaluated then. */
  metrics?: Record<string, number>;
  /** eval-validation.json / eval-test.json written by an evaluation of this checkpoint. */
  evals: Partial<Record<Split, SplitEval>>;
  created?: string;
  sizeBytes: number;
  hasWeights: boolean;
  hasOptimizer: boolean;
  problems: string[];
}

/** The parts of config.json the sidebar uses (the whole resolved config is kept as read). */
export interface RunConfig {
  name?: string;
  sourceFile?: string;
  task?: { type?: string; metric?: string; labels?: string[] };
  data?: { train?: string; validation?: string; test?: string; format?: string; maxTrainExamples?: number; validationSplit?: number };
  method?: { type?: string; bottleneck?: number; reductionFactor?: number; experts?: number; share?: string; rank?: number; alpha?: number; sites?: string[]; targets?: string[]; activation?: string };
  training?: { epochs?: number; maxSteps?: number; batchSize?: number; learningRate?: number };
  output?: { runsDir?: string };
  [key: string]: unknown;
}

export interface RunRecord {
  readonly dir: string;
  /** The folder name, e.g. `tiny-20261125-010539`. */
  readonly id: string;
  /** The watched runs folder that holds it. */
  readonly root: string;
  status?: RunStatus;
  config?: RunConfig;
  state: RunDisplayState;
  /** Absolute *.peft.json the run came from (status.configFile, else config.json sourceFile); undefined when neither says. */
  configFile?: string;
  /** Epoch ms (status.started; else the folder's modification time). */
  started: number;
  ended?: number;
  metrics: MetricsLog;
  /** Complete checkpoints and broken ones, ascending by step. */
  checkpoints: CheckpointRecord[];
  /** The step the `best` file (or status.bestCheckpoint) names. */
  bestStep?: number;
  /** Why the run (or one of its files) looks corrupt or half-written; empty when all is well. */
  problems: string[];
  /** Set when status says running but its process is gone (killed without a chance to write its end). */
  interrupted?: string;
  /** Set when a live process on another machine holds the run's lock: who, e.g. `pid 12 on gpu-7 (train) since ...`. */
  runningElsewhere?: string;
  /** No status.json or config.json yet, and the folder is new: a run still starting (not shown). */
  pending: boolean;
  /** The user's display name, star and note (annotations.json); {} when there are none. */
  annotations: RunAnnotations;
}

export interface RunGroup {
  /** Absolute config file, or '' for runs whose config is unknown. */
  readonly configFile: string;
  readonly runs: RunRecord[];
  /** The config file is one of the workspace's (it exists). */
  readonly known: boolean;
}

/** What an update changed: `structure` when runs appeared, went or moved between groups. */
export interface RunsDelta {
  structure: boolean;
  runs: Set<string>;
}

export interface RunsModelOptions {
  /** Whether a process is alive (default: `process.kill(pid, 0)`). */
  isAlive?: (pid: number) => boolean;
  /** Clock, for the age of folders that are still starting (default Date.now). */
  now?: () => number;
  /** A folder without status.json and config.json younger than this is taken as starting (default 2 minutes). */
  pendingMs?: number;
}

/** Also ignored: a checkpoint folder staged as `step-N.tmp-<pid>` and metrics.jsonl rewritten through `metrics.jsonl.tmp-<pid>`. */
const STAGED_SUFFIX = /\.tmp-\d+$/;
const STEP_DIR = /^step-(\d+)$/;
/** A folder in a runs folder is taken as a run when it holds at least one of these (RunFolder.create makes checkpoints/ first). */
const RUN_MARKERS = new Set(['status.json', 'config.json', 'metrics.jsonl', 'placement.json', 'checkpoints', 'best', 'worker.log']);
const RUN_STATES = new Set<string>(['running', 'finished', 'failed', 'stopped']);
const READ_CHUNK = 1 << 20;
const MAX_COUNTED_DATA_BYTES = 64 << 20;

/** True for temporary files and staged folders that the sidebar and its watcher ignore (a name or a path). */
export function isTempPath(p: string): boolean {
  return p.split(/[\\/]/).some((segment) => isTempFile(segment) || STAGED_SUFFIX.test(segment));
}

export function emptyMetricsLog(): MetricsLog {
  return { lines: 0, trainLines: 0, evals: [], broken: [], partialLastLine: false };
}

/**
 * Follows one JSONL log from where it left off. `update` reads only the bytes appended since the
 * last call; a file that shrank or has a new inode (rewritten and renamed into place) is read again
 * from the start. A last line without its newline is held back until it is complete.
 */
export class MetricsTail {
  log: MetricsLog = emptyMetricsLog();
  /** Bytes consumed so far (the next read starts here). */
  offset = 0;
  /** Bytes read from disk over this tail's life (tests check that appends cost only their size). */
  bytesRead = 0;
  private ino = -1;
  private pending: Buffer = Buffer.alloc(0);

  constructor(readonly file: string) {}

  /** Reads what was appended; returns true when the log changed. */
  update(): boolean {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      const had = this.log.lines > 0 || this.pending.length > 0;
      this.reset();
      return had;
    }
    try {
      const stat = fs.fstatSync(fd);
      let changed = false;
      if (stat.ino !== this.ino || stat.size < this.offset) {
        changed = this.log.lines > 0 || this.pending.length > 0;
        this.reset();
        this.ino = stat.ino;
      }
      while (this.offset < stat.size) {
        const length = Math.min(READ_CHUNK, stat.size - this.offset);
        const chunk = Buffer.allocUnsafe(length);
        const read = fs.readSync(fd, chunk, 0, length, this.offset);
        if (read <= 0) break;
        this.offset += read;
        this.bytesRead += read;
        this.consume(chunk.subarray(0, read));
        changed = true;
      }
      this.log.partialLastLine = this.pending.length > 0;
      return changed;
    } finally {
      fs.closeSync(fd);
    }
  }

  private reset(): void {
    this.log = emptyMetricsLog();
    this.offset = 0;
    this.ino = -1;
    this.pending = Buffer.alloc(0);
  }

  private consume(chunk: Buffer): void {
    const data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const end = data.lastIndexOf(0x0a);
    if (end < 0) {
      this.pending = Buffer.from(data);
      return;
    }
    const text = data.toString('utf8', 0, end);
    this.pending = Buffer.from(data.subarray(end + 1));
    for (const raw of text.split('\n')) {
      this.log.lines++;
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line.trim() === '') continue;
      this.record(line);
    }
  }

  private record(line: string): void {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      this.log.broken.push({ line: this.log.lines, reason: `not valid JSON (${(err as Error).message})` });
      return;
    }
    if (!isObject(value) || typeof value.step !== 'number') {
      this.log.broken.push({ line: this.log.lines, reason: 'not a metrics record (no numeric "step")' });
      return;
    }
    if (value.kind === 'train') {
      this.log.trainLines++;
      this.log.lastTrain = {
        step: value.step, epoch: num(value.epoch) ?? 0, loss: num(value.loss) ?? NaN,
        learningRate: num(value.learningRate), examplesPerSecond: num(value.examplesPerSecond), elapsedMs: num(value.elapsedMs),
      };
    } else if (value.kind === 'eval') {
      const metrics: Record<string, number> = {};
      for (const [k, v] of Object.entries(value)) {
        if (k === 'kind' || k === 'split' || k === 'step' || k === 'epoch' || k === 'isBest') continue;
        if (typeof v === 'number') metrics[k] = v;
      }
      this.log.evals.push({ split: value.split === 'test' ? 'test' : 'validation', step: value.step, metrics, isBest: value.isBest === true });
    } else {
      this.log.broken.push({ line: this.log.lines, reason: `unknown record kind ${JSON.stringify(value.kind)}` });
    }
  }
}

interface RunEntry {
  record: RunRecord;
  tail: MetricsTail;
  statusError?: string;
  configError?: string;
  annotationsError?: string;
  placement?: { mtimeMs: number; value?: Placement; error?: string };
}

/** Reads and follows the run folders under a set of runs folders. */
export class RunsModel {
  private readonly roots = new Set<string>();
  private readonly entries = new Map<string, RunEntry>();
  private knownConfigs = new Set<string>();
  private readonly isAlive: (pid: number) => boolean;
  private readonly now: () => number;
  private readonly pendingMs: number;
  private readonly lineCounts = new Map<string, { key: string; count: number }>();

  constructor(options: RunsModelOptions = {}) {
    this.isAlive = options.isAlive ?? processAlive;
    this.now = options.now ?? Date.now;
    this.pendingMs = options.pendingMs ?? 120_000;
  }

  /** The watched runs folders (absolute). */
  rootDirs(): string[] {
    return [...this.roots];
  }

  /** Watches exactly these runs folders: new ones are scanned, runs of dropped ones forgotten. */
  setRoots(dirs: Iterable<string>): RunsDelta {
    const next = new Set([...dirs].map((d) => path.resolve(d)));
    const delta = newDelta();
    for (const root of [...this.roots]) {
      if (next.has(root)) continue;
      this.roots.delete(root);
      for (const [dir, entry] of this.entries) if (entry.record.root === root) this.forget(dir, delta);
    }
    for (const root of next) {
      if (this.roots.has(root)) continue;
      this.roots.add(root);
      this.scanRoot(root, delta);
    }
    return delta;
  }

  /** Config files to show even without runs (the workspace's *.peft.json). */
  setKnownConfigs(files: Iterable<string>): boolean {
    const next = new Set([...files].map((f) => path.resolve(f)));
    const same = next.size === this.knownConfigs.size && [...next].every((f) => this.knownConfigs.has(f));
    this.knownConfigs = next;
    return !same;
  }

  /** Reads every runs folder again from scratch (tails start over). */
  rescan(): RunsDelta {
    const delta = newDelta();
    for (const dir of [...this.entries.keys()]) this.forget(dir, delta);
    for (const root of this.roots) this.scanRoot(root, delta);
    return delta;
  }

  /**
   * Applies changed paths (from the file watcher): each is mapped to the part of a run it belongs to
   * (status, config, metrics, best, a checkpoint, the folder itself, or a whole runs folder), and only
   * that part is read again.
   */
  applyChanges(paths: Iterable<string>): RunsDelta {
    const delta = newDelta();
    const work = new Map<string, Set<string>>(); // run dir -> parts
    const rootsToScan = new Set<string>();
    for (const raw of paths) {
      const p = path.resolve(raw);
      if (isTempPath(p)) continue;
      const root = this.rootOf(p);
      if (!root) continue;
      const rel = path.relative(root, p);
      if (rel === '') {
        rootsToScan.add(root);
        continue;
      }
      const [runName, part, sub] = rel.split(path.sep);
      const dir = path.join(root, runName!);
      const parts = work.get(dir) ?? new Set<string>();
      work.set(dir, parts);
      if (part === undefined) parts.add('*');
      else if (part === 'checkpoints') parts.add(sub === undefined ? 'checkpoints' : `checkpoint:${sub}`);
      else parts.add(part);
    }
    for (const root of rootsToScan) this.scanRoot(root, delta);
    for (const [dir, parts] of work) this.updateRun(dir, parts, delta);
    return delta;
  }

  /** Reads one run folder again (all of it, following its metrics from where they were). */
  refreshRun(dir: string): RunsDelta {
    const delta = newDelta();
    const resolved = path.resolve(dir);
    const root = this.rootOf(resolved);
    if (root && path.dirname(resolved) === root) this.updateRun(resolved, new Set(['*']), delta);
    return delta;
  }

  /**
   * Checks that runs whose status says running still have a live process, and that folders taken
   * as starting are not too old (nothing on disk changes when a worker is killed, so the watcher
   * cannot tell). Cheap: only running and pending runs are looked at.
   */
  recheckLiveness(): RunsDelta {
    const delta = newDelta();
    for (const entry of this.entries.values()) {
      const r = entry.record;
      if (r.status?.state !== 'running' && !r.pending) continue;
      const before = `${r.state}|${r.interrupted}|${r.runningElsewhere}|${r.pending}`;
      this.derive(entry);
      if (`${r.state}|${r.interrupted}|${r.runningElsewhere}|${r.pending}` !== before) {
        delta.runs.add(r.dir);
        delta.structure = true;
      }
    }
    return delta;
  }

  /** Every run the model knows (starting ones included), unordered. */
  runs(): RunRecord[] {
    return [...this.entries.values()].map((e) => e.record);
  }

  run(dir: string): RunRecord | undefined {
    return this.entries.get(path.resolve(dir))?.record;
  }

  checkpoint(dir: string): CheckpointRecord | undefined {
    const resolved = path.resolve(dir);
    return this.run(path.dirname(path.dirname(resolved)))?.checkpoints.find((c) => c.dir === resolved);
  }

  /** Runs of one config, newest first, starting ones left out. */
  runsOfConfig(configFile: string): RunRecord[] {
    const key = path.resolve(configFile);
    return this.runs().filter((r) => !r.pending && r.configFile === key).sort(byDate);
  }

  /** Bytes read from metrics.jsonl files so far: one run's, or all runs' the model still knows. */
  metricsBytesRead(dir?: string): number {
    if (dir !== undefined) return this.entries.get(path.resolve(dir))?.tail.bytesRead ?? 0;
    let total = 0;
    for (const e of this.entries.values()) total += e.tail.bytesRead;
    return total;
  }

  /** The tree's top level: config groups (filtered), each with its runs (filtered and sorted). */
  groups(view: RunsViewOptions): RunGroup[] {
    const configFilter = view.configs?.length ? new Set(view.configs) : undefined;
    const stateFilter = view.states?.length ? new Set(view.states) : undefined;
    const byConfig = new Map<string, RunRecord[]>();
    for (const file of this.knownConfigs) byConfig.set(file, []);
    for (const entry of this.entries.values()) {
      const r = entry.record;
      if (r.pending) continue;
      const key = r.configFile ?? '';
      let list = byConfig.get(key);
      if (!list) byConfig.set(key, (list = []));
      if (!stateFilter || matchesState(r, stateFilter)) list.push(r);
    }
    const groups: RunGroup[] = [];
    for (const [configFile, runs] of byConfig) {
      if (configFilter && !configFilter.has(configFile)) continue;
      if (stateFilter && runs.length === 0) continue;
      if (!this.knownConfigs.has(configFile) && runs.length === 0) continue;
      runs.sort(view.sort === 'metric' ? byMetric : byDate);
      groups.push({ configFile, runs, known: this.knownConfigs.has(configFile) });
    }
    return groups.sort((a, b) => groupOrder(a) - groupOrder(b) || path.basename(a.configFile).localeCompare(path.basename(b.configFile)) || a.configFile.localeCompare(b.configFile));
  }

  /** placement.json of a run, read on demand (for tooltips) and cached until it changes. */
  placement(dir: string): { value?: Placement; error?: string } {
    const entry = this.entries.get(path.resolve(dir));
    if (!entry) return { error: 'unknown run' };
    const file = path.join(entry.record.dir, 'placement.json');
    let mtimeMs: number;
    try {
      mtimeMs = fs.statSync(file).mtimeMs;
    } catch {
      return { error: 'placement.json is missing' };
    }
    if (entry.placement?.mtimeMs !== mtimeMs) {
      const read = readJson(file, 'placement.json');
      entry.placement = { mtimeMs, value: read.value as Placement | undefined, error: read.error };
    }
    return entry.placement;
  }

  /**
   * Examples in a data file (JSONL: non-blank lines; CSV/TSV: lines after the header), counted on
   * demand for tooltips and cached by size and modification time. Undefined when unreadable or
   * larger than 64 MiB.
   */
  dataSize(file: string): number | undefined {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
    } catch {
      return undefined;
    }
    // counted on the extension host's thread when a tooltip opens: a very large file is not worth the wait
    if (stat.size > MAX_COUNTED_DATA_BYTES) return undefined;
    const key = `${stat.size}:${stat.mtimeMs}`;
    const cached = this.lineCounts.get(file);
    if (cached?.key === key) return cached.count;
    let count = 0;
    try {
      const text = fs.readFileSync(file, 'utf8');
      for (const line of text.split('\n')) if (line.trim() !== '') count++;
    } catch {
      return undefined;
    }
    if (/\.(csv|tsv)$/i.test(file)) count = Math.max(0, count - 1);
    this.lineCounts.set(file, { key, count });
    return count;
  }

  // ---- reading -----------------------------------------------------------------------------------

  private rootOf(p: string): string | undefined {
    let best: string | undefined;
    for (const root of this.roots) {
      if ((p === root || p.startsWith(root + path.sep)) && (!best || root.length > best.length)) best = root;
    }
    return best;
  }

  /** Lists a runs folder: new run folders are read, vanished ones forgotten. */
  private scanRoot(root: string, delta: RunsDelta): void {
    let names: fs.Dirent[] = [];
    try {
      names = fs.readdirSync(root, { withFileTypes: true });
    } catch {
      // a runs folder that does not exist (yet) has no runs
    }
    const present = new Set<string>();
    for (const d of names) {
      if (!d.isDirectory() || isTempPath(d.name) || d.name.startsWith('.')) continue;
      const dir = path.join(root, d.name);
      present.add(dir);
      if (!this.entries.has(dir)) this.updateRun(dir, new Set(['*']), delta);
    }
    for (const [dir, entry] of this.entries) if (entry.record.root === root && !present.has(dir)) this.forget(dir, delta);
  }

  private forget(dir: string, delta: RunsDelta): void {
    if (!this.entries.delete(dir)) return;
    delta.structure = true;
    delta.runs.add(dir);
  }

  private updateRun(dir: string, parts: Set<string>, delta: RunsDelta): void {
    const root = this.rootOf(dir);
    if (!root || path.dirname(dir) !== root) return;
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      names = []; // gone, or not a folder
    }
    // a folder with none of a run's files is something else that lives in the runs folder
    if (!names.some((n) => RUN_MARKERS.has(n))) {
      this.forget(dir, delta);
      return;
    }
    let entry = this.entries.get(dir);
    if (!entry) {
      entry = { record: newRecord(dir, root), tail: new MetricsTail(path.join(dir, 'metrics.jsonl')) };
      this.entries.set(dir, entry);
      parts = new Set(['*']);
      delta.structure = true;
    }
    const r = entry.record;
    const before = { configFile: r.configFile, pending: r.pending, state: r.state, started: r.started };
    const all = parts.has('*');
    if (all || parts.has('status.json')) this.readStatus(entry);
    if (all || parts.has('config.json')) this.readConfig(entry);
    if (all || parts.has('metrics.jsonl')) entry.tail.update();
    if (all || parts.has('placement.json')) entry.placement = undefined;
    if (all || parts.has('best')) r.bestStep = readBestStep(dir);
    if (all || parts.has(ANNOTATIONS_FILE)) this.readAnnotations(entry);
    if (all || parts.has('checkpoints')) this.readCheckpoints(entry, undefined);
    else {
      const names = [...parts].filter((p) => p.startsWith('checkpoint:')).map((p) => p.slice('checkpoint:'.length));
      if (names.length) this.readCheckpoints(entry, new Set(names));
    }
    this.derive(entry);
    if (before.configFile !== r.configFile || before.pending !== r.pending || before.state !== r.state || before.started !== r.started) delta.structure = true;
    delta.runs.add(dir);
  }

  private readStatus(entry: RunEntry): void {
    const r = entry.record;
    const read = readJson(path.join(r.dir, 'status.json'), 'status.json');
    r.status = undefined;
    entry.statusError = undefined;
    if (read.missing) return;
    if (read.error) {
      entry.statusError = read.error;
      return;
    }
    const s = read.value;
    if (!isObject(s) || typeof s.state !== 'string' || !RUN_STATES.has(s.state)) {
      entry.statusError = `status.json has no valid "state" (expected running, finished, failed or stopped; found ${JSON.stringify(isObject(s) ? s.state : s)})`;
      return;
    }
    r.status = s as unknown as RunStatus;
  }

  private readAnnotations(entry: RunEntry): void {
    const read = readAnnotations(entry.record.dir);
    entry.record.annotations = read.value;
    entry.annotationsError = read.error;
  }

  private readConfig(entry: RunEntry): void {
    const r = entry.record;
    const read = readJson(path.join(r.dir, 'config.json'), 'config.json');
    r.config = undefined;
    entry.configError = undefined;
    if (read.missing) return;
    if (read.error || !isObject(read.value)) {
      entry.configError = read.error ?? 'config.json is not a JSON object';
      return;
    }
    r.config = read.value as RunConfig;
  }

  /** Reads the list of checkpoint folders; `only` names the ones to read again (others are kept as read). */
  private readCheckpoints(entry: RunEntry, only: Set<string> | undefined): void {
    const r = entry.record;
    const root = path.join(r.dir, 'checkpoints');
    let names: fs.Dirent[] = [];
    try {
      names = fs.readdirSync(root, { withFileTypes: true });
    } catch {
      // no checkpoints folder (yet)
    }
    const old = new Map(r.checkpoints.map((c) => [c.name, c]));
    const next: CheckpointRecord[] = [];
    for (const d of names) {
      const match = STEP_DIR.exec(d.name);
      if (!match || !d.isDirectory()) continue;
      const previous = old.get(d.name);
      next.push(previous && only && !only.has(d.name) ? previous : readCheckpoint(path.join(root, d.name), r.dir, Number(match[1])));
    }
    r.checkpoints = next.sort((a, b) => a.step - b.step);
  }

  /** State, grouping, start time and problems from what was read. */
  private derive(entry: RunEntry): void {
    const r = entry.record;
    const s = r.status;
    const { statusError, configError } = entry;
    r.metrics = entry.tail.log;
    const configFile = s?.configFile || r.config?.sourceFile;
    r.configFile = typeof configFile === 'string' && configFile ? path.resolve(configFile) : undefined;
    const started = s ? Date.parse(s.started) : NaN;
    r.started = Number.isFinite(started) ? started : (stampTime(r.id) ?? folderTime(r.dir));
    const ended = s?.ended ? Date.parse(s.ended) : NaN;
    r.ended = Number.isFinite(ended) ? ended : undefined;
    r.interrupted = undefined;
    r.runningElsewhere = undefined;
    r.state = s ? s.state : 'unknown';
    if (s?.state === 'running') {
      // the one liveness rule (run-lock.ts) that inspect, the follower and the experiments table use
      const activity = runActivity(r.dir, typeof s.pid === 'number' ? s.pid : undefined, { isAlive: this.isAlive });
      if (!activity.live) {
        r.state = 'failed';
        r.interrupted = activity.why;
      } else if (activity.elsewhere && activity.holder) {
        r.runningElsewhere = describeHolder(activity.holder);
      }
    }
    if (r.bestStep === undefined && s?.bestCheckpoint) {
      const m = STEP_DIR.exec(path.basename(s.bestCheckpoint));
      if (m) r.bestStep = Number(m[1]);
    }
    r.pending = !s && !statusError && !r.config && !configError && this.looksLikeStarting(r.dir);

    const problems: string[] = [];
    if (statusError) problems.push(statusError);
    else if (!s && !r.pending) problems.push(r.config || configError ? 'status.json is missing' : 'no status.json or config.json: the run never got going');
    if (configError) problems.push(configError);
    if (entry.annotationsError) problems.push(entry.annotationsError);
    else if (!r.config && s) problems.push('config.json is missing');
    const log = entry.tail.log;
    if (log.broken.length) {
      const first = log.broken[0]!;
      const more = log.broken.length > 1 ? ` (and ${log.broken.length - 1} more line${log.broken.length > 2 ? 's' : ''})` : '';
      problems.push(`metrics.jsonl line ${first.line}: ${first.reason}${more}`);
    }
    if (log.partialLastLine && r.state !== 'running') problems.push('metrics.jsonl ends in a half-written line (an interrupted write)');
    for (const c of r.checkpoints) for (const p of c.problems) problems.push(`checkpoint ${c.name}: ${p}`);
    if (r.bestStep !== undefined && r.checkpoints.length && !r.checkpoints.some((c) => c.step === r.bestStep)) {
      problems.push(`best names step-${r.bestStep}, which is not on disk`);
    }
    r.problems = problems;
  }

  /** A fresh folder holding at most an empty checkpoints/ and log or temporary files: a run whose worker is still loading. */
  private looksLikeStarting(dir: string): boolean {
    let stat: fs.Stats;
    let names: string[];
    try {
      stat = fs.statSync(dir);
      names = fs.readdirSync(dir);
    } catch {
      return false;
    }
    if (this.now() - stat.mtimeMs > this.pendingMs) return false;
    return names.every((n) => isTempPath(n) || n === 'worker.log' || n === 'metrics.jsonl' || n === 'placement.json' || (n === 'checkpoints' && isEmptyDir(path.join(dir, n))));
  }
}

// ---- derived values the presentation and sorting use ---------------------------------------------------

/** The run's task metric (config.json task.metric; else the first non-loss metric it logged). */
export function metricName(run: RunRecord): string | undefined {
  const fromConfig = run.config?.task?.metric;
  if (typeof fromConfig === 'string') return fromConfig;
  const candidates = run.status?.bestMetrics ?? run.metrics.evals.find((e) => e.split === 'validation')?.metrics;
  return candidates ? Object.keys(candidates).find((k) => k !== 'loss') : undefined;
}

export function lowerIsBetter(metric: string): boolean {
  return /loss|mse|mae|error/i.test(metric);
}

/** The best validation value of the run's metric: status.bestMetrics, the best checkpoint's, else the best logged evaluation. */
export function bestMetric(run: RunRecord): { name: string; value: number; step?: number } | undefined {
  const name = metricName(run);
  if (!name) return undefined;
  const fromStatus = run.status?.bestMetrics?.[name];
  if (typeof fromStatus === 'number' && Number.isFinite(fromStatus)) return { name, value: fromStatus, step: run.bestStep };
  const best = run.checkpoints.find((c) => c.step === run.bestStep)?.metrics?.[name];
  if (typeof best === 'number' && Number.isFinite(best)) return { name, value: best, step: run.bestStep };
  let found: { name: string; value: number; step?: number } | undefined;
  const sign = lowerIsBetter(name) ? -1 : 1;
  for (const e of run.metrics.evals) {
    const v = e.metrics[name];
    if (e.split !== 'validation' || typeof v !== 'number' || !Number.isFinite(v)) continue;
    if (!found || sign * (v - found.value) > 0) found = { name, value: v, step: e.step };
  }
  return found;
}

/** The latest test-split result: a test evaluation in the log, else the best checkpoint's eval-test.json. */
export function testMetrics(run: RunRecord): { step: number; metrics: Record<string, number> } | undefined {
  for (let i = run.metrics.evals.length - 1; i >= 0; i--) {
    const e = run.metrics.evals[i]!;
    if (e.split === 'test') return { step: e.step, metrics: e.metrics };
  }
  const best = run.checkpoints.find((c) => c.step === run.bestStep) ?? run.checkpoints[run.checkpoints.length - 1];
  const test = best?.evals.test;
  return best && test ? { step: best.step, metrics: test.metrics } : undefined;
}

/** The latest step known: status.step, or the log's last train line when that is newer. */
export function currentStep(run: RunRecord): number {
  return Math.max(run.status?.step ?? 0, run.metrics.lastTrain?.step ?? 0);
}

/** The newest complete checkpoint (has checkpoint.json and weights), which a resume continues from. */
export function latestCompleteCheckpoint(run: RunRecord): CheckpointRecord | undefined {
  for (let i = run.checkpoints.length - 1; i >= 0; i--) {
    const c = run.checkpoints[i]!;
    if (c.problems.length === 0 && c.hasWeights) return c;
  }
  return undefined;
}

/** Metrics of a checkpoint at its step: checkpoint.json, else the log's validation evaluation at that step. */
export function checkpointMetrics(run: RunRecord | undefined, c: CheckpointRecord): Record<string, number> | undefined {
  if (c.metrics && Object.keys(c.metrics).length) return c.metrics;
  return run?.metrics.evals.find((e) => e.split === 'validation' && e.step === c.step)?.metrics;
}

export function matchesState(run: RunRecord, filter: ReadonlySet<StateFilter>): boolean {
  if (filter.has('problem') && run.problems.length > 0) return true;
  return run.state !== 'unknown' && filter.has(run.state);
}

// ---- helpers -------------------------------------------------------------------------------------------

function newDelta(): RunsDelta {
  return { structure: false, runs: new Set() };
}

function newRecord(dir: string, root: string): RunRecord {
  return {
    dir, id: path.basename(dir), root, state: 'unknown', started: 0, metrics: emptyMetricsLog(),
    checkpoints: [], problems: [], pending: false, annotations: {},
  };
}

function byDate(a: RunRecord, b: RunRecord): number {
  return b.started - a.started || b.id.localeCompare(a.id);
}

function byMetric(a: RunRecord, b: RunRecord): number {
  const ma = bestMetric(a);
  const mb = bestMetric(b);
  if (ma && mb) {
    const sign = lowerIsBetter(ma.name) ? 1 : -1;
    return sign * (ma.value - mb.value) || byDate(a, b);
  }
  if (ma) return -1;
  if (mb) return 1;
  return byDate(a, b);
}

function groupOrder(g: RunGroup): number {
  return g.configFile === '' ? 2 : g.known ? 0 : 1;
}

function readCheckpoint(dir: string, runDir: string, step: number): CheckpointRecord {
  const c: CheckpointRecord = { dir, runDir, name: path.basename(dir), step, evals: {}, sizeBytes: 0, hasWeights: false, hasOptimizer: false, problems: [] };
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    c.problems.push(`cannot list the folder (${(err as Error).message})`);
    return c;
  }
  for (const name of names) {
    if (isTempPath(name)) continue;
    try {
      const stat = fs.statSync(path.join(dir, name));
      if (stat.isFile()) c.sizeBytes += stat.size;
      if (name === 'weights.safetensors') c.hasWeights = stat.size > 0;
      if (name === 'optimizer.safetensors') c.hasOptimizer = true;
    } catch {
      // removed between the listing and the stat
    }
  }
  if (!names.includes('checkpoint.json')) c.problems.push('incomplete: no checkpoint.json');
  else {
    const read = readJson(path.join(dir, 'checkpoint.json'), 'checkpoint.json');
    if (read.error) c.problems.push(read.error);
    else if (isObject(read.value)) {
      const info = read.value;
      if (typeof info.step === 'number' && info.step !== step) c.problems.push(`checkpoint.json says step ${info.step}`);
      c.epoch = num(info.epoch);
      if (isObject(info.metrics)) c.metrics = numbers(info.metrics);
      if (typeof info.created === 'string') c.created = info.created;
    }
  }
  if (!names.includes('weights.safetensors')) c.problems.push('no weights.safetensors');
  else if (!c.hasWeights) c.problems.push('weights.safetensors is empty');
  for (const split of ['validation', 'test'] as const) {
    const file = `eval-${split}.json`;
    if (!names.includes(file)) continue;
    const read = readJson(path.join(dir, file), file);
    if (read.error) c.problems.push(read.error);
    else if (isObject(read.value) && isObject(read.value.metrics)) {
      c.evals[split] = { metrics: numbers(read.value.metrics), examples: num(read.value.examples), evaluated: typeof read.value.evaluated === 'string' ? read.value.evaluated : undefined };
    }
  }
  return c;
}

function readBestStep(runDir: string): number | undefined {
  try {
    const match = /^step-(\d+)/.exec(fs.readFileSync(path.join(runDir, 'best'), 'utf8').trim());
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Parses a JSON file; never throws. `missing` when it does not exist. */
function readJson(file: string, what: string): { value?: unknown; error?: string; missing?: boolean } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { missing: true };
    return { error: `cannot read ${what} (${code ?? (err as Error).message})` };
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === '') return { error: `${what} is empty` };
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { error: `${what} is not valid JSON (${(err as Error).message})` };
  }
}

/** The UTC time in a run folder's name (`<name>-YYYYMMDD-HHMMSS[-N]`, as RunFolder.create makes it). */
function stampTime(id: string): number | undefined {
  const m = /-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})(?:-\d+)?$/.exec(id);
  if (!m) return undefined;
  const t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  return Number.isFinite(t) ? t : undefined;
}

function folderTime(dir: string): number {
  try {
    const stat = fs.statSync(dir);
    return stat.birthtimeMs || stat.mtimeMs;
  } catch {
    return 0;
  }
}

function isEmptyDir(dir: string): boolean {
  try {
    return fs.readdirSync(dir).every((n) => isTempPath(n));
  } catch {
    return false;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function numbers(value: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'number') out[k] = v;
  return out;
}
