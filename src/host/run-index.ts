/**
 * Which runs each config has on disk, for the CodeLens and the commands. Reads run folders'
 * status.json files; refreshed when the run manager reports a change or a status file changes.
 * (The Runs sidebar will keep a fuller, live model of the same folders.)
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfigText } from '../core/config/load';
import { readSettings } from './settings';

export interface RunSummary {
  dir: string;
  state: string;
  started: string;
}

export class RunIndex implements vscode.Disposable {
  private readonly cache = new Map<string, RunSummary[]>();
  private readonly changed = new vscode.EventEmitter<void>();
  private readonly watcher = vscode.workspace.createFileSystemWatcher('**/status.json');
  readonly onDidChange = this.changed.event;

  constructor() {
    const invalidate = () => this.invalidate();
    this.watcher.onDidCreate(invalidate);
    this.watcher.onDidChange(invalidate);
    this.watcher.onDidDelete(invalidate);
  }

  invalidate(): void {
    this.cache.clear();
    this.changed.fire();
  }

  /** Runs of a config, newest first. */
  runsOf(configFile: string): RunSummary[] {
    const k = path.resolve(configFile);
    let runs = this.cache.get(k);
    if (!runs) {
      runs = scanRuns(k);
      this.cache.set(k, runs);
    }
    return runs;
  }

  latestRun(configFile: string): RunSummary | undefined {
    return this.runsOf(configFile)[0];
  }

  dispose(): void {
    this.watcher.dispose();
    this.changed.dispose();
  }
}

function scanRuns(configFile: string): RunSummary[] {
  const runsDir = runsDirOf(configFile);
  if (!runsDir || !fs.existsSync(runsDir)) return [];
  const runs: RunSummary[] = [];
  for (const name of fs.readdirSync(runsDir)) {
    const status = readStatus(path.join(runsDir, name));
    if (status && path.resolve(status.configFile) === configFile) runs.push({ dir: path.join(runsDir, name), state: status.state, started: status.started });
  }
  return runs.sort((a, b) => b.started.localeCompare(a.started));
}

export function runsDirOf(configFile: string): string | undefined {
  const setting = readSettings(vscode.Uri.file(configFile)).runsDirectory;
  if (setting) {
    const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(configFile))?.uri.fsPath ?? path.dirname(configFile);
    return path.isAbsolute(setting) ? setting : path.join(folder, setting);
  }
  try {
    return parseConfigText(fs.readFileSync(configFile, 'utf8'), configFile).output.runsDir;
  } catch {
    return undefined;
  }
}

function readStatus(dir: string): { state: string; started: string; configFile: string } | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'status.json'), 'utf8'));
  } catch {
    return undefined;
  }
}
