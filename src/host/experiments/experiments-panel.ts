/**
 * The Experiments table: one webview panel for the workspace, one row per run, from the Runs
 * sidebar's live model (so the table, the tree and the CodeLens never disagree and the run folders
 * are read in one place). A model change sends only the rows that changed; while the tab is hidden
 * nothing is sent (the webview is discarded and asks for every row again when shown).
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  EXPERIMENTS_VIEW_TYPE,
  type ExportChartMessage,
  type ExportTableMessage,
  parseExperimentsToHost,
  type AnnotateMessage,
  type ExperimentRow,
  type ExperimentsToHost,
  type HostToExperiments,
} from '../../protocol/experiments';
import { annotateRun, type AnnotatedRuns } from '../runs/annotation-commands';
import { experimentRow } from './experiments-rows';
import { chartContent, saveExport } from '../webview/export-file';
import { analyze, diffMessage, exportTable, writeTable, type AnalysisSource } from './experiments-analysis';
import { experimentsHtml } from './experiments-html';
import type { RunsDelta } from '../runs/runs-types';
import { makeNonce } from '../webview/webview-page';
import { WebviewPanelHost, webviewOptions } from '../webview/webview-panel';
import { Disposable, toDisposable } from '../util/dispose';

/** Changes arrive in watcher batches (at most one a second per busy run); this gathers a burst into one message. */
const SEND_DEBOUNCE_MS = 100;
/** A running run's duration grows without any file changing: its row is sent again this often. */
const RUNNING_TICK_MS = 5000;

export interface ExperimentsDeps {
  extensionUri: vscode.Uri;
  runs: AnnotatedRuns;
  log: vscode.LogOutputChannel;
}

export class ExperimentsPanel extends WebviewPanelHost<HostToExperiments> {
  private readonly changed = new Set<string>();
  private timer?: NodeJS.Timeout;
  /** A diff asked for from the sidebar before the webview was ready: sent with the rows. */
  private pendingDiff?: string[];

  constructor(
    panel: vscode.WebviewPanel,
    private readonly deps: ExperimentsDeps,
  ) {
    super(panel, deps, 'experiments');
    panel.title = 'Experiments';
    this.setIcon('experiments');
    panel.webview.html = experimentsHtml(this.pageUris('experiments'), makeNonce());
    const ticker = setInterval(() => this.tickRunning(), RUNNING_TICK_MS);
    this.subscriptions.push(
      deps.runs.onDidChange((delta) => this.queue(delta)),
      { dispose: () => clearInterval(ticker) },
      { dispose: () => clearTimeout(this.timer) },
    );
  }

  /** Every run's row, newest first (what the webview gets when it is ready). */
  rows(): ExperimentRow[] {
    const model = this.deps.runs.model;
    return model
      .runs()
      .filter((r) => !r.pending)
      .sort((a, b) => b.started - a.started)
      .map((r) => experimentRow(r, model.placement(r.dir).value));
  }

  protected onMessage(raw: unknown): void {
    const parsed = parseExperimentsToHost(raw);
    if (!parsed.ok) {
      this.deps.log.warn(`experiments: ignoring a malformed message from the webview (${parsed.error})`);
      return;
    }
    void this.handle(parsed.value);
  }

  private async handle(message: ExperimentsToHost): Promise<void> {
    try {
      switch (message.type) {
        case 'ready':
          this.ready = true;
          this.changed.clear();
          this.post({ type: 'rows', rows: this.rows() });
          if (this.pendingDiff) this.showDiff(this.pendingDiff);
          return;
        case 'analyze':
          this.post(analyze(this.source(message.dirs), message));
          return;
        case 'diff':
          this.showDiff(message.dirs);
          return;
        case 'exportTable':
          await this.exportTable(message);
          return;
        case 'exportChart':
          await this.exportChart(message);
          return;
        case 'openDashboard': {
          // one run opens its own dashboard, several are overlaid in one (Dashboard.compare)
          const dirs = message.dirs.filter((d) => this.deps.runs.model.run(d));
          const groups = message.groups
            ?.map((g) => ({ label: g.label, dirs: g.dirs.filter((d) => this.deps.runs.model.run(d)) }))
            .filter((g) => g.dirs.length);
          if (groups?.length) await vscode.commands.executeCommand('peftLab.compareGroups', groups);
          else if (dirs.length) await vscode.commands.executeCommand('peftLab.compareRuns', dirs);
          return;
        }
        case 'annotate':
          this.annotate(message);
          return;
        case 'openConfig':
          await this.openConfig(message.dir);
          return;
        case 'webviewError':
          this.deps.log.error(`experiments webview: ${message.message}`);
          return;
      }
    } catch (err) {
      this.deps.log.error(`experiments: ${message.type} failed: ${(err as Error).message}`);
      void vscode.window.showErrorMessage(`PEFT Lab: ${(err as Error).message}`);
    }
  }

  /** The rows of these run folders, in the order given (unknown ones skipped). */
  private source(dirs: readonly string[]): AnalysisSource {
    const model = this.deps.runs.model;
    const rows = dirs
      .map((d) => model.run(d))
      .filter((r) => r && !r.pending)
      .map((r) => experimentRow(r!, model.placement(r!.dir).value));
    return { rows, run: (dir) => model.run(dir) };
  }

  /** Shows the differences between two or more runs (from the table's Diff button or the sidebar). */
  showDiff(dirs: readonly string[]): void {
    const rows = this.source(dirs).rows;
    if (rows.length < 2) return;
    if (!this.ready) {
      this.pendingDiff = [...dirs];
      return;
    }
    this.pendingDiff = undefined;
    this.post(diffMessage(rows));
  }

