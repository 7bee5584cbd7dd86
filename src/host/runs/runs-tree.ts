/**
 * The Runs sidebar (view `peftLab.runs` in the PEFT Lab activity-bar container): config → runs →
 * checkpoints, kept live by a chokidar watcher on the workspace's runs folders.
 *
 * Which folders: each workspace config's resolved `output.runsDir`, or `peftLab.runsDirectory`
 * where it is set; looked up again when a config, the setting or the workspace folders change.
 * The model (runs-model.ts) and its presentation (runs-present.ts) are plain data; this file only
 * wires them to VS Code. The actions (runs-actions.ts) depend on this file, not the other way round:
 * the composition root registers them.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { CONFIG_GLOB } from '../editor/config-diagnostics';
import { runsDirOf } from './run-index';
import type { RunManager, RunOutcome } from '../training/run-manager';
import { RunsModel } from './runs-model';
import { STATE_FILTERS, type RunGroup, type RunsDelta, type RunsViewOptions, type StateFilter } from './runs-types';
import {
  checkpointItem,
  checkpointTooltip,
  configItem,
  dataSizesOf,
  runItem,
  runTooltip,
  type ItemData,
} from './runs-present';
import { RunsWatcher } from './runs-watcher';
import { readSettings } from '../util/settings';
import { bestOfFinishedSweeps, markBestOfSweep } from '../sweeps/sweep-best';
import { Disposable, toDisposable } from '../util/dispose';

export const RUNS_VIEW_ID = 'peftLab.runs';
const VIEW_STATE_KEY = 'peftLab.runsView';
const LIVENESS_CHECK_MS = 3000;
const ROOTS_DEBOUNCE_MS = 300;

/** A tree element: plain data, one object per key, so a refresh of one element reaches VS Code. */
export interface RunsNode {
  readonly kind: 'config' | 'run' | 'checkpoint';
  /** Config file ('' for the unknown-config group), run folder or checkpoint folder. */
  readonly key: string;
}

export interface RunsSidebarHooks {
  /** Shows progress and the outcome of a run the sidebar started (Resume). */
  onRunStarted(configFile: string, done: Promise<RunOutcome>): void;
}

export class RunsTreeProvider implements vscode.TreeDataProvider<RunsNode>, vscode.Disposable {
  private readonly nodes = new Map<string, RunsNode>();
  private readonly changed = new vscode.EventEmitter<RunsNode | RunsNode[] | undefined>();
  private groupsCache?: Map<string, RunGroup>;
  private bestOfSweepCache?: Set<string>;
  readonly onDidChangeTreeData = this.changed.event;

  constructor(
    private readonly model: RunsModel,
    private readonly view: () => RunsViewOptions,
    private readonly relative: (file: string) => string,
  ) {}

  node(kind: RunsNode['kind'], key: string): RunsNode {
    const id = `${kind}:${key}`;
    let node = this.nodes.get(id);
    if (!node) this.nodes.set(id, (node = { kind, key }));
    return node;
  }

  /** The config groups as shown (filtered and sorted), computed once per refresh. */
  groups(): Map<string, RunGroup> {
    this.groupsCache ??= new Map(this.model.groups(this.view()).map((g) => [g.configFile, g]));
    return this.groupsCache;
  }

  /** Runs that are the best point of a finished sweep (sweep-best.ts), computed once per refresh. */
  bestOfSweep(): Set<string> {
    this.bestOfSweepCache ??= bestOfFinishedSweeps(this.model.runs());
    return this.bestOfSweepCache;
  }

  getChildren(element?: RunsNode): RunsNode[] {
    if (!element) return [...this.groups().keys()].map((file) => this.node('config', file));
    if (element.kind === 'config')
      return (this.groups().get(element.key)?.runs ?? []).map((r) => this.node('run', r.dir));
    if (element.kind === 'run') {
      const run = this.model.run(element.key);
      return run ? [...run.checkpoints].reverse().map((c) => this.node('checkpoint', c.dir)) : [];
    }
    return [];
  }

