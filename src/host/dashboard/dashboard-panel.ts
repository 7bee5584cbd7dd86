/**
 * One dashboard webview panel: one run, or several runs overlaid for comparison.
 *
 * Data flow: each run folder is a RunData (dashboard-data.ts) that reads only what was appended to
 * metrics.jsonl since its last read. A run that this window's RunManager trains or follows is read
 * at once when its worker reports a step (the message says "there is a new line"); any other run
 * that is still running is read once a second; a finished one every few seconds (a resume from
 * the command line would make it run again). The webview never reads files: it asks for a snapshot
 * when its script loads (first show, show after hide, window reload) and gets appends after that.
 */
import * as vscode from 'vscode';
import { chartContent, saveExport } from '../webview/export-file';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  emptyTrainColumns,
  parseDashboardToHost,
  type ActionMessage,
  type DashboardGroupSpec,
  type DashboardMode,
  type DashboardToHost,
  type HostToDashboard,
  type RunSnapshot,
} from '../../protocol/dashboard';
import type { WorkerMessage } from '../../protocol/worker';
import { RunData, hasChanges, type RunChanges } from './dashboard-data';
import { groupCurves } from './dashboard-groups';
import { dashboardHtml } from './dashboard-html';
import type { RunManager } from '../training/run-manager';
import { makeNonce } from '../webview/webview-page';
import { WebviewPanelHost } from '../webview/webview-panel';

const RUNNING_POLL_MS = 1000;
/** Finished runs are looked at every this many ticks. */
const IDLE_EVERY = 5;
/** Worker messages arrive once per logged step; reading once per this many ms is enough. */
const MESSAGE_DEBOUNCE_MS = 50;

export type { DashboardMode };

export interface DashboardDeps {
  extensionUri: vscode.Uri;
  runs: RunManager;
  log: vscode.LogOutputChannel;
}

export function panelKey(mode: DashboardMode, dirs: readonly string[], groups?: readonly DashboardGroupSpec[]): string {
  const partition = groups
    ? `\n${groups
        .map((g) =>
          [...g.dirs]
            .map((d) => path.resolve(d))
            .sort()
            .join('|'),
        )
        .sort()
        .join('\n')}`
    : '';
  return `${mode}\n${[...dirs]
    .map((d) => path.resolve(d))
    .sort()
    .join('\n')}${partition}`;
}

export class DashboardPanel extends WebviewPanelHost<HostToDashboard> {
  readonly runs: RunData[];
  private tick = 0;
  private debounce?: NodeJS.Timeout;
  private readonly urgent = new Set<RunData>();
  private readonly followed = new Map<RunData, boolean>();

  constructor(
    panel: vscode.WebviewPanel,
    readonly mode: DashboardMode,
    runDirs: readonly string[],
    private readonly deps: DashboardDeps,
    /** Mode `groups`: the seed groups whose means and bands are drawn. */
    readonly groups?: readonly DashboardGroupSpec[],
  ) {
    super(panel, deps, 'dashboard');
    this.runs = [...new Set(runDirs.map((d) => path.resolve(d)))].map((dir) => new RunData(dir));
    for (const run of this.runs) this.followed.set(run, this.isFollowed(run));
    panel.title = this.title();
    this.setIcon('dashboard');
    panel.webview.html = dashboardHtml(this.pageUris('dashboard'), makeNonce(), this.title());
    const timer = setInterval(() => this.poll(), RUNNING_POLL_MS);
    this.subscriptions.push(
      deps.runs.onDidReceiveMessage(({ configFile, message }) => this.onWorkerMessage(configFile, message)),
      deps.runs.onDidChange(() => this.updateFollowed()),
      { dispose: () => clearInterval(timer) },
      { dispose: () => clearTimeout(this.debounce) },
    );
  }

  get key(): string {
    return panelKey(
      this.mode,
      this.runs.map((r) => r.dir),
      this.groups,
    );
  }

  private title(): string {
    if (this.mode === 'groups')
      return this.groups?.length === 1
        ? `Group: ${this.groups[0]!.label}`
        : `Compare ${this.groups?.length ?? 0} groups`;
    if (this.mode === 'compare') return `Compare ${this.runs.length} runs`;
    return `Dashboard: ${this.runs[0]?.name ?? 'run'}`;
  }

  /** Snapshots of the panel's runs as the webview gets them. */
  snapshots(): RunSnapshot[] {
    return this.runs.map((run) => run.snapshot(this.followed.get(run) ?? false));
  }

  protected onMessage(raw: unknown): void {
    const parsed = parseDashboardToHost(raw);
    if (!parsed.ok) {
      this.deps.log.warn(`dashboard: ignoring a malformed message from the webview (${parsed.error}): ${preview(raw)}`);
      return;
    }
    const message: DashboardToHost = parsed.value;
    switch (message.type) {
      case 'ready':
        this.ready = true;
        for (const run of this.runs) run.refresh(this.followed.get(run));
        this.post({
          type: 'snapshot',
          mode: this.mode,
          runs: this.snapshots(),
          ...(this.groups ? { groups: this.groupCurves() } : {}),
        });
        return;
      case 'webviewError':
        this.deps.log.error(`dashboard webview: ${message.message}`);
        return;
      case 'action':
        void this.onAction(message);
        return;
      case 'exportChart':
        void saveExport(
          `${message.name}.${message.format}`,
          chartContent(message.format, message.data),
          message.format.toUpperCase(),
          this.deps.log,
        ).catch((err: Error) => {
          void vscode.window.showErrorMessage(`PEFT Lab: ${err.message}`);
        });
        return;
    }
  }

