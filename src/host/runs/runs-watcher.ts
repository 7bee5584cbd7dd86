/**
 * Watches runs folders with chokidar and reports changed paths in debounced batches.
 *
 * - A runs folder that does not exist yet is waited for by watching its nearest existing ancestor
 *   (that folder only, not its subtree); once it appears it is watched itself. A runs folder deleted
 *   while watched goes back to being waited for. Either way the batch names the runs folder in
 *   `roots`, so the model lists it again.
 * - Temporary files, staged checkpoint folders, weights and the worker's log are ignored: the
 *   sidebar never reads them, and every saved checkpoint or log line would otherwise wake it.
 * - Batches are debounced (default 200 ms after the last event, but at most 1 s after the first,
 *   so a run that logs continuously still updates the tree every second).
 *
 * No `vscode` import.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { isTempPath } from './runs-model';

export interface WatchBatch {
  /** Files and folders that were added, changed or removed. */
  paths: Set<string>;
  /** Runs folders that appeared or disappeared (list them again). */
  roots: Set<string>;
}

export interface RunsWatcherOptions {
  /** Quiet time before a batch is delivered (default 200 ms). */
  debounceMs?: number;
  /** Longest a batch waits while events keep coming (default 1000 ms). */
  maxWaitMs?: number;
  /** Reports watcher errors (default: ignore). */
  onError?: (error: Error) => void;
}

/** Below a runs folder: run/ (0), run/file and run/checkpoints (1), checkpoints/step-N (2), step-N/file (3). */
const DEPTH = 3;
const IGNORED_NAMES = new Set(['worker.log', '.DS_Store']);

/** Paths under a runs folder the sidebar does not need to hear about. */
export function isIgnoredRunPath(root: string, p: string): boolean {
  if (p === root) return false;
  const rel = path.relative(root, p);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return true;
  const base = path.basename(p);
  if (isTempPath(rel) || IGNORED_NAMES.has(base) || base.endsWith('.safetensors')) return true;
  return rel.split(path.sep).length > DEPTH + 1;
}

export class RunsWatcher {
  private readonly roots = new Map<string, RootWatch>();
  private batch: WatchBatch = { paths: new Set(), roots: new Set() };
  private timer?: NodeJS.Timeout;
  private firstEventAt = 0;
  private disposed = false;
  private readonly debounceMs: number;
  private readonly maxWaitMs: number;

  constructor(
    private readonly onBatch: (batch: WatchBatch) => void,
    private readonly options: RunsWatcherOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 200;
    this.maxWaitMs = options.maxWaitMs ?? 1000;
  }

  /** Watches exactly these runs folders (absolute paths); existing ones stay as they are. */
  setRoots(dirs: Iterable<string>): void {
    const next = new Set([...dirs].map((d) => path.resolve(d)));
    for (const [dir, w] of this.roots) {
      if (next.has(dir)) continue;
      void w.close();
      this.roots.delete(dir);
    }
    for (const dir of next) {
      if (this.roots.has(dir)) continue;
      const w = new RootWatch(
        dir,
        (p) => this.queue(p),
        (r) => this.queueRoot(r),
        this.options.onError,
      );
      this.roots.set(dir, w);
      w.start();
    }
  }

  /** Resolves when every root's watcher has finished its initial scan (for tests and benchmarks). */
  async ready(): Promise<void> {
    await Promise.all([...this.roots.values()].map((w) => w.ready()));
  }

  /** How each root is watched now: `watching` the folder itself, or `waiting` for it through an ancestor. */
  modes(): Record<string, 'watching' | 'waiting'> {
    return Object.fromEntries([...this.roots].map(([dir, w]) => [dir, w.mode]));
  }