  getParent(element: RunsNode): RunsNode | undefined {
    if (element.kind === 'checkpoint') return this.node('run', path.dirname(path.dirname(element.key)));
    if (element.kind === 'run') return this.node('config', this.model.run(element.key)?.configFile ?? '');
    return undefined;
  }

  /** The plain data of an element (what tests look at), undefined when it is gone. */
  itemData(element: RunsNode): ItemData | undefined {
    if (element.kind === 'config') {
      const group = this.groups().get(element.key);
      return group ? configItem(group, this.relative) : undefined;
    }
    if (element.kind === 'run') {
      const run = this.model.run(element.key);
      if (!run) return undefined;
      return this.bestOfSweep().has(run.dir) ? markBestOfSweep(runItem(run)) : runItem(run);
    }
    const c = this.model.checkpoint(element.key);
    return c ? checkpointItem(c, this.model.run(c.runDir)) : undefined;
  }

  getTreeItem(element: RunsNode): vscode.TreeItem {
    const data = this.itemData(element);
    if (!data) {
      const gone = new vscode.TreeItem(
        path.basename(element.key) || 'Unknown config',
        vscode.TreeItemCollapsibleState.None,
      );
      gone.description = 'removed';
      return gone;
    }
    const item = new vscode.TreeItem(data.label, collapsibleState(data.collapsible));
    item.id = data.id;
    item.description = data.description;
    item.iconPath = new vscode.ThemeIcon(
      data.icon.id,
      data.icon.color ? new vscode.ThemeColor(data.icon.color) : undefined,
    );
    item.contextValue = data.contextValue;
    if (element.kind === 'config' && data.path) item.tooltip = data.path;
    return item;
  }

  /** Tooltips are built when hovered: they read placement.json and count the data files. */
  resolveTreeItem(item: vscode.TreeItem, element: RunsNode): vscode.TreeItem {
    const text = this.tooltip(element);
    if (text) item.tooltip = new vscode.MarkdownString(text, true);
    return item;
  }

  tooltip(element: RunsNode): string | undefined {
    if (element.kind === 'run') {
      const run = this.model.run(element.key);
      return run
        ? runTooltip(run, { placement: this.model.placement(run.dir), dataSizes: dataSizesOf(this.model, run) })
        : undefined;
    }
    if (element.kind === 'checkpoint') {
      const c = this.model.checkpoint(element.key);
      return c ? checkpointTooltip(c, this.model.run(c.runDir)) : undefined;
    }
    return undefined;
  }

  /**
   * Tells VS Code what changed: the whole tree when runs appeared, went or changed group (or when
   * sorting by metric, where any change can reorder), else just the runs that changed.
   */
  refresh(delta?: RunsDelta): void {
    this.groupsCache = undefined;
    const bestBefore = this.bestOfSweepCache;
    this.bestOfSweepCache = undefined;
    // the last point of a sweep ending marks another run, which the delta does not name
    const bestChanged = bestBefore !== undefined && !sameSet(bestBefore, this.bestOfSweep());
    if (!delta || delta.structure || bestChanged || this.view().sort === 'metric' || this.view().states?.length) {
      this.changed.fire(undefined);
      return;
    }
    const nodes: RunsNode[] = [];
    for (const dir of delta.runs) {
      nodes.push(this.node('run', dir));
      const run = this.model.run(dir);
      // the group's description counts running runs
      if (run) nodes.push(this.node('config', run.configFile ?? ''));
    }
    if (nodes.length) this.changed.fire([...new Set(nodes)]);
  }

