/**
 * Which runs each config has on disk, for the CodeLens and the commands: a view of the Runs
 * sidebar's live model (runs-model.ts, kept current by its file watcher), so the lens and the tree
 * never disagree and the run folders are read in one place.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAnyConfigText } from '../../core/config/load';
import { readSettings } from '../util/settings';
import type { RunsDelta } from './runs-types';
import type { RunsModel } from './runs-model';
import { Disposable } from '../util/dispose';

export interface RunSummary {
  dir: string;
  state: string;
  started: string;
}

/** What RunIndex needs from the sidebar. */
export interface RunsSource {
  readonly model: RunsModel;
  readonly onDidChange: vscode.Event<RunsDelta>;
  ensureRunsDir(dir: string): void;
  rescanNow(): void;
}

export class RunIndex extends Disposable {
  private readonly changed = this._register(new vscode.EventEmitter<void>());
  /** Each config's runs folder, by the config's modification time and the setting (parsing a config on every lens is wasteful). */
  private readonly runsDirs = new Map<string, { key: string; dir?: string }>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly source: RunsSource) {
    super();
    this._register(source.onDidChange(() => this.changed.fire()));
  }

  /** Reads the runs folders again now (the watcher normally makes this unnecessary). */
  invalidate(): void {
    this.source.rescanNow();
  }

  /** Runs of a config, newest first. */
  runsOf(configFile: string): RunSummary[] {
    const dir = this.runsDirOf(configFile);
    if (dir) this.source.ensureRunsDir(dir);
    return this.source.model.runsOfConfig(configFile).map((r) => ({
      dir: r.dir,
      state: r.interrupted ? 'interrupted' : r.state,
      started: r.status?.started ?? new Date(r.started).toISOString(),
    }));
  }

  private runsDirOf(configFile: string): string | undefined {
    let mtimeMs = -1;
    try {
      mtimeMs = fs.statSync(configFile).mtimeMs;
    } catch {
      // a config that is gone has no runs folder of its own; its runs may still be known
    }
    const key = `${mtimeMs}|${readSettings(vscode.Uri.file(configFile)).runsDirectory}`;
    const cached = this.runsDirs.get(configFile);
    if (cached?.key === key) return cached.dir;
    const dir = runsDirOf(configFile);
    this.runsDirs.set(configFile, { key, dir });
    return dir;
  }

  latestRun(configFile: string): RunSummary | undefined {
    return this.runsOf(configFile)[0];
  }
}

/** The runs folder of a config: `peftLab.runsDirectory` when set, else the config's `output.runsDir`. */
export function runsDirOf(configFile: string): string | undefined {
  const setting = readSettings(vscode.Uri.file(configFile)).runsDirectory;
  if (setting) {
    const folder =
      vscode.workspace.getWorkspaceFolder(vscode.Uri.file(configFile))?.uri.fsPath ?? path.dirname(configFile);
    return path.isAbsolute(setting) ? setting : path.join(folder, setting);
  }
  try {
    return parseAnyConfigText(fs.readFileSync(configFile, 'utf8'), configFile).output.runsDir; // fine-tuning or pretraining
  } catch {
    return undefined;
  }
}