  /** Delivers the pending batch now, if any. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.firstEventAt = 0;
    if (this.disposed || (this.batch.paths.size === 0 && this.batch.roots.size === 0)) return;
    const batch = this.batch;
    this.batch = { paths: new Set(), roots: new Set() };
    this.onBatch(batch);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    clearTimeout(this.timer);
    await Promise.all([...this.roots.values()].map((w) => w.close()));
    this.roots.clear();
  }

  private queue(p: string): void {
    this.batch.paths.add(p);
    this.schedule();
  }

  private queueRoot(root: string): void {
    this.batch.roots.add(root);
    this.schedule();
  }

  private schedule(): void {
    if (this.disposed) return;
    const now = Date.now();
    if (!this.firstEventAt) this.firstEventAt = now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstEventAt + this.maxWaitMs - now));
    this.timer = setTimeout(() => this.flush(), wait);
  }
}

/** One runs folder: watched itself when it exists, else waited for through its nearest existing ancestor. */
class RootWatch {
  mode: 'watching' | 'waiting' = 'waiting';
  private watcher?: FSWatcher;
  private whenReady: Promise<void> = Promise.resolve();
  private closed = false;
  /** Bumped on every restart, so events of a watcher being closed are dropped. */
  private generation = 0;

  constructor(
    readonly root: string,
    private readonly onPath: (p: string) => void,
    private readonly onRoot: (root: string) => void,
    private readonly onError?: (error: Error) => void,
  ) {}

  start(): void {
    if (this.closed) return;
    const generation = ++this.generation;
    const old = this.watcher;
    this.watcher = undefined;
    void old?.close();
    if (isDirectory(this.root)) this.watchRoot(generation);
    else this.waitForRoot(generation);
  }

  ready(): Promise<void> {
    return this.whenReady;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.generation++;
    await this.watcher?.close();
    this.watcher = undefined;
  }

  private watchRoot(generation: number): void {
    this.mode = 'watching';
    const w = watch(this.root, {
      ignoreInitial: true,
      depth: DEPTH,
      ignored: (p: string) => isIgnoredRunPath(this.root, p),
      ignorePermissionErrors: true,
    });
    this.watcher = w;
    this.whenReady = new Promise((resolve) => w.once('ready', () => resolve()));
    w.once('ready', () => {
      // whatever was created between the listing and the watch being in place
      if (generation === this.generation) this.onRoot(this.root);
    });
    w.on('all', (event, p) => {
      if (generation !== this.generation) return;
      // the runs folder itself went (deleted, or its parent was): wait for it to come back
      if (event === 'unlinkDir' && (p === this.root || !isDirectory(this.root))) {
        this.onRoot(this.root);
        this.start();
        return;
      }
      this.onPath(p);
    });
    w.on('error', (err) => {
      if (generation !== this.generation) return;
      this.onError?.(err as Error);
      if (!isDirectory(this.root)) {
        this.onRoot(this.root);
        this.start();
      }
    });
  }

  private waitForRoot(generation: number): void {
    this.mode = 'waiting';
    const ancestor = nearestExistingAncestor(this.root);
    if (!ancestor) return;
    const onTheWay = (p: string) => p === ancestor || this.root === p || this.root.startsWith(p + path.sep);
    const w = watch(ancestor, {
      ignoreInitial: true,
      depth: 0,
      ignored: (p: string) => !onTheWay(p),
      ignorePermissionErrors: true,
    });
    this.watcher = w;
    this.whenReady = new Promise((resolve) => w.once('ready', () => resolve()));
    const recheck = () => {
      if (generation !== this.generation) return;
      // the root (or a folder on the way to it) appeared, or the ancestor went: start over from there
      if (isDirectory(this.root)) {
        this.start();
        this.onRoot(this.root);
      } else if (nearestExistingAncestor(this.root) !== ancestor) {
        this.start();
      }
    };
    w.once('ready', recheck); // it may have appeared while the watcher was starting
    w.on('all', recheck);
    w.on('error', (err) => {
      if (generation !== this.generation) return;
      this.onError?.(err as Error);
      recheck();
    });
  }
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function nearestExistingAncestor(p: string): string | undefined {
  for (let dir = path.dirname(p); ; dir = path.dirname(dir)) {
    if (isDirectory(dir)) return dir;
    if (path.dirname(dir) === dir) return undefined;
  }
}