  dispose(): void {
    this.changed.dispose();
  }
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/** Read when an item is built, not at load: the module must load before the vscode API is usable (packaging smoke test). */
function collapsibleState(kind: 'none' | 'collapsed' | 'expanded'): vscode.TreeItemCollapsibleState {
  const states = vscode.TreeItemCollapsibleState;
  return kind === 'none' ? states.None : kind === 'collapsed' ? states.Collapsed : states.Expanded;
}

/** The sidebar feature: model, watcher, tree view and its title-bar state. */
export class RunsSidebar extends Disposable {
  readonly model = new RunsModel();
  readonly provider: RunsTreeProvider;
  readonly view: vscode.TreeView<RunsNode>;
  private readonly watcher: RunsWatcher;
  private readonly changed = new vscode.EventEmitter<RunsDelta>();
  /** Fires after the model changed (the CodeLens listens through RunIndex). */
  readonly onDidChange = this.changed.event;
  private viewState: RunsViewOptions;
  /** Runs folders asked for outside discovery (a config outside the workspace). */
  private readonly extraRoots = new Set<string>();
  /** The last runs folder each config resolved to, kept while the config does not parse. */
  private readonly lastRunsDir = new Map<string, string>();
  private rootsTimer?: NodeJS.Timeout;
  private discovery: Promise<void>;

  constructor(
    private readonly context: vscode.ExtensionContext,
    readonly runs: RunManager,
    readonly hooks: RunsSidebarHooks,
    readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this.viewState = sanitizeView(context.workspaceState.get<RunsViewOptions>(VIEW_STATE_KEY));
    this.provider = new RunsTreeProvider(
      this.model,
      () => this.viewState,
      (f) => vscode.workspace.asRelativePath(f),
    );
    this.view = vscode.window.createTreeView(RUNS_VIEW_ID, {
      treeDataProvider: this.provider,
      canSelectMany: true,
      showCollapseAll: true,
    });
    this.watcher = new RunsWatcher((batch) => this.publish(this.model.applyChanges([...batch.paths, ...batch.roots])), {
      onError: (err) => this.log.warn(`runs watcher: ${err.message}`),
    });
    const configWatcher = vscode.workspace.createFileSystemWatcher(CONFIG_GLOB);
    const rediscover = () => this.scheduleDiscovery();
    const liveness = setInterval(() => this.publish(this.model.recheckLiveness()), LIVENESS_CHECK_MS);
    for (const d of [
      toDisposable(() => void this.watcher.dispose()),
      this.view,
      this.provider,
      this.changed,
      configWatcher,
      configWatcher.onDidCreate(rediscover),
      configWatcher.onDidChange(rediscover),
      configWatcher.onDidDelete(rediscover),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('peftLab.runsDirectory')) rediscover();
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(rediscover),
      runs.onDidChange((run) => this.onRunChange(run.configFile, run.started?.runDir)),
      toDisposable(() => clearInterval(liveness)),
      toDisposable(() => clearTimeout(this.rootsTimer)),
    ])
      this._register(d);
    this.applyViewState();
    this.discovery = this.discoverRoots();
  }

  /** Resolves once the runs folders are known and read (and again after each rediscovery). */
  async whenReady(): Promise<void> {
    let current: Promise<void>;
    do {
      current = this.discovery;
      await current;
    } while (current !== this.discovery);
  }

  /** Resolves when the file watchers have finished setting up (tests wait for this before touching disk). */
  async whenWatching(): Promise<void> {
    await this.whenReady();
    await this.watcher.ready();
  }

  /** How each runs folder is watched (`watching`, or `waiting` for it to be created). */
  watchModes(): Record<string, 'watching' | 'waiting'> {
    return this.watcher.modes();
  }

  /** Also watches this runs folder (for a config outside the workspace that the CodeLens asks about). */
  ensureRunsDir(dir: string): void {
    const resolved = path.resolve(dir);
    if (this.model.rootDirs().includes(resolved)) return;
    this.extraRoots.add(resolved);
    const roots = [...this.model.rootDirs(), resolved];
    this.publish(this.model.setRoots(roots));
    this.watcher.setRoots(roots);
  }

  /** Reads every runs folder again now (synchronously). */
  rescanNow(): void {
    this.publish(this.model.rescan(), true);
  }

  /** Applies changes the watcher has not delivered yet (tests and actions that just wrote to disk). */
  flush(): void {
    this.watcher.flush();
  }

  get viewOptions(): RunsViewOptions {
    return this.viewState;
  }