  private async exportTable(message: ExportTableMessage): Promise<void> {
    const table = exportTable(this.source(message.dirs), message);
    const extension = { csv: 'csv', markdown: 'md', latex: 'tex' }[message.format];
    await this.save(
      `${message.grouped ? 'experiment-groups' : 'experiments'}.${extension}`,
      writeTable(table, message.format),
      message.format === 'latex' ? 'LaTeX' : message.format === 'markdown' ? 'Markdown' : 'CSV',
    );
  }

  private async exportChart(message: ExportChartMessage): Promise<void> {
    await this.save(
      `${message.name}.${message.format}`,
      chartContent(message.format, message.data),
      message.format.toUpperCase(),
    );
  }

  private async save(fileName: string, content: string | Uint8Array, kind: string): Promise<void> {
    await saveExport(fileName, content, kind, this.deps.log);
  }

  private annotate(message: AnnotateMessage): void {
    try {
      annotateRun(this.deps.runs, message.dir, { name: message.name, starred: message.starred, note: message.note });
    } catch (err) {
      // the webview showed the change already: send the row as it really is
      this.changed.add(path.resolve(message.dir));
      this.scheduleSend();
      throw err;
    }
  }

  private async openConfig(dir: string): Promise<void> {
    const run = this.deps.runs.model.run(dir);
    if (!run) return;
    const file = run.configFile && fs.existsSync(run.configFile) ? run.configFile : path.join(run.dir, 'config.json');
    await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: true });
  }

  private queue(delta: RunsDelta): void {
    for (const dir of delta.runs) this.changed.add(dir);
    if (delta.structure || delta.runs.size) this.scheduleSend();
  }

  private tickRunning(): void {
    for (const r of this.deps.runs.model.runs()) if (r.state === 'running' && !r.interrupted) this.changed.add(r.dir);
    if (this.changed.size) this.scheduleSend();
  }

  private scheduleSend(): void {
    if (this.timer || this.disposed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sendChanged();
    }, SEND_DEBOUNCE_MS);
  }

  private sendChanged(): void {
    // while hidden nothing is sent: the next 'ready' brings every row
    if (!this.ready || !this.changed.size) return;
    const model = this.deps.runs.model;
    const rows: ExperimentRow[] = [];
    const removed: string[] = [];
    for (const dir of this.changed) {
      const run = model.run(dir);
      if (run && !run.pending) rows.push(experimentRow(run, model.placement(run.dir).value));
      else removed.push(dir);
    }
    this.changed.clear();
    this.post({ type: 'rowsChanged', rows, removed });
  }
}

/** The `peftLab.experiments.open` command, and the serializer that brings the tab back after a window reload. */
export class Experiments extends Disposable {
  private current?: ExperimentsPanel;

  constructor(private readonly deps: ExperimentsDeps) {
    super();
    for (const d of [
      vscode.commands.registerCommand('peftLab.experiments.open', () => this.open()),
      // from the Runs view with two or more runs selected, or with run folders (tests, other commands)
      vscode.commands.registerCommand('peftLab.runs.diff', (node?: unknown, selection?: readonly unknown[]) =>
        this.diff(node, selection),
      ),
      vscode.window.registerWebviewPanelSerializer(EXPERIMENTS_VIEW_TYPE, {
        // the webview keeps its own state (sort, filters, columns) and validates it when it loads
        deserializeWebviewPanel: async (panel) => {
          if (this.current) panel.dispose();
          else this.track(new ExperimentsPanel(panel, this.deps));
        },
      }),
      toDisposable(() => this.current?.dispose()),
    ])
      this._register(d);
  }

  /** The open table (for tests). */
  get panel(): ExperimentsPanel | undefined {
    return this.current;
  }

  /** Opens the table, or reveals it. */
  open(): ExperimentsPanel {
    if (this.current) {
      this.current.reveal();
      return this.current;
    }
    const panel = vscode.window.createWebviewPanel(
      EXPERIMENTS_VIEW_TYPE,
      'Experiments',
      vscode.ViewColumn.Active,
      webviewOptions(this.deps.extensionUri),
    );
    return this.track(new ExperimentsPanel(panel, this.deps));
  }

  private diff(node?: unknown, selection?: readonly unknown[]): void {
    const dirOf = (x: unknown): string | undefined => (typeof x === 'string' ? x : dirOfNode(x));
    const picked = Array.isArray(node) ? node : selection && selection.length > 1 ? selection : [node];
    const dirs = [
      ...new Set(
        picked.map(dirOf).filter((d): d is string => d !== undefined && this.deps.runs.model.run(d) !== undefined),
      ),
    ];
    if (dirs.length < 2) {
      void vscode.window.showInformationMessage(
        'PEFT Lab: select two or more runs (Ctrl/Cmd+click) to see their differences.',
      );
      return;
    }
    this.open().showDiff(dirs);
  }

  private track(panel: ExperimentsPanel): ExperimentsPanel {
    this.current = panel;
    panel.onDidDispose(() => {
      if (this.current === panel) this.current = undefined;
    });
    return panel;
  }
}

/** A Runs view node's run folder (run nodes carry it as their key). */
function dirOfNode(node: unknown): string | undefined {
  const n = node as { kind?: unknown; key?: unknown } | undefined;
  return n && n.kind === 'run' && typeof n.key === 'string' ? n.key : undefined;
}