  private async onAction(message: ActionMessage): Promise<void> {
    const run = this.runs.find((r) => r.dir === path.resolve(message.dir));
    if (!run) {
      this.deps.log.warn(`dashboard: ignoring ${message.action} for a run this panel does not show: ${message.dir}`);
      return;
    }
    try {
      switch (message.action) {
        case 'openConfig': {
          const source =
            run.configFile && fs.existsSync(run.configFile) ? run.configFile : path.join(run.dir, 'config.json');
          await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(source));
          return;
        }
        case 'stop':
          if (!run.configFile) throw new Error(`${run.name} names no config file`);
          await vscode.commands.executeCommand('peftLab.stop', vscode.Uri.file(run.configFile));
          return;
        case 'resume':
          // the Runs view's command, which also takes a run folder: the same confirmations as from the tree
          await vscode.commands.executeCommand('peftLab.runs.resume', run.dir);
          return;
        case 'evaluate': {
          const checkpoint = run.bestCheckpoint;
          if (!checkpoint) {
            void vscode.window.showInformationMessage(`PEFT Lab: ${run.name} has no checkpoint to evaluate yet.`);
            return;
          }
          await vscode.commands.executeCommand('peftLab.runs.evaluate', checkpoint);
          return;
        }
        case 'revealRun': {
          const uri = vscode.Uri.file(run.dir);
          const inWorkspace = vscode.workspace.getWorkspaceFolder(uri) !== undefined;
          // under Remote the OS file manager is the local machine's, which cannot show a remote path
          await vscode.commands.executeCommand(
            inWorkspace || vscode.env.remoteName ? 'revealInExplorer' : 'revealFileInOS',
            uri,
          );
          return;
        }
      }
    } catch (err) {
      this.deps.log.error(`dashboard: ${message.action} of ${run.dir} failed: ${(err as Error).message}`);
      void vscode.window.showErrorMessage(`PEFT Lab: ${message.action} failed: ${(err as Error).message}`);
    }
  }

  private onWorkerMessage(configFile: string, message: WorkerMessage): void {
    const file = path.resolve(configFile);
    const dirOfMessage =
      message.type === 'started' || message.type === 'finished' ? path.resolve(message.runDir) : undefined;
    for (const run of this.runs) {
      const mine = dirOfMessage
        ? dirOfMessage === run.dir
        : run.configFile !== undefined && path.resolve(run.configFile) === file && run.state !== 'finished';
      if (mine) this.urgent.add(run);
    }
    if (this.urgent.size && !this.debounce) {
      this.debounce = setTimeout(() => {
        this.debounce = undefined;
        const runs = [...this.urgent];
        this.urgent.clear();
        this.updateFollowed();
        for (const run of runs) this.refresh(run);
      }, MESSAGE_DEBOUNCE_MS);
    }
  }

  /** Whether this window's run manager follows the run (its worker's messages reach us). */
  private isFollowed(run: RunData): boolean {
    if (!run.configFile) return false;
    const view = this.deps.runs.get(run.configFile);
    if (!view || view.phase === 'queued') return false;
    return view.started ? path.resolve(view.started.runDir) === run.dir : run.state === 'running';
  }

  private updateFollowed(): void {
    for (const run of this.runs) {
      const now = this.isFollowed(run);
      if (now === this.followed.get(run)) continue;
      this.followed.set(run, now);
      this.post({ type: 'runUpdate', dir: run.dir, status: run.status(now) });
    }
  }

  private poll(): void {
    this.tick++;
    for (const run of this.runs) {
      const live = run.state === 'running' || run.state === 'unknown';
      if (live || this.tick % IDLE_EVERY === 0) this.refresh(run);
    }
  }

  private refresh(run: RunData): void {
    if (this.disposed) return;
    const changes = run.refresh(this.followed.get(run));
    if (hasChanges(changes)) this.send(run, changes);
    // a group's curves follow its live runs (recomputed whole: groups are a few runs)
    if (this.groups && (changes.train || changes.evals || changes.reset))
      this.post({ type: 'groups', groups: this.groupCurves() });
  }

  /** Every group's bands, from the runs as they are now. */
  groupCurves() {
    const snapshots = this.snapshots();
    return (this.groups ?? []).map((g) => groupCurves(g, snapshots));
  }

  private send(run: RunData, c: RunChanges): void {
    if (c.reset) {
      this.post({ type: 'resetRun', run: run.snapshot(this.followed.get(run) ?? false) });
      return;
    }
    if (c.train || c.evals)
      this.post({ type: 'append', dir: run.dir, train: c.train ?? emptyTrainColumns(), evals: c.evals ?? [] });
    if (c.status || c.placement || c.routing || c.checkpoints || c.config) {
      this.post({
        type: 'runUpdate',
        dir: run.dir,
        status: c.status,
        placement: c.placement,
        routing: c.routing,
        checkpoints: c.checkpoints,
        config: c.config,
        configFile: c.configFile,
      });
    }
  }
}

function preview(value: unknown): string {
  try {
    return JSON.stringify(value).slice(0, 200);
  } catch {
    return String(value).slice(0, 200);
  }
}