  /** Changes the filter or sort; persisted per workspace. */
  async setView(change: Partial<RunsViewOptions>): Promise<void> {
    this.viewState = sanitizeView({ ...this.viewState, ...change });
    await this.context.workspaceState.update(VIEW_STATE_KEY, this.viewState);
    this.applyViewState();
    this.provider.refresh();
  }

  /** Forgets a run folder that was just deleted, and updates the tree at once. */
  forget(dirs: string[]): void {
    this.publish(this.model.applyChanges(dirs));
  }

  private applyViewState(): void {
    const v = this.viewState;
    const filtered = Boolean(v.states?.length || v.configs?.length);
    void vscode.commands.executeCommand('setContext', 'peftLab.runsSort', v.sort);
    void vscode.commands.executeCommand('setContext', 'peftLab.runsFiltered', filtered);
    const parts: string[] = [];
    if (v.states?.length) parts.push(`state: ${v.states.join(', ')}`);
    if (v.configs?.length) parts.push(`config: ${v.configs.map((c) => (c ? path.basename(c) : 'unknown')).join(', ')}`);
    this.view.message = filtered ? `Filtered by ${parts.join('; ')}.` : undefined;
    this.view.description = v.sort === 'metric' ? 'by metric' : undefined;
  }

  private publish(delta: RunsDelta, force = false): void {
    if (this.isDisposed || (!force && !delta.structure && delta.runs.size === 0)) return;
    this.provider.refresh(force ? undefined : delta);
    const running = this.model.runs().filter((r) => r.state === 'running' && !r.interrupted && !r.pending).length;
    this.view.badge = running
      ? { value: running, tooltip: `${running} run${running === 1 ? '' : 's'} training` }
      : undefined;
    this.changed.fire(delta);
  }

  private onRunChange(configFile: string, runDir: string | undefined): void {
    if (!runDir) return;
    // a run this window drives: show its start and end at once, without waiting for the watcher
    const active = this.runs.get(configFile);
    const known = this.model.run(runDir);
    if (!known || !active) {
      if (!this.model.rootDirs().some((r) => r === path.dirname(path.resolve(runDir))))
        this.ensureRunsDir(path.dirname(runDir));
      this.publish(this.model.refreshRun(runDir));
    }
  }

  private scheduleDiscovery(): void {
    clearTimeout(this.rootsTimer);
    this.rootsTimer = setTimeout(() => (this.discovery = this.discoverRoots()), ROOTS_DEBOUNCE_MS);
  }

  private async discoverRoots(): Promise<void> {
    try {
      const files = await vscode.workspace.findFiles(CONFIG_GLOB, '**/node_modules/**');
      if (this.isDisposed) return;
      const configs = files.filter((f) => f.scheme === 'file').map((f) => f.fsPath);
      const roots = new Set(this.extraRoots);
      for (const file of configs) {
        const dir = runsDirOf(file) ?? this.lastRunsDir.get(file);
        if (!dir) continue;
        this.lastRunsDir.set(file, dir);
        roots.add(path.resolve(dir));
      }
      for (const folder of vscode.workspace.workspaceFolders ?? []) {
        const setting = readSettings(folder.uri).runsDirectory;
        if (setting) roots.add(path.resolve(folder.uri.fsPath, setting));
      }
      const knownChanged = this.model.setKnownConfigs(configs);
      const delta = this.model.setRoots(roots);
      this.watcher.setRoots(roots);
      if (knownChanged) delta.structure = true;
      this.publish(delta);
    } catch (err) {
      this.log.error(`Runs sidebar: cannot find the runs folders: ${(err as Error).message}`);
    }
  }
}

function sanitizeView(value: Partial<RunsViewOptions> | undefined): RunsViewOptions {
  const sort = value?.sort === 'metric' ? 'metric' : 'date';
  const states = Array.isArray(value?.states)
    ? value.states.filter((s): s is StateFilter => STATE_FILTERS.includes(s))
    : [];
  const configs = Array.isArray(value?.configs) ? value.configs.filter((c) => typeof c === 'string') : [];
  return { sort, states, configs };
}
