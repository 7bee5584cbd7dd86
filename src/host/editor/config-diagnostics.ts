/**
 * Semantic checks of `*.peft.json` files as diagnostics on the exact field: missing data files,
 * a model folder without weights, a bottleneck not smaller than the hidden size, ... Schema
 * violations are reported by VS Code's JSON support through `jsonValidation` (same schema file),
 * so they are not published twice here; they still count when deciding whether Train is allowed.
 */
import * as vscode from 'vscode';
import { validateConfigText, type ConfigIssue } from '../../core/config/load';
import { sweepIssues } from '../../core/config/sweep';
import { Disposable, toDisposable } from '../util/dispose';

export const CONFIG_GLOB = '**/*.peft.json';
const DEBOUNCE_MS = 300;

export function isConfigDocument(doc: vscode.TextDocument): boolean {
  return doc.uri.scheme === 'file' && doc.fileName.endsWith('.peft.json');
}

export class ConfigDiagnostics extends Disposable {
  private readonly collection = this._register(vscode.languages.createDiagnosticCollection('peft-lab'));
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly issues = new Map<string, ConfigIssue[]>();
  private readonly changed = this._register(new vscode.EventEmitter<vscode.Uri>());
  /** Fires after a config's issues were recomputed. */
  readonly onDidChange = this.changed.event;

  constructor() {
    super();
    this._register(toDisposable(() => this.timers.forEach((t) => clearTimeout(t))));
    this._register(vscode.workspace.onDidOpenTextDocument((d) => this.schedule(d, 0)));
    this._register(vscode.workspace.onDidChangeTextDocument((e) => this.schedule(e.document, DEBOUNCE_MS)));
    this._register(vscode.workspace.onDidSaveTextDocument((d) => this.schedule(d, 0)));
    this._register(vscode.workspace.onDidCloseTextDocument((d) => this.forget(d.uri)));
    for (const doc of vscode.workspace.textDocuments) this.schedule(doc, 0);
  }

  /** Every issue of a config (schema and semantic), computed now if it was never computed. */
  issuesOf(doc: vscode.TextDocument): ConfigIssue[] {
    const key = doc.uri.toString();
    if (!this.issues.has(key)) this.update(doc);
    return this.issues.get(key) ?? [];
  }

  errorsOf(doc: vscode.TextDocument): ConfigIssue[] {
    return this.issuesOf(doc).filter((i) => i.severity === 'error');
  }

  private schedule(doc: vscode.TextDocument, delay: number): void {
    if (!isConfigDocument(doc)) return;
    const key = doc.uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.set(
      key,
      setTimeout(() => this.update(doc), delay),
    );
  }

  private update(doc: vscode.TextDocument): void {
    const folder = vscode.workspace.getWorkspaceFolder(doc.uri)?.uri.fsPath;
    const text = doc.getText();
    const options = { workspaceFolder: folder };
    // a sweep's points are checked like configs; their problems land on the sweep's fields
    const issues = [
      ...validateConfigText(text, doc.fileName, options),
      ...sweepIssues(text, doc.fileName, options),
    ].sort((a, b) => a.offset - b.offset);
    this.issues.set(doc.uri.toString(), issues);
    const semantic = issues.filter((i) => i.source === 'semantic');
    this.collection.set(
      doc.uri,
      semantic.map((i) => toDiagnostic(doc, i)),
    );
    this.changed.fire(doc.uri);
  }

  private forget(uri: vscode.Uri): void {
    const key = uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
    this.issues.delete(key);
    this.collection.delete(uri);
  }
}

function toDiagnostic(doc: vscode.TextDocument, issue: ConfigIssue): vscode.Diagnostic {
  const range = new vscode.Range(
    doc.positionAt(issue.offset),
    doc.positionAt(issue.offset + Math.max(issue.length, 1)),
  );
  const severity = issue.severity === 'error' ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning;
  const diagnostic = new vscode.Diagnostic(range, issue.message, severity);
  diagnostic.source = 'PEFT Lab';
  diagnostic.code = issue.path;
  return diagnostic;
}
