/**
 * The dashboard feature: the `peftLab.openDashboard` and `peftLab.compareRuns` commands, one panel
 * per run (or per set of compared runs; asking again reveals it), and the serializer that brings
 * the panels back after a window reload from the state their webview saved.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DASHBOARD_VIEW_TYPE, parseDashboardState, type DashboardGroupSpec } from '../../protocol/dashboard';
import { DashboardPanel, panelKey, type DashboardDeps, type DashboardMode } from './dashboard-panel';
import { webviewOptions } from '../webview/webview-panel';
import { Disposable, toDisposable } from '../util/dispose';
import { isRunFolder } from '../../core/checkpoint/run-reader';

export class Dashboard extends Disposable {
  private readonly panels = new Map<string, DashboardPanel>();

  constructor(private readonly deps: DashboardDeps) {
    super();
    for (const d of [
      vscode.commands.registerCommand('peftLab.openDashboard', (...args: unknown[]) => this.openCommand(args)),
      vscode.commands.registerCommand('peftLab.compareRuns', (...args: unknown[]) => this.compareCommand(args)),
      // internal (the Experiments table's group buttons): [{ label, dirs }, ...]
      vscode.commands.registerCommand('peftLab.compareGroups', (groups: readonly DashboardGroupSpec[]) =>
        this.compareGroups(groups),
      ),
      vscode.window.registerWebviewPanelSerializer(DASHBOARD_VIEW_TYPE, {
        deserializeWebviewPanel: async (panel, state) => this.revive(panel, state),
      }),
      toDisposable(() => {
        for (const panel of [...this.panels.values()]) panel.dispose();
        this.panels.clear();
      }),
    ])
      this._register(d);
  }

  /** The open panels (for tests and for the sidebar). */
  get openPanels(): readonly DashboardPanel[] {
    return [...this.panels.values()];
  }

  /** Opens (or reveals) the dashboard of one run folder. */
  open(runDir: string): DashboardPanel {
    return this.show('run', [runDir]);
  }

  /** Opens (or reveals) one panel with several runs overlaid; one run opens its own dashboard. */
  compare(runDirs: readonly string[]): DashboardPanel {
    const dirs = [...new Set(runDirs.map((d) => path.resolve(d)))];
    if (dirs.length === 0) throw new Error('no run folders to compare');
    return dirs.length === 1 ? this.open(dirs[0]!) : this.show('compare', dirs);
  }

  /** Opens (or reveals) one panel drawing each seed group as its mean with a band. */
  compareGroups(groups: readonly DashboardGroupSpec[]): DashboardPanel {
    const specs = groups
      .map((g) => ({ label: g.label, dirs: [...new Set(g.dirs.map((d) => path.resolve(d)))].filter(isRunFolder) }))
      .filter((g) => g.dirs.length);
    if (specs.length === 0) throw new Error('no run folders in the groups');
    return this.show(
      'groups',
      specs.flatMap((g) => g.dirs),
      specs,
    );
  }

  private show(mode: DashboardMode, dirs: readonly string[], groups?: readonly DashboardGroupSpec[]): DashboardPanel {
    const existing = this.panels.get(panelKey(mode, dirs, groups));
    if (existing) {
      existing.reveal();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(
      DASHBOARD_VIEW_TYPE,
      'Dashboard',
      vscode.ViewColumn.Active,
      webviewOptions(this.deps.extensionUri),
    );
    return this.track(new DashboardPanel(panel, mode, dirs, this.deps, groups));
  }

  private track(panel: DashboardPanel): DashboardPanel {
    this.panels.set(panel.key, panel);
    panel.onDidDispose(() => {
      if (this.panels.get(panel.key) === panel) this.panels.delete(panel.key);
    });
    return panel;
  }

  private async revive(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    const parsed = parseDashboardState(state);
    if (!parsed.ok) {
      this.deps.log.warn(`dashboard: cannot restore a panel after the reload (${parsed.error}); closing it`);
      panel.dispose();
      return;
    }
    const { mode, runDirs, groups } = parsed.value;
    const key = panelKey(mode, runDirs, groups);
    if (this.panels.has(key)) {
      panel.dispose(); // the same runs are already shown
      return;
    }
    this.track(new DashboardPanel(panel, mode, runDirs, this.deps, groups));
  }

  private async openCommand(args: unknown[]): Promise<DashboardPanel | undefined> {
    const dirs = runDirsOf(args);
    const dir = dirs[0] ?? (await this.pickRuns(false))[0];
    if (!dir) return undefined;
    if (!isRunFolder(dir)) {
      void vscode.window.showWarningMessage(
        `PEFT Lab: ${dir} is not a run folder (no config.json, status.json or placement.json).`,
      );
      return undefined;
    }
    return this.open(dir);
  }

  private async compareCommand(args: unknown[]): Promise<DashboardPanel | undefined> {
    let dirs = runDirsOf(args);
    if (dirs.length === 0) dirs = await this.pickRuns(true);
    dirs = dirs.filter((d) => isRunFolder(d));
    if (dirs.length === 0) return undefined;
    return this.compare(dirs);
  }

  /** Lets the user choose among the run folders of the workspace (newest first). */
  private async pickRuns(many: boolean): Promise<string[]> {
    const files = await vscode.workspace.findFiles('**/status.json', '**/node_modules/**', 500);
    const runs = files
      .map((f) => path.dirname(f.fsPath))
      .filter(isRunFolder)
      .map((dir) => ({ dir, mtime: safeMtime(path.join(dir, 'status.json')) }))
      .sort((a, b) => b.mtime - a.mtime);
    if (runs.length === 0) {
      void vscode.window.showInformationMessage(
        'PEFT Lab: there are no runs in this workspace yet. Train a *.peft.json config first.',
      );
      return [];
    }
    const items = runs.map((r) => ({
      label: path.basename(r.dir),
      description: vscode.workspace.asRelativePath(path.dirname(r.dir)),
      dir: r.dir,
    }));
    if (many) {
      const picked = await vscode.window.showQuickPick(items, {
        canPickMany: true,
        title: 'PEFT Lab: runs to compare',
      });
      return picked?.map((p) => p.dir) ?? [];
    }
    const picked = await vscode.window.showQuickPick(items, { title: 'PEFT Lab: open the dashboard of a run' });
    return picked ? [picked.dir] : [];
  }
}

/**
 * Run folders from a command's arguments: paths, Uris, tree items carrying `dir`/`runDir`/
 * `resourceUri`, and arrays of these (a tree's multi-selection arrives as (clicked, selected[])).
 */
export function runDirsOf(args: readonly unknown[]): string[] {
  const out: string[] = [];
  const visit = (value: unknown): void => {
    if (typeof value === 'string' && value) out.push(path.resolve(value));
    else if (value instanceof vscode.Uri) out.push(value.fsPath);
    else if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') {
      const o = value as { dir?: unknown; runDir?: unknown; resourceUri?: unknown; fsPath?: unknown };
      if (typeof o.runDir === 'string') out.push(path.resolve(o.runDir));
      else if (typeof o.dir === 'string') out.push(path.resolve(o.dir));
      else if (o.resourceUri instanceof vscode.Uri) out.push(o.resourceUri.fsPath);
    }
  };
  args.forEach(visit);
  return [...new Set(out)];
}

function safeMtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}
