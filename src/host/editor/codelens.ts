/**
 * Lenses above a config's top-level object: Train (or why it cannot train yet), Stop while it
 * trains, Sweep for a config with a `sweep` section, and Open dashboard of the latest run once
 * there is one.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { hasSweepSection } from '../../core/config/sweep';
import type { ConfigIssue } from '../../core/config/load';
import type { ConfigDiagnostics } from './config-diagnostics';
import { isConfigDocument } from './config-diagnostics';
import type { RunManager } from '../training/run-manager';
import type { RunIndex } from '../runs/run-index';
import { Disposable } from '../util/dispose';

export class TrainCodeLensProvider extends Disposable implements vscode.CodeLensProvider {
  private readonly changed = this._register(new vscode.EventEmitter<void>());
  readonly onDidChangeCodeLenses = this.changed.event;

  constructor(
    private readonly diagnostics: ConfigDiagnostics,
    private readonly runs: RunManager,
    private readonly index: RunIndex,
  ) {
    super();
    const refresh = () => this.changed.fire();
    this._register(diagnostics.onDidChange(refresh));
    this._register(runs.onDidChange(refresh));
    this._register(index.onDidChange(refresh));
    this._register(vscode.workspace.onDidGrantWorkspaceTrust(refresh));
  }

  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    if (!isConfigDocument(doc)) return [];
    const range = topLevelObjectRange(doc);
    return [this.trainLens(doc, range), ...this.sweepLenses(doc, range), ...this.runLenses(doc, range)];
  }

  private trainLens(doc: vscode.TextDocument, range: vscode.Range): vscode.CodeLens {
    const run = this.runs.get(doc.fileName);
    if (run) {
      const what =
        run.phase === 'queued'
          ? 'Queued'
          : run.phase === 'stopping'
            ? 'Stopping…'
            : progressText(run.progress?.step, run.progress?.totalSteps);
      return new vscode.CodeLens(range, {
        title: `$(debug-stop) Stop (${what})`,
        command: 'peftLab.stop',
        arguments: [doc.uri],
      });
    }
    const blocker = this.trainBlocker(doc);
    if (blocker)
      return new vscode.CodeLens(range, {
        title: `$(circle-slash) Train: ${blocker}`,
        command: 'peftLab.explainTrainBlocked',
        arguments: [doc.uri, blocker],
      });
    return new vscode.CodeLens(range, { title: '$(play) Train', command: 'peftLab.train', arguments: [doc.uri] });
  }

  /** Sweep (or why it cannot run), or while its points run how many are running and queued. */
  private sweepLenses(doc: vscode.TextDocument, range: vscode.Range): vscode.CodeLens[] {
    if (!hasSweepSection(doc.getText())) return [];
    const file = path.resolve(doc.fileName);
    const points = this.runs.active().filter((r) => r.point && path.resolve(r.configFile) === file);
    if (points.length) {
      const queued = points.filter((r) => r.phase === 'queued').length;
      return [
        new vscode.CodeLens(range, {
          title: `$(list-tree) Sweep: ${points.length - queued} running, ${queued} queued`,
          command: 'peftLab.queue.focus',
        }),
      ];
    }
    const blocker = this.sweepBlocker(doc);
    if (blocker)
      return [
        new vscode.CodeLens(range, {
          title: `$(circle-slash) Sweep: ${blocker}`,
          command: 'peftLab.explainTrainBlocked',
          arguments: [doc.uri, blocker],
        }),
      ];
    return [
      new vscode.CodeLens(range, { title: '$(list-tree) Sweep', command: 'peftLab.sweep', arguments: [doc.uri] }),
    ];
  }

  private runLenses(doc: vscode.TextDocument, range: vscode.Range): vscode.CodeLens[] {
    const latest = this.index.latestRun(doc.fileName);
    if (!latest) return [];
    const count = this.index.runsOf(doc.fileName).length;
    // "Open dashboard" of the latest run; the count and state stay in the title
    return [
      new vscode.CodeLens(range, {
        title: `$(graph) Open dashboard (${count} run${count === 1 ? '' : 's'}: latest ${latest.state})`,
        command: 'peftLab.openDashboard',
        arguments: [latest.dir],
      }),
    ];
  }

  /** Why Train is not offered, or undefined when it is. Train ignores the sweep, so a bad sweep point does not block it. */
  trainBlocker(doc: vscode.TextDocument): string | undefined {
    return blocker(this.diagnostics.errorsOf(doc).filter((issue) => !isSweepPointIssue(issue)));
  }

  /** Why Sweep is not offered, or undefined when it is. */
  sweepBlocker(doc: vscode.TextDocument): string | undefined {
    return blocker(this.diagnostics.errorsOf(doc));
  }
}

function blocker(errors: ConfigIssue[]): string | undefined {
  if (!vscode.workspace.isTrusted) return 'disabled in an untrusted workspace';
  if (errors.length)
    return `fix ${errors.length} problem${errors.length === 1 ? '' : 's'} first (${errors[0]!.message})`;
  return undefined;
}

/** A problem of a sweep's points (core/config/sweep.ts); the sweep section's schema problems still block Train, which must parse it. */
function isSweepPointIssue(issue: ConfigIssue): boolean {
  return issue.source === 'semantic' && (issue.path === '/sweep' || issue.path.startsWith('/sweep/'));
}

function progressText(step?: number, total?: number): string {
  return step !== undefined && total ? `step ${step}/${total}` : 'starting';
}

/** The line of the first `{`, where the lenses sit. */
function topLevelObjectRange(doc: vscode.TextDocument): vscode.Range {
  const offset = Math.max(0, doc.getText().indexOf('{'));
  const position = doc.positionAt(offset);
  return new vscode.Range(position, position);
}
