/**
 * The Runs view's model: every run folder under the watched runs folders, read into plain data
 * (runs-types.ts: state, progress, metrics, checkpoints, problems), kept up to date one file at a
 * time. The questions asked of that data are in runs-queries.ts.
 *
 * No `vscode` import: the tree provider (runs-tree.ts) turns this into TreeItems, the CodeLens
 * reads it through RunIndex, and test/unit/runs-model.test.ts and bench/runs-tree.ts use it as is.
 *
 * Reading is defensive: a missing status, a broken JSON file or log line, a checkpoint without
 * weights each become a `problem` on the run or checkpoint, never an exception. Temporary files
 * (`*.tmp-<pid>-<hex>`, staged checkpoint folders `step-N.tmp-<pid>`) are invisible. Status,
 * liveness and metrics come from the one run-folder reader (src/core/checkpoint/run-reader.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isTempFile } from '../../core/checkpoint/atomic';
import { describeHolder, processAlive } from '../../core/checkpoint/run-lock';
import { hasRunMarker, readRunStatusChecked, runLiveness } from '../../core/checkpoint/run-reader';
import type { Placement } from '../../protocol/worker';
import { ANNOTATIONS_FILE, readAnnotations } from './annotations';
import { emptyMetricsLog, RunMetricsLog } from './metrics-log';
import { byDate, byMetric, groupOrder, matchesState } from './runs-queries';
import type {
  CheckpointRecord,
  RunConfig,
  RunGroup,
  RunRecord,
  RunsDelta,
  RunsModelOptions,
  RunsViewOptions,
} from './runs-types';

/** Also ignored: a checkpoint folder staged as `step-N.tmp-<pid>` and metrics.jsonl rewritten through `metrics.jsonl.tmp-<pid>`. */
const STAGED_SUFFIX = /\.tmp-\d+$/;
const STEP_DIR = /^step-(\d+)$/;
const MAX_COUNTED_DATA_BYTES = 64 << 20;

/** True for temporary files and staged folders that the sidebar and its watcher ignore (a name or a path). */
export function isTempPath(p: string): boolean {
  return p.split(/[\\/]/).some((segment) => isTempFile(segment) || STAGED_SUFFIX.test(segment));
}

interface RunEntry {
  record: RunRecord;
  tail: RunMetricsLog;
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
    return this.runs()
      .filter((r) => !r.pending && r.configFile === key)
      .sort(byDate);
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
    return groups.sort(
      (a, b) =>
        groupOrder(a) - groupOrder(b) ||
        path.basename(a.configFile).localeCompare(path.basename(b.configFile)) ||
        a.configFile.localeCompare(b.configFile),
    );
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
    for (const [dir, entry] of this.entries)
      if (entry.record.root === root && !present.has(dir)) this.forget(dir, delta);
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
    if (!hasRunMarker(names)) {
      this.forget(dir, delta);
      return;
    }
    let entry = this.entries.get(dir);
    if (!entry) {
      entry = { record: newRecord(dir, root), tail: new RunMetricsLog(dir) };
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
    if (
      before.configFile !== r.configFile ||
      before.pending !== r.pending ||
      before.state !== r.state ||
      before.started !== r.started
    )
      delta.structure = true;
    delta.runs.add(dir);
  }

  private readStatus(entry: RunEntry): void {
    const read = readRunStatusChecked(entry.record.dir);
    entry.record.status = read.status;
    entry.statusError = 'error' in read ? read.error : undefined;
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
      next.push(
        previous && only && !only.has(d.name)
          ? previous
          : readCheckpoint(path.join(root, d.name), r.dir, Number(match[1])),
      );
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
      // the one liveness rule (run-reader.ts) that inspect, the follower and the dashboard use
      const activity = runLiveness(r.dir, s, { isAlive: this.isAlive });
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
    else if (!s && !r.pending)
      problems.push(
        r.config || configError ? 'status.json is missing' : 'no status.json or config.json: the run never got going',
      );
    if (configError) problems.push(configError);
    if (entry.annotationsError) problems.push(entry.annotationsError);
    else if (!r.config && s) problems.push('config.json is missing');
    const log = entry.tail.log;
    if (log.broken.length) {
      const first = log.broken[0]!;
      const more =
        log.broken.length > 1 ? ` (and ${log.broken.length - 1} more line${log.broken.length > 2 ? 's' : ''})` : '';
      problems.push(`metrics.jsonl line ${first.line}: ${first.reason}${more}`);
    }
    if (log.partialLastLine && r.state !== 'running')
      problems.push('metrics.jsonl ends in a half-written line (an interrupted write)');
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
    return names.every(
      (n) =>
        isTempPath(n) ||
        n === 'worker.log' ||
        n === 'metrics.jsonl' ||
        n === 'placement.json' ||
        (n === 'checkpoints' && isEmptyDir(path.join(dir, n))),
    );
  }
}

// ---- helpers -------------------------------------------------------------------------------------------

function newDelta(): RunsDelta {
  return { structure: false, runs: new Set() };
}

function newRecord(dir: string, root: string): RunRecord {
  return {
    dir,
    id: path.basename(dir),
    root,
    state: 'unknown',
    started: 0,
    metrics: emptyMetricsLog(),
    checkpoints: [],
    problems: [],
    pending: false,
    annotations: {},
  };
}

function readCheckpoint(dir: string, runDir: string, step: number): CheckpointRecord {
  const c: CheckpointRecord = {
    dir,
    runDir,
    name: path.basename(dir),
    step,
    evals: {},
    sizeBytes: 0,
    hasWeights: false,
    hasOptimizer: false,
    problems: [],
  };
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
      if (typeof info.step === 'number' && info.step !== step)
        c.problems.push(`checkpoint.json says step ${info.step}`);
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
      c.evals[split] = {
        metrics: numbers(read.value.metrics),
        examples: num(read.value.examples),
        evaluated: typeof read.value.evaluated === 'string' ? read.value.evaluated : undefined,
      };
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
